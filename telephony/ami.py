"""Asterisk Manager Interface (AMI) client on asyncio, with reconnect and call mapping.

Wire format (``main/manager.c``): on connect Asterisk sends one banner line
``Asterisk Call Manager/<version>\\r\\n``; then every message is ``Key: Value\\r\\n``
lines ended by an empty line. Actions carry ``Action:`` and our ``ActionID:``;
Asterisk answers ``Response: Success|Error`` with the same ``ActionID`` and sends
``Event:`` messages at any time. List actions answer ``EventList: start`` then
events with that ``ActionID`` and a final ``EventList: Complete`` event.

This is a small client of our own rather than panoramisk: it keeps one reader
that routes *every* message by ``ActionID`` (so the ``OriginateResponse`` of an
``Async: true`` Originate reaches its caller, and a "successfully queued"
answer cannot break the connection), reconnects with backoff, fails pending
actions with a clear error when the link drops, and never lets garbage from the
server crash the process.

:class:`AmiClient` also maps AudioSocket call UUIDs to channels: the dialplan
runs ``Set(CALL_UUID=${UUID()})`` before ``AudioSocket(${CALL_UUID},...)`` and
the resulting ``VarSet`` event carries the channel name and caller number. It
implements :class:`telephony.session.CallControl` for handoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

__all__ = [
    "AmiActionError",
    "AmiClient",
    "AmiConfig",
    "AmiError",
    "AmiMessage",
    "AmiNotConnected",
    "AmiProtocolError",
    "CallChannel",
    "encode_action",
    "parse_message",
]

logger = logging.getLogger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_LINE = 65536


class AmiError(Exception):
    """Base class of AMI errors."""


class AmiNotConnected(AmiError):
    """No logged-in AMI connection (or it dropped while the action was pending)."""


class AmiProtocolError(AmiError):
    """The server does not speak AMI (bad banner, line too long...)."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``."""

    def __init__(self, action: str, message: str, response: AmiMessage | None = None) -> None:
        super().__init__(f"AMI {action} failed: {message}")
        self.action = action
        self.message = message
        self.response = response


@dataclass
class AmiConfig:
    """Connection to Asterisk's manager port (``manager.conf``)."""

    host: str = field(default="127.0.0.1", metadata={"help": "Asterisk host."})
    port: int = field(default=5038, metadata={"help": "AMI TCP port (manager.conf [general] port)."})
    username: str = field(default="twin", metadata={"help": "manager.conf user section name."})
    secret: str = field(default="", metadata={"help": "That user's secret."})
    connect_timeout_s: float = field(default=5.0, metadata={"help": "TCP connect + login timeout."})
    action_timeout_s: float = field(default=5.0, metadata={"help": "Wait for an action's response."})
    reconnect_initial_s: float = field(default=0.5, metadata={"help": "First reconnect delay."})
    reconnect_max_s: float = field(default=30.0, metadata={"help": "Longest reconnect delay."})
    ping_interval_s: float = field(default=20.0, metadata={
        "help": "Send Ping this often; a missing Pong drops and reopens the link (0 = off)."})
    uuid_variable: str = field(default="CALL_UUID", metadata={
        "help": "Channel variable holding the AudioSocket UUID (set in the dialplan)."})
    channel_wait_s: float = field(default=1.0, metadata={
        "help": "How long set_call_variables waits for the UUID's VarSet event."})


class AmiMessage:
    """One AMI message: ordered ``Key: Value`` pairs; lookups ignore key case."""

    __slots__ = ("pairs", "raw_lines")

    def __init__(self, pairs: list[tuple[str, str]], raw_lines: list[str] | None = None) -> None:
        self.pairs = pairs
        self.raw_lines = raw_lines or []  # lines without "Key: " (Command output on old versions)

    def get(self, key: str, default: str | None = None) -> str | None:
        k = key.lower()
        for name, value in self.pairs:
            if name.lower() == k:
                return value
        return default

    def get_all(self, key: str) -> list[str]:
        k = key.lower()
        return [v for n, v in self.pairs if n.lower() == k]

    def __getitem__(self, key: str) -> str:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def success(self) -> bool:
        return (self.response or "").lower() in ("success", "goodbye", "follows")

    def as_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in self.pairs:
            out.setdefault(k, v)
        return out

    def __repr__(self) -> str:
        return f"AmiMessage({self.as_dict()!r})"


