"""Accounts and server sessions of the review app, stored in ``tr_users`` / ``tr_sessions``.

The browser holds a random session token (cookie, HttpOnly, SameSite=Strict); the database
holds only its SHA-256. Each session carries its own CSRF token, which every form posts
back. Passwords are argon2id hashes, checked off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from transcripts.models import TrSession, TrUser, utcnow
from transcripts.review.permissions import ROLES, Permission, role_can
from transcripts.review.security import hash_password, hash_token, new_token, verify_password

__all__ = ["AccountError", "Accounts", "CurrentUser", "UserInfo"]

logger = logging.getLogger(__name__)

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")


class AccountError(ValueError):
    """A refused account operation (bad name, weak password, unknown user...)."""


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user of a request."""

    id: int
    username: str
    role: str
    csrf_token: str
    session_id: str

    def can(self, permission: Permission | str) -> bool:
        return role_can(self.role, Permission(permission))


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise AccountError("an account name is 2 to 64 characters: letters, digits, . _ @ -")
    return name


class Accounts:
    """Users and sessions over a transcripts store (any object with ``write()`` /
    ``session()`` async context managers and ``audit(...)``)."""

    def __init__(self, *, store: Any, session_ttl_s: int = 8 * 3600) -> None:
        self.store = store
        self.session_ttl_s = session_ttl_s
        self._dummy_hash: str | None = None

    # -- users ----------------------------------------------------------------------------

    async def add_user(self, username: str, password: str, role: str, *, actor: str) -> int:
        name = normalize_username(username)
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        try:
            password_hash = await asyncio.to_thread(hash_password, password)
        except ValueError as exc:
            raise AccountError(str(exc)) from exc
        async with self.store.write() as session:
            if await session.scalar(select(TrUser.id).where(TrUser.username == name)):
                raise AccountError(f"the account {name!r} already exists")
            user = TrUser(username=name, password_hash=password_hash, role=role, disabled=False,
                          created_at=utcnow())
            session.add(user)
            await session.flush()
            user_id = int(user.id)
        await self.store.audit(actor=actor, action="user.add", entity="user", entity_id=user_id,
                               after={"username": name, "role": role})
        return user_id

    async def list_users(self) -> list[UserInfo]:
        async with self.store.session() as session:
            rows = await session.scalars(select(TrUser).order_by(TrUser.username))
            return [UserInfo(id=u.id, username=u.username, role=u.role, disabled=u.disabled,
                             created_at=u.created_at) for u in rows]

    async def disable_user(self, user: int | str, *, actor: str) -> UserInfo:
        """Disable an account and end its sessions."""
        async with self.store.write() as session:
            query = (select(TrUser).where(TrUser.id == user) if isinstance(user, int)
                     else select(TrUser).where(TrUser.username == normalize_username(user)))
            row = await session.scalar(query)
            if row is None:
                raise AccountError(f"no account {user!r}")
            was = row.disabled
            row.disabled = True
            await session.execute(delete(TrSession).where(TrSession.user_id == row.id))
            info = UserInfo(id=row.id, username=row.username, role=row.role, disabled=True,
                            created_at=row.created_at)
        await self.store.audit(actor=actor, action="user.disable", entity="user",
                               entity_id=info.id, before={"disabled": was},
                               after={"disabled": True})
        return info

    async def authenticate(self, username: str, password: str) -> UserInfo | None:
        """The user if the name and password match an enabled account, else ``None``.
        An unknown name costs the same hash check as a wrong password."""
        try:
            name = normalize_username(username)
        except AccountError:
            name = ""
        async with self.store.session() as session:
            row = await session.scalar(select(TrUser).where(TrUser.username == name)) \
                if name else None
            info = None if row is None else UserInfo(
                id=row.id, username=row.username, role=row.role, disabled=row.disabled,
                created_at=row.created_at)
            stored = row.password_hash if row is not None else None
        if stored is None:
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(hash_password, new_token())
            stored = self._dummy_hash
        ok = await asyncio.to_thread(verify_password, stored, password)
        if not ok or info is None or info.disabled:
            return None
        return info

    # -- sessions -------------------------------------------------------------------------

    async def open_session(self, user: UserInfo) -> tuple[str, CurrentUser]:
        """A new session for ``user``: returns the cookie token and the session's user."""
        token = new_token()
        csrf = new_token()
        now = utcnow()
        async with self.store.write() as session:
            await session.execute(delete(TrSession).where(TrSession.expires_at < now))
            session.add(TrSession(id=hash_token(token), user_id=user.id, csrf_token=csrf,
                                  created_at=now,
                                  expires_at=now + timedelta(seconds=self.session_ttl_s)))
        return token, CurrentUser(id=user.id, username=user.username, role=user.role,
                                  csrf_token=csrf, session_id=hash_token(token))

    async def resolve(self, token: str | None) -> CurrentUser | None:
        """The user of a session cookie, or ``None`` (no, unknown or expired session, or a
        disabled account)."""
        if not token or len(token) > 200:
            return None
        sid = hash_token(token)
        async with self.store.session() as session:
            row = (await session.execute(
                select(TrSession, TrUser).join(TrUser, TrUser.id == TrSession.user_id)
                .where(TrSession.id == sid))).first()
        if row is None:
            return None
        sess, user = row
        if user.disabled or sess.expires_at <= utcnow():
            return None
        return CurrentUser(id=user.id, username=user.username, role=user.role,
                           csrf_token=sess.csrf_token, session_id=sid)

    async def close_session(self, session_id: str) -> None:
        async with self.store.write() as session:
            await session.execute(delete(TrSession).where(TrSession.id == session_id))
