"""The staff review web app: listen to a call, correct its transcript, confirm what was
anonymised, label what the secretary did, rate and approve it (``twin review``).

Only :class:`ReviewSettings` and the role table are importable without the ``review`` extra;
``create_app`` (FastAPI) is imported lazily.
"""

from __future__ import annotations

from typing import Any

from transcripts.review.permissions import ROLE_PERMISSIONS, ROLES, Permission, role_can
from transcripts.review.settings import ReviewSettings

__all__ = ["ROLES", "ROLE_PERMISSIONS", "Permission", "ReviewSettings", "create_app", "role_can"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from transcripts.review.app import create_app

        return create_app
    raise AttributeError(name)