def parse_message(lines: list[str]) -> AmiMessage:
    """Parse the lines of one message (without CRLF and without the blank line)."""
    pairs: list[tuple[str, str]] = []
    raw: list[str] = []
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key and " " not in key.strip():
            pairs.append((key.strip(), value[1:] if value.startswith(" ") else value))
        else:
            raw.append(line)
    return AmiMessage(pairs, raw)


def encode_action(action: str, fields: Mapping[str, object] | list[tuple[str, object]]) -> bytes:
    """Wire bytes of an action; ``ValueError`` if a key or value would break the framing."""
    items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    lines = [f"Action: {action}"]
    for key, value in items:
        text = str(value)
        if "\r" in text or "\n" in text or "\r" in key or "\n" in key or ":" in key:
            raise ValueError(f"AMI field {key!r} contains a line break or colon: {text!r}")
        lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@dataclass
class CallChannel:
    """The Asterisk channel behind one AudioSocket call."""

    call_id: str
    channel: str
    uniqueid: str = ""
    caller_number: str = ""
    seen_at: float = field(default_factory=time.time)


@dataclass
class _Pending:
    action: str
    future: asyncio.Future[AmiMessage]
    list_events: list[AmiMessage] | None = None
    list_done: asyncio.Future[list[AmiMessage]] | None = None
    wait_event: str | None = None  # e.g. OriginateResponse for Async Originate
    event_future: asyncio.Future[AmiMessage] | None = None


