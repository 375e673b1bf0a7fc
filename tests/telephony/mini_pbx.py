"""A stand-in for Asterisk in the several-workers tests: it runs ``extensions.conf``.

* :class:`Dialplan` interprets the contexts of ``docker/asterisk/extensions.conf`` for one
  channel: ``Set`` (``GLOBAL()`` too), ``ExecIf``, ``GotoIf``, ``Goto`` (labels, other
  contexts), ``NoOp``, ``Answer``, ``Hangup``, ``TryExec(AudioSocket(uuid,host:port))``,
  with ``${VAR}``, ``${FIELDQTY()}``, ``${CUT()}``, ``${UUID()}``, ``${ENV()}``, ``${EPOCH}``
  and ``$[...]`` expressions (``| & = != < > <= >= + - * / %``, Asterisk's precedence). It
  stops where the call leaves the assistant: ``Goto(twin-handoff,...)`` (the queue) or
  ``Hangup()``. ``AudioSocket`` is a callback: the tests connect the caller simulator to a
  real ``twin serve`` worker there.
* :class:`AmiServer` is the AMI side the workers log into: ``Login``, ``Ping``,
  ``Setvar`` (written into the running channel's variables, as Asterisk does), ``Getvar``,
  ``Logoff``; setting ``CALL_UUID`` in the dialplan sends the ``VarSet`` event to every
  connected worker, as Asterisk does.

Only what the twin's dialplan uses is implemented; anything else fails loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path


class CallerHangup(Exception):
    """Raised by an AudioSocket callback when the caller hung up: the dialplan stops there."""


_CHANNELS = itertools.count(1)  # channel names unique across Dialplan instances
AudioSocketApp = Callable[[str, str], Awaitable[bool]]  # (uuid, "host:port") -> connected


def parse_dialplan(path: Path) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """``([globals] variables, {context: [(label or "", "App(args)")]})`` for extension ``s``."""
    globals_: dict[str, str] = {}
    contexts: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in path.read_text().splitlines():
        line = re.sub(r"(?<!\\);.*$", "", raw).strip()
        if not line:
            continue
        m = re.fullmatch(r"\[([^\]]+)\]", line)
        if m:
            current = m.group(1)
            continue
        if current == "globals":
            k, _, v = line.partition("=")
            globals_[k.strip()] = v.strip()
            continue
        m = re.fullmatch(r"exten\s*=>\s*([^,]+),(\w+)(?:\((\w+)\))?,(.*)", line)
        if m:
            if m.group(1) == "s":
                contexts[current] = [(m.group(3) or "", m.group(4))]
            continue
        m = re.fullmatch(r"same\s*=>\s*n(?:\((\w+)\))?,(.*)", line)
        if m and current in contexts and contexts[current]:
            contexts[current].append((m.group(1) or "", m.group(2)))
    return globals_, contexts


def _matching(text: str, start: int, open_: str, close: str) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {open_}{close} in {text!r}")


_TOKEN = re.compile(r'\s*(?:(?P<str>"[^"]*")|(?P<op><=|>=|!=|[|&=<>+\-*/%()])|(?P<word>[^\s|&=<>!+\-*/%()"]+))')


def evaluate(expr: str) -> str:
    """An Asterisk ``$[...]`` expression (already substituted) -> its value as text."""
    out: list[str] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot evaluate $[{expr}] at {expr[pos:]!r}")
        pos = m.end()
        if m.group("str") is not None:
            out.append(repr(_num_or_text(m.group("str")[1:-1])))
        elif m.group("word") is not None:
            out.append(repr(_num_or_text(m.group("word"))))
        else:
            op = m.group("op")
            out.append({"|": " or ", "&": " and ", "=": "==", "/": "//"}.get(op, op))
    value = eval("".join(out), {"__builtins__": {}}, {})  # tokens above only: no names
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _num_or_text(text: str) -> int | str:
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def truthy(value: str) -> bool:
    value = value.strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value) != 0
    return value != ""


@dataclass
class CallResult:
    ended: str  # "hangup" (the assistant finished), "queue" (Goto twin-handoff), "caller_hangup"
    variables: dict[str, str]
    attempts: list[tuple[str, bool]] = field(default_factory=list)  # (target, connected)


class Dialplan:
    """Runs one call through ``extensions.conf`` from ``[twin-inbound]``."""

    def __init__(self, *, path: Path, audiosocket: AudioSocketApp,
                 ami: AmiServer | None = None, env: dict[str, str] | None = None) -> None:
        self.path = path
        self.globals, self.contexts = parse_dialplan(path)
        self.audiosocket = audiosocket
        self.ami = ami
        self.env = dict(os.environ if env is None else env)

    async def call(self, *, caller: str = "0600000000") -> CallResult:
        channel = f"PJSIP/trunk-{next(_CHANNELS):08x}"
        chan: dict[str, str] = {"CALLERID(num)": caller}
        result = CallResult(ended="", variables=chan)
        if self.ami is not None:
            self.ami.channels[channel] = chan
        context, index = "twin-inbound", 0
        for _ in range(1000):  # a dialplan loop would be a bug
            label_app = self.contexts[context][index]
            app, args = self._split_app(label_app[1])
            index += 1
            if app in ("NoOp", "Answer"):
                continue
            if app == "Hangup":
                result.ended = "hangup"
                return result
            if app == "Set":
                await self._set(args, chan, channel)
            elif app == "ExecIf":
                cond, _, then = args.partition("?")
                if truthy(self.subst(cond, chan)):
                    inner, inner_args = self._split_app(then)
                    assert inner == "Set", f"ExecIf({then}) not supported"
                    await self._set(inner_args, chan, channel)
            elif app in ("Goto", "GotoIf"):
                target = args
                if app == "GotoIf":
                    cond, _, targets = args.partition("?")
                    yes, _, no = targets.partition(":")
                    target = yes if truthy(self.subst(cond, chan)) else no
                    if not target:
                        continue
                parts = self.subst(target, chan).split(",")
                if len(parts) == 3 and parts[0] == "twin-handoff":
                    result.ended = "queue"
                    return result
                if len(parts) == 3:
                    context = parts[0]
                index = self._find(context, parts[-1])
            elif app == "TryExec":
                inner, inner_args = self._split_app(args)
                assert inner == "AudioSocket", f"TryExec({args}) not supported"
                call_uuid, target = self.subst(inner_args, chan).split(",")
                try:
                    ok = await self.audiosocket(call_uuid, target)
                except CallerHangup:
                    result.attempts.append((target, True))
                    result.ended = "caller_hangup"
                    return result
                result.attempts.append((target, ok))
                chan["TRYSTATUS"] = "SUCCESS" if ok else "FAILED"
            else:
                raise AssertionError(f"{context}: application {app} not supported")
        raise AssertionError("the dialplan did not end")

    def _find(self, context: str, where: str) -> int:
        if where.isdigit():
            return int(where) - 1
        labels = [label for label, _ in self.contexts[context]]
        assert where in labels, f"{context}: no label {where}"
        return labels.index(where)

    @staticmethod
    def _split_app(text: str) -> tuple[str, str]:
        m = re.fullmatch(r"(\w+)\((.*)\)", text.strip())
        assert m, f"not an application call: {text!r}"
        return m.group(1), m.group(2)

    async def _set(self, args: str, chan: dict[str, str], channel: str) -> None:
        name, _, value = args.partition("=")
        value = self.subst(value, chan)
        m = re.fullmatch(r"GLOBAL\((\w+)\)", name)
        if m:
            self.globals[m.group(1)] = value
            return
        chan[name] = value
        if self.ami is not None:
            await self.ami.var_set(channel, name, value)

    def subst(self, text: str, chan: dict[str, str]) -> str:
        """``${...}`` and ``$[...]`` substitution, innermost first, as Asterisk does."""
        out = ""
        i = 0
        while i < len(text):
            if text.startswith("${", i):
                end = _matching(text, i + 1, "{", "}")
                out += self._lookup(self.subst(text[i + 2:end], chan), chan)
                i = end + 1
            elif text.startswith("$[", i):
                end = _matching(text, i + 1, "[", "]")
                out += evaluate(self.subst(text[i + 2:end], chan))
                i = end + 1
            else:
                out += text[i]
                i += 1
        return out

    def _lookup(self, name: str, chan: dict[str, str]) -> str:
        m = re.fullmatch(r"(\w+)\((.*)\)", name)
        if m is None:
            if name == "EPOCH":
                return str(int(time.time()))
            return chan.get(name, self.globals.get(name, ""))
        func, args = m.group(1), m.group(2).split(",")
        if func == "UUID":
            return str(uuid.uuid4())
        if func == "ENV":
            return self.env.get(args[0], "")
        if func == "CALLERID":
            return chan.get(f"CALLERID({args[0]})", "")
        value = self._lookup(args[0], chan)
        if func == "FIELDQTY":
            return str(len(value.split(args[1]))) if value else "0"
        if func == "CUT":
            fields = value.split(args[1])
            n = int(args[2])
            return fields[n - 1] if 1 <= n <= len(fields) else ""
        raise AssertionError(f"dialplan function {func}() not supported")


@dataclass
class AmiServer:
    """The AMI of the stand-in PBX (one TCP server, any number of worker logins)."""

    secret: str
    channels: dict[str, dict[str, str]] = field(default_factory=dict)
    logins: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def var_set(self, channel: str, name: str, value: str) -> None:
        block = (f"Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: {channel}\r\n"
                 f"CallerIDNum: 0600000000\r\nUniqueid: {channel}\r\nVariable: {name}\r\n"
                 f"Value: {value}\r\n\r\n").encode()
        for w in list(self._writers):
            with contextlib.suppress(ConnectionError):
                w.write(block)
                await w.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                fields: dict[str, str] = {}
                while True:
                    line = (await reader.readline()).decode()
                    if not line:
                        return
                    if line in ("\r\n", "\n"):
                        break
                    k, _, v = line.partition(":")
                    fields[k.strip().lower()] = v.strip()
                if not fields:
                    continue
                action = fields.get("action", "").lower()
                aid = fields.get("actionid", "")
                reply = "Response: Success\r\n"
                if action == "login":
                    if fields.get("secret") != self.secret:
                        reply = "Response: Error\r\nMessage: Authentication failed\r\n"
                    else:
                        self.logins += 1
                        self._writers.append(writer)
                        reply += "Message: Authentication accepted\r\n"
                elif action == "setvar":
                    chan = self.channels.get(fields.get("channel", ""))
                    if chan is None:
                        reply = "Response: Error\r\nMessage: No such channel\r\n"
                    else:
                        chan[fields["variable"]] = fields.get("value", "")
                elif action == "getvar":
                    chan = self.channels.get(fields.get("channel", ""), {})
                    reply += (f"Variable: {fields.get('variable')}\r\n"
                              f"Value: {chan.get(fields.get('variable', ''), '')}\r\n")
                elif action == "logoff":
                    reply = "Response: Goodbye\r\nMessage: Thanks for all the fish.\r\n"
                elif action != "ping":
                    reply = f"Response: Error\r\nMessage: {action} not supported here\r\n"
                writer.write(f"{reply}ActionID: {aid}\r\n\r\n".encode())
                await writer.drain()
                if action == "logoff":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if writer in self._writers:
                self._writers.remove(writer)
            writer.close()
