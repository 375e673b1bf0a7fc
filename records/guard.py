"""Tell "the database is unreachable" apart from other errors."""

from __future__ import annotations

__all__ = ["is_unavailable"]


def is_unavailable(exc: BaseException) -> bool:
    """True for lost/refused connections, timeouts, a locked or vanished database file."""
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
        return ("Connection" in name or "CannotConnect" in name or "TooManyConnections" in name
                or "AdminShutdown" in name or "CrashShutdown" in name or "ObjectInUse" in name)
    return False
