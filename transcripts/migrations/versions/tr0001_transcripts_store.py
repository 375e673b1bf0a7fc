"""transcripts store

Revision ID: tr0001
Revises:
Create Date: 2026-11-30 06:03:32.630840
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'tr0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tr_audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('entity_id', sa.String(length=100), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tr_audit'))
    )
    with op.batch_alter_table('tr_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tr_audit_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tr_audit_call_id'), ['call_id'], unique=False)

    op.create_table('tr_calls',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('practice_id', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('secretary_id', sa.String(length=100), nullable=True),
    sa.Column('handled_by', sa.String(length=16), nullable=False),
    sa.Column('caller_number', sa.String(length=40), nullable=True),
    sa.Column('category', sa.String(length=32), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('review_rating', sa.Integer(), nullable=True),
    sa.Column('review_flags', sa.JSON(), nullable=False),
    sa.Column('review_note', sa.Text(), nullable=True),
    sa.Column('reviewer', sa.String(length=200), nullable=True),
    sa.Column('second_reviewer', sa.String(length=200), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('audio_path', sa.String(length=1000), nullable=True),
    sa.Column('audio_sha256', sa.String(length=64), nullable=True),
    sa.Column('channels', sa.Integer(), nullable=True),
    sa.Column('sample_rate', sa.Integer(), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('objection', sa.Boolean(), nullable=False),
    sa.Column('audio_deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tr_calls')),
    sa.UniqueConstraint('audio_sha256', name=op.f('uq_tr_calls_audio_sha256')),
    sa.UniqueConstraint('external_id', name=op.f('uq_tr_calls_external_id'))
    )
    with op.batch_alter_table('tr_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tr_calls_secretary_id'), ['secretary_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tr_calls_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tr_calls_status'), ['status'], unique=False)

    op.create_table('tr_users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=500), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tr_users')),
    sa.UniqueConstraint('username', name=op.f('uq_tr_users_username'))
    )
    op.create_table('tr_sessions',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['tr_users.id'], name=op.f('fk_tr_sessions_user_id_tr_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tr_sessions'))
    )
    with op.batch_alter_table('tr_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tr_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('tr_turns',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('speaker', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('start_s', sa.Float(), nullable=True),
    sa.Column('end_s', sa.Float(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('words', sa.JSON(), nullable=True),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['tr_calls.id'], name=op.f('fk_tr_turns_call_id_tr_calls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tr_turns')),
    sa.UniqueConstraint('call_id', 'idx', name=op.f('uq_tr_turns_call_id'))
    )
    with op.batch_alter_table('tr_turns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tr_turns_call_id'), ['call_id'], unique=False)

    op.create_table('tr_pii_spans',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('turn_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('placeholder', sa.String(length=64), nullable=False),
    sa.Column('start', sa.Integer(), nullable=False),
    sa.Column('end', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['turn_id'], ['tr_turns.id'], name=op.f('fk_tr_pii_spans_turn_id_tr_turns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tr_pii_spans'))
    )
    with op.batch_alter_table('tr_pii_spans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tr_pii_spans_turn_id'), ['turn_id'], unique=False)

    op.create_table('tr_pii_mapping',
    sa.Column('span_id', sa.Integer(), nullable=False),
    sa.Column('original', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['span_id'], ['tr_pii_spans.id'], name=op.f('fk_tr_pii_mapping_span_id_tr_pii_spans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('span_id', name=op.f('pk_tr_pii_mapping'))
    )


def downgrade() -> None:
    op.drop_table('tr_pii_mapping')
    with op.batch_alter_table('tr_pii_spans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tr_pii_spans_turn_id'))

    op.drop_table('tr_pii_spans')
    with op.batch_alter_table('tr_turns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tr_turns_call_id'))

    op.drop_table('tr_turns')
    with op.batch_alter_table('tr_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tr_sessions_user_id'))

    op.drop_table('tr_sessions')
    op.drop_table('tr_users')
    with op.batch_alter_table('tr_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tr_calls_status'))
        batch_op.drop_index(batch_op.f('ix_tr_calls_started_at'))
        batch_op.drop_index(batch_op.f('ix_tr_calls_secretary_id'))

    op.drop_table('tr_calls')
    with op.batch_alter_table('tr_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tr_audit_call_id'))
        batch_op.drop_index(batch_op.f('ix_tr_audit_at'))

    op.drop_table('tr_audit')
