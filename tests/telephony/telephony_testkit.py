"""Test kit: a raw AudioSocket TCP client playing Asterisk, and test handlers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from telephony.audiosocket import Frame, Kind, audio_kind_for, encode, read_frame
from telephony.session import AudioIn, CallSession, Dtmf, Hangup


@dataclass
class RawCaller:
    """Speaks AudioSocket like Asterisk over a real TCP socket."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    call_id: str
    received: list[Frame] = field(default_factory=list)

    @classmethod
    async def connect(cls, port: int, *, call_id: str | None = None,
                      send_uuid: bool = True) -> RawCaller:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        cid = call_id or str(uuid.uuid4())
        if send_uuid:
            w.write(encode(Frame.for_uuid(cid)))
            await w.drain()
        return cls(r, w, cid)

    async def send(self, frame: Frame) -> None:
        self.writer.write(encode(frame))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_audio(self, pcm: bytes, rate: int = 8000, *, paced: bool = False) -> None:
        n = rate // 50 * 2
        for i in range(0, len(pcm), n):
            chunk = pcm[i : i + n].ljust(n, b"\x00")
            await self.send(Frame(audio_kind_for(rate), chunk))
            if paced:
                await asyncio.sleep(0.02)

    async def read(self, wait_s: float = 5.0) -> Frame | None:
        f = await asyncio.wait_for(read_frame(self.reader), timeout=wait_s)
        if f is not None:
            self.received.append(f)
        return f

    async def read_until(self, pred: Callable[[Frame], bool], wait_s: float = 5.0) -> Frame:
        async def go() -> Frame:
            while True:
                f = await read_frame(self.reader)
                if f is None:
                    raise EOFError("server closed the connection")
                self.received.append(f)
                if pred(f):
                    return f
        return await asyncio.wait_for(go(), timeout=wait_s)

    async def read_to_eof(self, wait_s: float = 5.0) -> list[Frame]:
        async def go() -> list[Frame]:
            out = []
            while (f := await read_frame(self.reader)) is not None:
                out.append(f)
                if f.kind in (Kind.HANGUP, Kind.ERROR):
                    break
            return out
        frames = await asyncio.wait_for(go(), timeout=wait_s)
        self.received += frames
        return frames

    def bot_audio(self) -> bytes:
        return b"".join(f.payload for f in self.received if f.is_audio)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await self.writer.wait_closed()


@dataclass
class Recorder:
    """Handler that records what each session saw and runs an optional body."""

    body: Callable[[CallSession], Awaitable[None]] | None = None
    events: dict[str, list[object]] = field(default_factory=dict)
    sessions: dict[str, CallSession] = field(default_factory=dict)
    done: dict[str, asyncio.Event] = field(default_factory=dict)

    def done_event(self, call_id: str) -> asyncio.Event:
        return self.done.setdefault(call_id, asyncio.Event())

    async def __call__(self, session: CallSession) -> None:
        self.sessions[session.call_id] = session
        log = self.events.setdefault(session.call_id, [])
        try:
            if self.body is not None:
                await self.body(session)
            else:
                async for ev in session.events():
                    log.append(ev)
        finally:
            self.done_event(session.call_id).set()


async def echo_body(session: CallSession) -> None:
    """Echo the caller's audio back; DTMF '#' hangs up."""
    async for ev in session.events():
        if isinstance(ev, AudioIn):
            await session.send_audio(ev.pcm)
        elif isinstance(ev, Dtmf) and ev.digit == "#":
            await session.hangup()
        elif isinstance(ev, Hangup):
            break
