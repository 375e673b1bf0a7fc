"""The AudioSocket TCP server: one :class:`CallSession` and one handler task per call.

Asterisk connects once per call (``AudioSocket(uuid,host:port)`` in the dialplan),
sends the 16-byte UUID frame first, then audio every 20 ms. A connection that
does not start with a UUID within ``uuid_timeout_s`` gets an error frame and is
closed; beyond ``max_calls`` simultaneous calls a new connection is refused the
same way (the dialplan then sends the caller to the secretaries). A handler
exception ends that call only: the caller is handed to a human (``bot_failure``),
never left in silence, and the server keeps serving. A handler that returns while
the caller is still on the line also hands the call off (``assistant_ended``): only
an explicit ``session.hangup()`` ends a call without a human.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from telephony.audiosocket import Frame, Kind, ProtocolError, encode, read_frame
from telephony.session import CallControl, CallSession, SessionOptions

__all__ = ["AudioSocketServer", "CallHandler", "ServerHooks", "ServerStats", "tune_socket"]

logger = logging.getLogger(__name__)


def tune_socket(sock: object, *, user_timeout_s: float) -> None:
    """TCP-level liveness for one call: a peer that vanished (host down, cable cut) is
    found by TCP even while the caller is legitimately silent (hold, silence
    suppression: Asterisk then sends no frame at all). ``TCP_USER_TIMEOUT`` aborts the
    connection when sent audio stays unacknowledged that long; keepalives cover a link
    with nothing in flight. Best effort: options a platform lacks are skipped."""
    opts: list[tuple[int, int, int]] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3),
                        ("TCP_USER_TIMEOUT", int(user_timeout_s * 1000))):
        if hasattr(socket, name):
            opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    for level, opt, value in opts:
        try:
            sock.setsockopt(level, opt, value)  # type: ignore[attr-defined]
        except (OSError, AttributeError) as exc:
            logger.debug("socket option %s not set: %s", opt, exc)


class CallHandler(Protocol):
    """Runs one call; returns when the call is over."""

    async def __call__(self, session: CallSession) -> None: ...


class ServerHooks(Protocol):
    """Observer for metrics (``twin serve`` plugs Prometheus in here)."""

    def call_started(self, session: CallSession) -> None: ...

    def call_ended(self, session: CallSession, *, duration_s: float,
                   error: BaseException | None) -> None: ...

    def connection_rejected(self, reason: str) -> None: ...


@dataclass
class ServerStats:
    accepted: int = 0
    rejected_busy: int = 0
    rejected_protocol: int = 0
    handler_errors: int = 0
    completed: int = 0


class AudioSocketServer:
    """``await server.start()`` listens; ``await server.stop()`` ends every call cleanly."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        handler: CallHandler,
        max_calls: int = 32,
        uuid_timeout_s: float = 5.0,
        recordings_dir: Path | None = None,
        control: CallControl | None = None,
        hooks: ServerHooks | None = None,
        session_options: SessionOptions | None = None,
        first_audio_timeout_s: float = 0.5,
        handler_grace_s: float = 5.0,
        tcp_user_timeout_s: float = 20.0,
    ) -> None:
        self.host = host
        self._port = port
        self._handler = handler
        self.max_calls = max_calls
        self.uuid_timeout_s = uuid_timeout_s
        self.recordings_dir = Path(recordings_dir) if recordings_dir is not None else None
        self._control = control
        self._hooks = hooks
        self._session_options = session_options
        self._first_audio_timeout_s = first_audio_timeout_s
        self._handler_grace_s = handler_grace_s
        self._tcp_user_timeout_s = tcp_user_timeout_s
        self._server: asyncio.Server | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._sessions: dict[str, CallSession] = {}
        self._pending = 0  # connections accepted but not yet a session
        self.stats = ServerStats()

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def active_calls(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[CallSession]:
        return list(self._sessions.values())

    def session(self, call_id: str) -> CallSession | None:
        return self._sessions.get(call_id)

    async def start(self) -> None:
        if self.recordings_dir is not None:
            await asyncio.to_thread(self.recordings_dir.mkdir, parents=True, exist_ok=True)
        self._server = await asyncio.start_server(self._on_connect, self.host, self._port)
        logger.info("AudioSocket server listening on %s:%d (max %d calls)",
                    self.host, self.port, self.max_calls)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        # Calls still in progress go to a human rather than being cut off (all at once:
        # each lets its last words play out first).
        await asyncio.gather(*(s.handoff(reason="service_shutdown",
                                         summary="Arrêt de l'assistant pendant l'appel")
                               for s in list(self._sessions.values())), return_exceptions=True)
        tasks = list(self._conn_tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2.0)
            self._server = None

    async def __aenter__(self) -> AudioSocketServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- per connection ------------------------------------------------------------------

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._conn_tasks.add(task)
        task.add_done_callback(self._conn_tasks.discard)

    async def _reject(self, writer: asyncio.StreamWriter, remote: str, reason: str) -> None:
        logger.warning("AudioSocket connection from %s rejected: %s", remote, reason)
        if self._hooks is not None:
            self._hooks.connection_rejected(reason)
        with contextlib.suppress(Exception):
            writer.write(encode(Frame.error(0)))
            await asyncio.wait_for(writer.drain(), timeout=1.0)
        with contextlib.suppress(Exception):
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), timeout=1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            tune_socket(sock, user_timeout_s=self._tcp_user_timeout_s)
        if len(self._sessions) + self._pending >= self.max_calls:
            self.stats.rejected_busy += 1
            await self._reject(writer, remote, f"busy ({self.max_calls} calls in progress)")
            return
        self._pending += 1
        try:
            opened = await self._open_session(reader, writer, remote)
        finally:
            self._pending -= 1
        if opened is None:
            self.stats.rejected_protocol += 1
            return
        await self._run_call(*opened)

    async def _open_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            remote: str) -> tuple[CallSession, list[Frame]] | None:
        try:
            first = await asyncio.wait_for(read_frame(reader), timeout=self.uuid_timeout_s)
        except TimeoutError:
            await self._reject(writer, remote, f"no UUID frame within {self.uuid_timeout_s:g} s")
            return None
        except ProtocolError as exc:
            await self._reject(writer, remote, f"bad first frame: {exc}")
            return None
        except (ConnectionError, OSError) as exc:
            logger.info("AudioSocket connection from %s lost before its UUID: %s", remote, exc)
            return None
        if first is None:
            logger.info("AudioSocket connection from %s closed before its UUID", remote)
            return None
        if first.kind is not Kind.UUID:
            await self._reject(writer, remote,
                               f"first frame is {first.kind.name} (0x{int(first.kind):02x}), "
                               "expected the UUID")
            return None
        call_id = str(first.uuid)
        if call_id in self._sessions:
            await self._reject(writer, remote, f"call {call_id} is already in progress")
            return None
        # The first audio frame tells the sample rate (8 kHz 0x10, 16 kHz 0x12...);
        # Asterisk sends it within 20 ms, so wait briefly before starting the handler.
        early: list[Frame] = []
        try:
            nxt = await asyncio.wait_for(read_frame(reader), timeout=self._first_audio_timeout_s)
            early.append(nxt if nxt is not None else Frame.hangup())
        except TimeoutError:
            pass
        except ProtocolError as exc:
            await self._reject(writer, remote, f"call {call_id}: {exc}")
            return None
        except (ConnectionError, OSError):
            early.append(Frame.hangup())
        rec = None
        if self.recordings_dir is not None:
            rec = self.recordings_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{call_id}.wav"
        session = CallSession(call_id=call_id, reader=reader, writer=writer, remote=remote,
                              recording_path=rec, control=self._control,
                              options=self._session_options)
        return session, early

    async def _run_call(self, session: CallSession, early: list[Frame]) -> None:
        call_id = session.call_id
        self._sessions[call_id] = session
        self.stats.accepted += 1
        t0 = time.monotonic()
        error: BaseException | None = None
        logger.info("call %s: connected from %s", call_id, session.remote)
        try:
            await session.start(early)
            await self._describe(session)
            if self._hooks is not None:
                self._hooks.call_started(session)
            error = await self._run_handler(session)
        finally:
            try:
                if error is not None and not session.closed:
                    await session.handoff(reason="bot_failure",
                                          summary=f"Erreur de l'assistant ({type(error).__name__})")
                elif not session.closed:  # the handler returned but the caller is still there
                    logger.warning("call %s: handler returned without ending the call; handing "
                                   "the caller to a human", call_id)
                    await session.handoff(reason="assistant_ended",
                                          summary="L'assistant s'est arrêté sans finir l'appel")
            except Exception:
                logger.exception("call %s: could not end the call cleanly", call_id)
            await asyncio.shield(session.close())
            self._sessions.pop(call_id, None)
            self.stats.completed += 1
            duration = time.monotonic() - t0
            if self._hooks is not None:
                with contextlib.suppress(Exception):
                    self._hooks.call_ended(session, duration_s=duration, error=error)
            logger.info("call %s: ended after %.1f s (%s)", call_id, duration,
                        session.hangup_reason)

    async def _describe(self, session: CallSession) -> None:
        """Fill ``channel`` / ``caller_number`` when the call control can tell (AMI)."""
        lookup = getattr(self._control, "lookup_call", None)
        if lookup is None:
            return
        try:
            found = await lookup(session.call_id)
        except Exception as exc:
            logger.warning("call %s: channel lookup failed: %s", session.call_id, exc)
            return
        if found:
            session.channel, number = found
            session.caller_number = number or None
            logger.info("call %s: channel %s, caller number %s", session.call_id,
                        session.channel, "known" if session.caller_number else "unknown")

    async def _run_handler(self, session: CallSession) -> BaseException | None:
        task = asyncio.create_task(self._handler(session), name=f"call-{session.call_id}")
        closed = asyncio.create_task(session.wait_closed())
        try:
            await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # the line is gone: give the handler time to wrap up
                await asyncio.wait({task}, timeout=self._handler_grace_s)
            if not task.done():
                logger.warning("call %s: handler still running %.0f s after the call ended; "
                               "cancelling it", session.call_id, self._handler_grace_s)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                return None
            if task.cancelled():
                return None
            exc = task.exception()
            if exc is not None:
                self.stats.handler_errors += 1
                logger.error("call %s: handler failed: %s: %s", session.call_id,
                             type(exc).__name__, exc, exc_info=exc)
            return exc
        finally:
            closed.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
