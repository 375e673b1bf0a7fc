"""``twin serve``: the AudioSocket server and the AMI client for Asterisk, from one config file.

Also serves ``GET /health`` (JSON; 200 while calls can be taken, 503 otherwise) and
``GET /metrics`` (Prometheus text: calls in progress, calls by outcome, handoffs by
reason, per-stage latency histograms, errors, AMI link state).

The AudioSocket server listens from the first second, before the models load and
the LLM warms up (minutes on a busy machine): until the assistant is ready, and
whenever as many calls are in progress as it can answer at its measured pace
(:mod:`twin.admission`), a call is handed to the secretaries at once and
``/health`` says ``degraded``. If the assistant cannot start at all (LLM server
down, model missing), every call goes to the secretaries: the practice never gets
a dead line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from twin.admission import AdmissionGate, capacity_for
from twin.serve_config import ServeConfig, ServeConfigError, load_serve_config

__all__ = ["HealthServer", "ServeMetrics", "ServeState", "run_serve", "serve", "voice_settings"]

logger = logging.getLogger(__name__)

_STAGES = ("stt", "llm_first_token", "tts_first_audio", "voice_to_voice")
_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0)


class ServeMetrics:
    """Prometheus metrics; also the AudioSocket server's :class:`ServerHooks`."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.in_progress = Gauge("twin_calls_in_progress", "Calls connected right now.",
                                 registry=r)
        self.calls = Counter("twin_calls", "Finished calls by outcome.", ["outcome"], registry=r)
        self.handoffs = Counter("twin_handoffs", "Calls handed to a human, by reason.",
                                ["reason"], registry=r)
        self.duration = Histogram("twin_call_duration_seconds", "Call duration.", registry=r,
                                  buckets=(5, 15, 30, 60, 120, 180, 300, 600, 1200))
        self.latency = Histogram("twin_stage_latency_seconds",
                                 "Per-turn latency by pipeline stage (from end of caller speech).",
                                 ["stage"], registry=r, buckets=_LATENCY_BUCKETS)
        self.errors = Counter("twin_errors", "Errors by kind.", ["kind"], registry=r)
        self.ami_connected = Gauge("twin_ami_connected", "1 while the AMI link is logged in.",
                                   registry=r)

    # ServerHooks
    def call_started(self, session: Any) -> None:
        self.in_progress.inc()

    def call_ended(self, session: Any, *, duration_s: float, error: BaseException | None) -> None:
        self.in_progress.dec()
        self.duration.observe(duration_s)
        req = getattr(session, "handoff_request", None)
        reason = str(getattr(session, "hangup_reason", "") or "")
        if error is not None:
            self.errors.labels("handler_error").inc()
        if reason.startswith("protocol error"):
            self.errors.labels("protocol_error").inc()
        elif reason.startswith("no frames"):
            self.errors.labels("peer_silent").inc()
        elif reason == "internal error":
            self.errors.labels("internal_error").inc()
        failed = reason.startswith(("protocol error", "no frames")) or reason == "internal error"
        if req is not None:
            outcome = "handoff"
            self.handoffs.labels(req.reason).inc()
        elif error is not None or failed:
            outcome = "error"
        elif reason == "hangup by bot":
            outcome = "completed"
        else:
            outcome = "caller_hangup"
        self.calls.labels(outcome).inc()

    def connection_rejected(self, reason: str) -> None:
        self.errors.labels("rejected_busy" if reason.startswith("busy") else
                           "rejected_protocol").inc()

    def observe_report(self, report: Any) -> None:
        """``voice.call.CallReport``: per-turn ``*_s`` timings become latency samples."""
        for turn in getattr(report, "turns", None) or []:
            for stage in _STAGES:
                value = dict(turn).get(f"{stage}_s")
                if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                    self.latency.labels(stage).observe(float(value))

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


