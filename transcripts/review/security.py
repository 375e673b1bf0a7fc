"""Password hashing (argon2id), random tokens, constant-time checks and the login rate limiter.

No database here: :mod:`transcripts.review.auth` stores sessions in ``tr_sessions``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoginRateLimiter", "hash_password", "hash_token", "new_token", "same_token",
           "verify_password"]

MIN_PASSWORD_LENGTH = 8


def _hasher() -> Any:
    try:
        from argon2 import PasswordHasher
    except ModuleNotFoundError as exc:  # pragma: no cover - argon2-cffi is in the review extra
        raise ModuleNotFoundError(
            "the review app needs argon2-cffi: pip install -e '.[review]'", name="argon2") from exc
    return PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (refuses passwords shorter than 8 characters)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return str(_hasher().hash(password))


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (never raises on a wrong password)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A random URL-safe token (256 bits)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the database keeps of a session token (a stolen table gives no usable cookie)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time comparison; ``None`` or empty never matches."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(kw_only=True)
class LoginRateLimiter:
    """At most ``max_failures`` failed logins per ``window_s`` seconds, counted per client
    address and per user name (whichever trips first), in memory."""

    max_failures: int = 5
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    def _keys(self, client: str, username: str) -> tuple[str, str]:
        return f"ip:{client}", f"user:{username.strip().lower()}"

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return deque()
        return times

    def retry_after(self, client: str, username: str) -> float | None:
        """Seconds to wait before another attempt, or ``None`` when one is allowed."""
        now = self.clock()
        waits = []
        for key in self._keys(client, username):
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                waits.append(self.window_s - (now - times[0]))
        return max(waits) if waits else None

    def record_failure(self, client: str, username: str) -> None:
        now = self.clock()
        for key in self._keys(client, username):
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)

    def reset(self, client: str, username: str) -> None:
        """A successful login clears the user's count (not the address's)."""
        self._failures.pop(self._keys(client, username)[1], None)