class AmiClient:
    """``await client.start()`` connects in the background and keeps reconnecting."""

    def __init__(self, *, config: AmiConfig) -> None:
        self.config = config
        self._ids = itertools.count(1)
        self._prefix = f"twin-{int(time.time()) % 100000}-"
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, _Pending] = {}
        self._subscribers: set[asyncio.Queue[AmiMessage | None]] = set()
        self._connected = asyncio.Event()
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._by_uuid: dict[str, CallChannel] = {}
        self._by_channel: dict[str, str] = {}
        self._uuid_seen = asyncio.Condition()
        self._notify_tasks: set[asyncio.Task[None]] = set()
        self.banner: str | None = None
        self.connects = 0
        self.errors = 0
        self.last_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Start the connection supervisor (returns at once; see :meth:`wait_connected`)."""
        if self._supervisor is None:
            self._stopping = False
            self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout=timeout_s)
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        self._stopping = True
        if self._writer is not None and self.connected:
            # A tracked action: Asterisk's "Response: Goodbye" is matched to its ActionID
            # (an untracked Logoff logged a spurious "unknown ActionID" warning).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send("Logoff", []), timeout=1.0)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
            self._supervisor = None
        self._drop_connection("client stopped")
        for q in list(self._subscribers):
            q.put_nowait(None)

    async def __aenter__(self) -> AmiClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _next_id(self) -> str:
        return f"{self._prefix}{next(self._ids)}"

    async def _supervise(self) -> None:
        delay = self.config.reconnect_initial_s
        while not self._stopping:
            reader_task: asyncio.Task[None] | None = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.config.host, self.config.port, limit=MAX_LINE),
                    timeout=self.config.connect_timeout_s)
                self._writer = writer
                reader_task = asyncio.create_task(self._read_loop(reader), name="ami-reader")
                await self._login(reader_task)
                self.connects += 1
                delay = self.config.reconnect_initial_s
                self._connected.set()
                logger.info("AMI connected to %s:%d (%s)", self.config.host, self.config.port,
                            self.banner)
                await self._keepalive(reader_task)
            except asyncio.CancelledError:
                if reader_task is not None:
                    reader_task.cancel()
                raise
            except (OSError, TimeoutError, AmiError, ValueError) as exc:
                if self._stopping:  # our own Logoff: Asterisk says Goodbye and closes
                    logger.debug("AMI connection closed after logoff (%s)", exc)
                    return
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("AMI %s:%d: %s; retrying in %.1f s", self.config.host,
                               self.config.port, self.last_error, delay)
            finally:
                self._drop_connection("connection lost")
                if reader_task is not None and not reader_task.done():
                    reader_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader_task
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.reconnect_max_s)

    async def _login(self, reader_task: asyncio.Task[None]) -> None:
        deadline = self.config.connect_timeout_s
        t0 = time.monotonic()
        while self.banner is None:
            if reader_task.done():
                exc = reader_task.exception()
                raise exc if isinstance(exc, AmiError) else AmiNotConnected(
                    "connection closed before the AMI banner")
            if time.monotonic() - t0 > deadline:
                raise AmiProtocolError("no AMI banner received")
            await asyncio.sleep(0.01)
        resp = await self._send("Login", [("Username", self.config.username),
                                          ("Secret", self.config.secret),
                                          ("Events", "on")], require_login=False)
        if not resp.success:
            raise AmiActionError("Login", resp.get("Message") or "refused", resp)

    async def _keepalive(self, reader_task: asyncio.Task[None]) -> None:
        interval = self.config.ping_interval_s
        while not reader_task.done():
            if interval <= 0:
                await asyncio.wait({reader_task})
                break
            done, _ = await asyncio.wait({reader_task}, timeout=interval)
            if done:
                break
            try:
                await self.action("Ping")
            except AmiError as exc:
                raise AmiNotConnected(f"keepalive Ping failed: {exc}") from exc
        err = reader_task.exception() if not reader_task.cancelled() else None
        if err is not None:
            raise err
        raise AmiNotConnected("Asterisk closed the AMI connection")

    def _drop_connection(self, why: str) -> None:
        self._connected.clear()
        self.banner = None
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        pending, self._pending = self._pending, {}
        for p in pending.values():
            for fut in (p.future, p.list_done, p.event_future):
                if fut is not None and not fut.done():
                    fut.set_exception(AmiNotConnected(f"AMI {p.action}: {why}"))

    # -- reading -----------------------------------------------------------------------

    async def _readline(self, reader: asyncio.StreamReader) -> str | None:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                logger.warning("AMI: connection closed inside a line: %r", exc.partial[:80])
            return None
        except asyncio.LimitOverrunError as exc:
            raise AmiProtocolError(f"AMI line longer than {MAX_LINE} bytes") from exc
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        first = await self._readline(reader)
        if first is None:
            raise AmiNotConnected("connection closed before the AMI banner")
        if not first.startswith(BANNER_PREFIX):
            raise AmiProtocolError(f"not an AMI server: first line was {first[:80]!r}")
        self.banner = first
        lines: list[str] = []
        while True:
            line = await self._readline(reader)
            if line is None:
                return
            if line:
                lines.append(line)
                continue
            if lines:
                self._dispatch(parse_message(lines))
                lines = []

    def _dispatch(self, msg: AmiMessage) -> None:
        if msg.response is None and msg.event is None:
            logger.warning("AMI: ignoring a message with neither Response nor Event: %r",
                           (msg.pairs or msg.raw_lines)[:4])
            return
        aid = msg.action_id
        pending = self._pending.get(aid) if aid else None
        if msg.event is None:
            if pending is None:
                logger.warning("AMI: response for unknown ActionID %r: %r", aid, msg.as_dict())
                return
            if not pending.future.done():
                pending.future.set_result(msg)
            if (pending.list_done is None and pending.wait_event is None) or not msg.success:
                self._pending.pop(aid or "", None)
                if pending.list_done is not None and not pending.list_done.done():
                    pending.list_done.set_result([])
                if pending.event_future is not None and not pending.event_future.done():
                    pending.event_future.set_result(msg)
            return
        # an event
        if pending is not None and pending.list_events is not None:
            if (msg.get("EventList") or "").lower() == "complete":
                self._pending.pop(aid or "", None)
                if pending.list_done is not None and not pending.list_done.done():
                    pending.list_done.set_result(pending.list_events)
            else:
                pending.list_events.append(msg)
            return
        if pending is not None and pending.wait_event and msg.event == pending.wait_event:
            self._pending.pop(aid or "", None)
            if pending.event_future is not None and not pending.event_future.done():
                pending.event_future.set_result(msg)
        self._track_calls(msg)
        for q in list(self._subscribers):
            if q.qsize() < 10000:
                q.put_nowait(msg)

    def _track_calls(self, msg: AmiMessage) -> None:
        ev = msg.event
        if ev == "VarSet" and (msg.get("Variable") or "") == self.config.uuid_variable:
            call_id = (msg.get("Value") or "").strip().lower()
            channel = msg.get("Channel") or ""
            if call_id and channel:
                self._by_uuid[call_id] = CallChannel(
                    call_id=call_id, channel=channel, uniqueid=msg.get("Uniqueid") or "",
                    caller_number=msg.get("CallerIDNum") or "")
                self._by_channel[channel] = call_id
                task = asyncio.get_running_loop().create_task(self._notify_uuid())
                self._notify_tasks.add(task)
                task.add_done_callback(self._notify_tasks.discard)
        elif ev == "Hangup":
            call_id = self._by_channel.pop(msg.get("Channel") or "", "")
            if call_id:
                self._by_uuid.pop(call_id, None)
        elif ev == "Rename":
            old, new = msg.get("Channel") or "", msg.get("Newname") or ""
            call_id = self._by_channel.pop(old, "")
            if call_id and new:
                self._by_channel[new] = call_id
                self._by_uuid[call_id].channel = new

    async def _notify_uuid(self) -> None:
        async with self._uuid_seen:
            self._uuid_seen.notify_all()

    # -- actions -----------------------------------------------------------------------

    async def _send(self, action: str, fields: list[tuple[str, object]], *,
                    require_login: bool = True, list_events: bool = False,
                    wait_event: str | None = None) -> AmiMessage:
        return (await self._send_tracked(action, fields, require_login=require_login,
                                         list_events=list_events, wait_event=wait_event))[0]

    async def _send_tracked(self, action: str, fields: list[tuple[str, object]], *,
                            require_login: bool = True, list_events: bool = False,
                            wait_event: str | None = None) -> tuple[AmiMessage, _Pending]:
        if require_login and not self.connected:  # maybe logging in right now
            await self.wait_connected(min(1.0, self.config.action_timeout_s))
        if require_login and not self.connected:
            raise AmiNotConnected(f"AMI {action}: not connected to Asterisk")
        if self._writer is None:
            raise AmiNotConnected(f"AMI {action}: not connected to Asterisk")
        aid = self._next_id()
        data = encode_action(action, [("ActionID", aid), *fields])
        loop = asyncio.get_running_loop()
        p = _Pending(action=action, future=loop.create_future())
        if list_events:
            p.list_events, p.list_done = [], loop.create_future()
        if wait_event:
            p.wait_event, p.event_future = wait_event, loop.create_future()
        self._pending[aid] = p
        try:
            self._writer.write(data)
            await self._writer.drain()
            msg = await asyncio.wait_for(asyncio.shield(p.future),
                                         timeout=self.config.action_timeout_s)
            return msg, p
        except TimeoutError:
            self._pending.pop(aid, None)
            raise AmiError(f"AMI {action}: no response within "
                           f"{self.config.action_timeout_s:g} s") from None
        except (ConnectionError, OSError) as exc:
            self._pending.pop(aid, None)
            raise AmiNotConnected(f"AMI {action}: {exc}") from exc
        finally:
            if p.future.done() and p.list_done is None and p.wait_event is None:
                self._pending.pop(aid, None)

    async def action(self, action: str, fields: Mapping[str, object] | None = None) -> AmiMessage:
        """Send an action; return its ``Response: Success`` message or raise."""
        resp = await self._send(action, list((fields or {}).items()))
        if not resp.success:
            raise AmiActionError(action, resp.get("Message") or "error", resp)
        return resp

    async def action_list(self, action: str, fields: Mapping[str, object] | None = None
                          ) -> list[AmiMessage]:
        """An action answered by an event list (``CoreShowChannels``, ``QueueStatus``...)."""
        resp, p = await self._send_tracked(action, list((fields or {}).items()),
                                           list_events=True)
        if not resp.success:
            raise AmiActionError(action, resp.get("Message") or "error", resp)
        assert p.list_done is not None
        return await asyncio.wait_for(p.list_done, timeout=self.config.action_timeout_s)

    async def ping(self) -> None:
        await self.action("Ping")

    async def setvar(self, channel: str, variable: str, value: str) -> None:
        await self.action("Setvar", {"Channel": channel, "Variable": variable, "Value": value})

    async def getvar(self, channel: str, variable: str) -> str | None:
        resp = await self.action("Getvar", {"Channel": channel, "Variable": variable})
        value = resp.get("Value")
        return None if value in (None, "", "(null)") else value

    async def redirect(self, channel: str, *, context: str, exten: str, priority: int = 1) -> None:
        await self.action("Redirect", {"Channel": channel, "Context": context, "Exten": exten,
                                       "Priority": priority})

    async def hangup(self, channel: str, *, cause: int | None = None) -> None:
        fields: dict[str, object] = {"Channel": channel}
        if cause is not None:
            fields["Cause"] = cause
        await self.action("Hangup", fields)

    async def originate(self, *, channel: str, context: str, exten: str, priority: int = 1,
                        caller_id: str | None = None, timeout_s: float = 30.0,
                        variables: Mapping[str, str] | None = None) -> AmiMessage:
        """Place a call (``Async: true``) and wait for its ``OriginateResponse`` event."""
        fields: list[tuple[str, object]] = [
            ("Channel", channel), ("Context", context), ("Exten", exten),
            ("Priority", priority), ("Timeout", int(timeout_s * 1000)), ("Async", "true")]
        if caller_id:
            fields.append(("CallerID", caller_id))
        for k, v in (variables or {}).items():
            fields.append(("Variable", f"{k}={v}"))
        resp, p = await self._send_tracked("Originate", fields, wait_event="OriginateResponse")
        if not resp.success:
            raise AmiActionError("Originate", resp.get("Message") or "error", resp)
        assert p.event_future is not None
        ev = await asyncio.wait_for(p.event_future, timeout=timeout_s + 5.0)
        if (ev.get("Response") or "").lower() != "success":
            raise AmiActionError("Originate", f"{ev.get('Reason') or 'failed'} "
                                 f"(Response: {ev.get('Response')})", ev)
        return ev

    async def events(self) -> AsyncIterator[AmiMessage]:
        """Every event from now on (across reconnects) until :meth:`stop`."""
        q: asyncio.Queue[AmiMessage | None] = asyncio.Queue()
        self._subscribers.add(q)
        try:
            while (msg := await q.get()) is not None:
                yield msg
        finally:
            self._subscribers.discard(q)

    # -- AudioSocket calls -------------------------------------------------------------

    def call_channel(self, call_id: str) -> CallChannel | None:
        return self._by_uuid.get(call_id.lower())

    async def wait_call_channel(self, call_id: str, timeout_s: float) -> CallChannel | None:
        key = call_id.lower()
        try:
            async with asyncio.timeout(timeout_s):
                async with self._uuid_seen:
                    await self._uuid_seen.wait_for(lambda: key in self._by_uuid)
        except TimeoutError:
            return None
        return self._by_uuid.get(key)

    async def set_call_variables(self, call_id: str, variables: Mapping[str, str]) -> bool:
        """:class:`telephony.session.CallControl`: Setvar on the call's channel."""
        chan = self.call_channel(call_id) or await self.wait_call_channel(
            call_id, self.config.channel_wait_s)
        if chan is None:
            logger.warning("call %s: no channel known (no VarSet %s event seen)", call_id,
                           self.config.uuid_variable)
            return False
        for name, value in variables.items():
            clean = " ".join(str(value).split())
            await self.setvar(chan.channel, name, clean)
        return True
