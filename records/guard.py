"""Tell "the database is unreachable" apart from other errors."""

from __future__ import annotations

__all__ = ["DatabaseUnavailable", "is_unavailable"]

# asyncpg errors that mean "cannot talk to the database now" (raised unwrapped on connect).
_ASYNCPG_UNAVAILABLE = (
    "Connection", "CannotConnect", "TooManyConnections", "AdminShutdown", "CrashShutdown",
    "ObjectInUse", "ObjectNotInPrerequisiteState", "InvalidCatalogName",
    "InvalidAuthorization", "InvalidPassword", "InterfaceError", "ProtocolViolation",
)


class DatabaseUnavailable(RuntimeError):
    """The records database cannot be reached (down, disk full, connection lost)."""


def is_unavailable(exc: BaseException) -> bool:
    """True for lost/refused connections, timeouts, a locked or vanished database file."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        return orig is not None and is_unavailable(orig)
    if isinstance(exc, OSError):
        return True
    mod = type(exc).__module__
    if mod.startswith("asyncpg"):
        name = type(exc).__name__
        return any(part in name for part in _ASYNCPG_UNAVAILABLE)
    return False
