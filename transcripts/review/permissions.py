"""Who may do what in the review app: one table, role -> permissions.

- ``reviewer`` (a secretary): listens, corrects transcripts and redaction, labels, rates and
  approves calls; sees redacted text only.
- ``trainer``: labels, rates and approves calls (selects training material), reads the
  dashboard and the audit log; does not rewrite transcripts or redaction, sees redacted text.
- ``admin``: everything, including the original text behind placeholders and user accounts.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ROLES", "ROLE_PERMISSIONS", "Permission", "role_can"]


class Permission(StrEnum):
    VIEW_CALLS = "view_calls"
    LISTEN = "listen"
    EDIT_TRANSCRIPT = "edit_transcript"  # turn text, speaker, split/merge, PII decisions
    LABEL = "label"  # action chips, category, outcome, rating, flags, comment
    APPROVE = "approve"  # status draft -> corrected -> approved
    VIEW_PII = "view_pii"  # the original text behind "[NOM_1]" (tr_pii_mapping)
    VIEW_DASHBOARD = "view_dashboard"
    VIEW_AUDIT = "view_audit"
    MANAGE_USERS = "manage_users"


_P = Permission

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "reviewer": frozenset({_P.VIEW_CALLS, _P.LISTEN, _P.EDIT_TRANSCRIPT, _P.LABEL, _P.APPROVE,
                           _P.VIEW_DASHBOARD}),
    "trainer": frozenset({_P.VIEW_CALLS, _P.LISTEN, _P.LABEL, _P.APPROVE, _P.VIEW_DASHBOARD,
                          _P.VIEW_AUDIT}),
    "admin": frozenset(Permission),
}

ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)


def role_can(role: str, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission`` (an unknown role holds nothing)."""
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