class HealthServer:
    """A tiny HTTP/1.1 server: ``/health`` (JSON) and ``/metrics`` (Prometheus text)."""

    def __init__(self, *, host: str, port: int, status: Callable[[], dict[str, Any]],
                 metrics: Callable[[], bytes]) -> None:
        self.host = host
        self._port = port
        self._status = status
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                await self._reply(writer, 400, b"bad request\n", "text/plain")
                return
            method, target = parts[0], parts[1].split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                await self._reply(writer, 405, b"method not allowed\n", "text/plain")
            elif target == "/health":
                status = self._status()
                code = 200 if status.get("status") in ("ok", "degraded") else 503
                await self._reply(writer, code, json.dumps(status).encode() + b"\n",
                                  "application/json", head_only=method == "HEAD")
            elif target == "/metrics":
                await self._reply(writer, 200, self._metrics(),
                                  "text/plain; version=0.0.4; charset=utf-8",
                                  head_only=method == "HEAD")
            else:
                await self._reply(writer, 404, b"not found\n", "text/plain")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        except Exception:
            logger.exception("health endpoint failed")
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, code: int, body: bytes, ctype: str, *,
                     head_only: bool = False) -> None:
        text = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                503: "Service Unavailable"}[code]
        writer.write(f"HTTP/1.1 {code} {text}\r\nContent-Type: {ctype}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        if not head_only:
            writer.write(body)
        await writer.drain()


@dataclass
class ServeState:
    """What is running; handed to ``on_ready`` (tests read ports from it)."""

    config: ServeConfig
    metrics: ServeMetrics
    server: Any = None  # telephony.server.AudioSocketServer
    ami: Any = None  # telephony.ami.AmiClient | None
    health: HealthServer | None = None
    degraded: list[str] = field(default_factory=list)
    gate: AdmissionGate | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # the assistant answers calls

    def status(self) -> dict[str, Any]:
        listening = self.server is not None and self.server.port > 0
        ami = "disabled"
        if self.ami is not None:
            ami = "connected" if self.ami.connected else "disconnected"
            self.metrics.ami_connected.set(1 if self.ami.connected else 0)
        problems = list(self.degraded)
        if self.gate is not None:
            problems += self.gate.problems()
        if ami == "disconnected":
            problems.append(f"AMI not connected ({self.ami.last_error or 'connecting'})")
        return {
            "status": "down" if not listening else ("degraded" if problems else "ok"),
            "ready": self.ready.is_set(),
            "audiosocket_port": self.server.port if self.server is not None else None,
            "active_calls": self.server.active_calls if self.server is not None else 0,
            "capacity": self.gate.capacity() if self.gate is not None and self.gate.ready else 0,
            "max_calls": self.config.audiosocket.max_calls,
            "ami": ami,
            "problems": problems,
        }


def _redacted(url: str) -> str:
    """A database URL without its password."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _import_factory(spec: str) -> Callable[[ServeConfig], Any]:
    module_name, attr = spec.split(":", 1)
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ServeConfigError(f"[audiosocket].handler: cannot load {spec!r}: {exc}") from exc
    if not callable(factory):
        raise ServeConfigError(f"[audiosocket].handler: {spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def voice_settings(config: ServeConfig, env: dict[str, str] | None = None) -> Any:
    """The assistant's :class:`twin.settings.Settings`: ``[voice]``/``[llm]``/``[database]``
    of the serve file, then the ``TWIN_*`` environment (``TWIN_DATABASE_URL`` from
    compose.yaml, ``TWIN_LLM_URL``...), exactly as every other ``twin`` command reads them."""
    from twin.settings import Settings, SettingsError

    try:
        settings = Settings.from_dict(config.voice_settings_dict(), where=config.source)
    except SettingsError as exc:
        raise ServeConfigError(str(exc)) from exc
    return settings.with_env(env)


async def run_serve(config: ServeConfig, *, stop: asyncio.Event | None = None,
                    on_ready: Callable[[ServeState], None] | None = None,
                    on_listening: Callable[[ServeState], None] | None = None) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM when run from the CLI).

    ``on_listening`` is called once AudioSocket, AMI and health are up (calls are then
    handed to the secretaries), ``on_ready`` once the assistant answers them."""
    from telephony.ami import AmiClient, AmiConfig
    from telephony.control import AmiCallControl, RedirectTarget
    from telephony.server import AudioSocketServer
    from telephony.session import SessionOptions

    stop = stop or asyncio.Event()
    state = ServeState(config=config, metrics=ServeMetrics())
    settings = voice_settings(config) if config.audiosocket.handler == "voice" else None
    control = None
    if config.ami.enabled:
        a = config.ami
        state.ami = AmiClient(config=AmiConfig(
            host=a.host, port=a.port, username=a.username, secret=config.ami_secret(),
            uuid_variable=a.uuid_variable, ping_interval_s=a.ping_interval_s,
            reconnect_max_s=a.reconnect_max_s))
        redirect = (RedirectTarget(config.handoff.context, config.handoff.exten,
                                   config.handoff.priority)
                    if config.handoff.mode == "redirect" else None)
        control = AmiCallControl(ami=state.ami, redirect=redirect)

    async with contextlib.AsyncExitStack() as stack:
        # The assistant's resources close last: calls still in progress at shutdown are
        # handed off (server.stop) while the LLM and the database are still there.
        runtime = contextlib.AsyncExitStack()
        stack.push_async_callback(runtime.aclose)
        state.gate = AdmissionGate(max_calls=config.audiosocket.max_calls)
        rec_dir = config.audiosocket.recordings_dir
        state.server = AudioSocketServer(
            host=config.audiosocket.host, port=config.audiosocket.port, handler=state.gate,
            max_calls=config.audiosocket.max_calls,
            uuid_timeout_s=config.audiosocket.uuid_timeout_s,
            recordings_dir=Path(rec_dir) if rec_dir else None, control=control,
            hooks=state.metrics, session_options=SessionOptions(
                caller_gap_fill_ms=config.audiosocket.caller_gap_fill_ms,
                caller_idle_timeout_s=config.audiosocket.caller_idle_timeout_s))
        if state.ami is not None:  # stopped after the server, so shutdown handoffs reach AMI
            await state.ami.start()
            stack.push_async_callback(state.ami.stop)
        await state.server.start()
        stack.push_async_callback(state.server.stop)
        if config.metrics.enabled:
            state.health = HealthServer(host=config.metrics.host, port=config.metrics.port,
                                        status=state.status, metrics=state.metrics.render)
            await state.health.start()
            stack.push_async_callback(state.health.stop)
        logger.info("twin serve: AudioSocket on %s:%d, AMI %s, health on %s; starting the "
                    "assistant", config.audiosocket.host, state.server.port,
                    "on" if state.ami else "off",
                    f"{config.metrics.host}:{state.health.port}" if state.health else "off")
        if on_listening is not None:
            on_listening(state)
        starting = asyncio.create_task(_start_assistant(config, settings, state, runtime))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not starting.done():  # stopped while warming up
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
        if starting.done() and not starting.cancelled():
            starting.result()  # a configuration error surfaces here
            state.ready.set()
            logger.info("twin serve: assistant ready (capacity %d calls)", state.gate.capacity())
            if on_ready is not None:
                on_ready(state)
            await stop.wait()
        logger.info("twin serve: stopping (%d calls in progress)", state.server.active_calls)


async def _start_assistant(config: ServeConfig, settings: Any, state: ServeState,
                           runtime: contextlib.AsyncExitStack) -> None:
    """Load the assistant and open the gate to it (or to the secretaries if it fails)."""
    from telephony.control import HandoffOnlyHandler

    assert state.gate is not None
    handler: Any
    capacity: Callable[[], int] | None = None
    if config.audiosocket.handler == "voice":
        handler, capacity = await _voice_handler(settings, state, runtime)
    else:
        handler = _import_factory(config.audiosocket.handler)(config)
        if inspect.isawaitable(handler):  # a factory that needs time to start
            handler = await handler
    if config.audiosocket.capacity:
        fixed = config.audiosocket.capacity
        capacity = lambda: fixed  # noqa: E731
    if handler is None:
        if not state.degraded:
            state.degraded.append("no call handler: every call is handed to a human")
        handler = HandoffOnlyHandler(reason="bot_failure", summary="Assistant indisponible")
    state.gate.set_handler(handler, capacity=capacity)


async def _voice_handler(settings: Any, state: ServeState, runtime: contextlib.AsyncExitStack
                         ) -> tuple[Any, Callable[[], int] | None]:
    """The assistant's handler and its capacity, or None (logged, health degraded)."""
    try:
        from twin.runtime import voice_runtime
        from voice.call import build_call_handler
    except ImportError as exc:
        state.degraded.append(f"voice package unavailable: {exc}")
        logger.error("voice pipeline unavailable (%s); every call goes to the secretaries", exc)
        return None, None
    try:
        services = await runtime.enter_async_context(voice_runtime(settings))
    except Exception as exc:
        state.degraded.append(f"assistant unavailable: {type(exc).__name__}: {exc}")
        logger.exception("the assistant could not start; every call goes to the secretaries")
        return None, None
    whisper = services.whisper

    def capacity() -> int:  # follows the recogniser's measured pace
        decode_s = getattr(whisper, "decode_s", None)
        if not decode_s:
            return state.config.audiosocket.max_calls
        return capacity_for(decode_s=decode_s, workers=getattr(whisper, "workers", 1))

    from twin.call_archive import open_call_archive, report_fanout

    # The assistant's calls go into the transcripts store as they end (never blocking one).
    archive = await runtime.enter_async_context(open_call_archive(
        url=settings.db_url, practice_id=str(services.profile.practice.id)))
    on_report = report_fanout(state.metrics.observe_report,
                              archive.observe if archive is not None else None)
    return build_call_handler(services, on_report=on_report), capacity


@click.command("serve")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="Serve config file (TOML or YAML): [audiosocket] [ami] [handoff] [metrics] "
                   "[voice] [llm] [database].")
