"""Fixtures for the telephony tests (helpers live in ``telephony_testkit``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from telephony.server import AudioSocketServer


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[..., Awaitable[AudioSocketServer]]]:
    servers: list[AudioSocketServer] = []

    async def make(handler: object, **kw: object) -> AudioSocketServer:
        s = AudioSocketServer(host="127.0.0.1", port=0, handler=handler, **kw)  # type: ignore[arg-type]
        await s.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        await s.stop()
