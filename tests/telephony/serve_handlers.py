"""Call-handler factories for ``[audiosocket] handler = "serve_handlers:..."`` in tests."""

from __future__ import annotations

from typing import Any

from telephony.session import AudioIn, CallSession, Dtmf, Hangup


def echo(config: Any) -> Any:
    """Echo caller audio; DTMF 0 hands off (reason caller_request), # hangs up."""

    async def handle(session: CallSession) -> None:
        async for ev in session.events():
            if isinstance(ev, AudioIn):
                await session.send_audio(ev.pcm)
            elif isinstance(ev, Dtmf) and ev.digit == "0":
                await session.handoff(reason="caller_request", summary="pressed 0")
            elif isinstance(ev, Dtmf) and ev.digit == "#":
                await session.hangup()
            elif isinstance(ev, Hangup):
                break

    return handle


def unavailable(config: Any) -> None:
    """No assistant: every call is handed to the secretaries."""
    return None


START: dict[str, Any] = {}  # tests put an asyncio.Event under "go" before starting


async def slow_start(config: Any) -> Any:
    """The echo assistant, ready only once the test sets ``START["go"]`` (a warm-up)."""
    await START["go"].wait()
    return echo(config)