@click.option("--check", is_flag=True, help="Validate the config file and exit.")
def serve(config_path: Path | None, check: bool) -> None:
    """Answer calls from Asterisk (AudioSocket) with AMI call control, health and metrics."""
    try:
        config = load_serve_config(config_path)
    except ServeConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if config.ami.enabled:
        try:
            config.ami_secret()
        except ServeConfigError as exc:
            if not check:
                raise click.ClickException(str(exc)) from exc
            click.echo(f"warning: {exc} (needed at run time)", err=True)
    if check:
        database = ""
        if config.audiosocket.handler == "voice":
            try:
                settings = voice_settings(config)
            except ServeConfigError as exc:
                raise click.ClickException(str(exc)) from exc
            database = f", database {_redacted(settings.db_url)}"
        a = config.audiosocket
        ami = f"{config.ami.host}:{config.ami.port}" if config.ami.enabled else "off"
        met = (f"{config.metrics.host}:{config.metrics.port}" if config.metrics.enabled
               else "off")
        cap = str(a.capacity) if a.capacity else "measured at start-up"
        click.echo(f"{config.source}: OK — AudioSocket {a.host}:{a.port} (max {a.max_calls} "
                   f"calls, assistant capacity {cap}), AMI {ami}, handoff "
                   f"{config.handoff.mode}, metrics {met}{database}")
        return

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)

        def listening(state: ServeState) -> None:
            click.echo(f"twin serve: AudioSocket listening on {config.audiosocket.host}:"
                       f"{state.server.port}"
                       + (f", health http://{config.metrics.host}:{state.health.port}/health"
                          if state.health else "")
                       + "; the assistant is starting (calls go to the secretaries meanwhile)",
                       err=True)

        def ready(state: ServeState) -> None:
            cap = state.gate.capacity() if state.gate is not None else 0
            click.echo(f"twin serve: assistant ready, answering up to {cap} calls at once",
                       err=True)

        await run_serve(config, stop=stop, on_ready=ready, on_listening=listening)

    try:
        asyncio.run(main())
    except ServeConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc
