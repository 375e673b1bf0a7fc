"""The ``twin serve`` configuration file (TOML or YAML), validated with clear errors.

Sections::

    [audiosocket]   # where Asterisk's AudioSocket() connects
    host = "0.0.0.0"
    port = 9092
    max_calls = 32
    [ami]           # call control (handoff variables, redirect); optional
    enabled = true
    host = "asterisk"
    secret_env = "TWIN_AMI_SECRET"
    [handoff]
    mode = "dialplan"   # or "redirect"
    [metrics]       # /health and /metrics over HTTP
    port = 9100

``[voice]``, ``[llm]`` and ``[database]`` are passed through untouched to the voice
runtime (see :func:`voice_settings_dict`).
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "AmiSection",
    "AudioSocketSection",
    "HandoffSection",
    "MetricsSection",
    "ServeConfig",
    "ServeConfigError",
    "load_serve_config",
]


class ServeConfigError(ValueError):
    """The serve configuration is invalid (the message says where and why)."""


@dataclass
class AudioSocketSection:
    host: str = field(default="0.0.0.0", metadata={"help": "Listen address for Asterisk."})
    port: int = field(default=9092, metadata={"help": "AudioSocket TCP port."})
    max_calls: int = field(default=32, metadata={
        "help": "Simultaneous connections; beyond, Asterisk gets an error and the dialplan "
                "queues."})
    capacity: int = field(default=0, metadata={
        "help": "Calls the assistant answers at once; 0: computed at start-up from the "
                "measured speech-recognition pace on this machine (and kept up to date). A "
                "call beyond it is handed to the secretaries at once (over_capacity)."})
    uuid_timeout_s: float = field(default=5.0, metadata={
        "help": "A connection that sends no UUID frame within this is dropped."})
    caller_gap_fill_ms: float = field(default=200.0, metadata={
        "help": "Asterisk forwards only what the channel delivers (silence suppression, "
                "hold): after this long without caller audio the assistant hears silence, "
                "at real time, until frames resume; 0: off."})
    caller_idle_timeout_s: float = field(default=300.0, metadata={
        "help": "No frame at all from Asterisk for this long: the caller is handed to a "
                "human (caller_silent)."})
    recordings_dir: str | None = field(default=None, metadata={
        "help": "Stereo WAV per call (left caller, right bot); empty: no server recording."})
    handler: str = field(default="voice", metadata={
        "help": "'voice' (the assistant) or 'module:factory' returning a CallHandler "
                "(factory(config) -> handler; used by tests and custom deployments)."})


@dataclass
class AmiSection:
    enabled: bool = field(default=False, metadata={"help": "Connect to Asterisk's AMI."})
    host: str = field(default="127.0.0.1", metadata={"help": "Asterisk host."})
    port: int = field(default=5038, metadata={"help": "AMI port."})
    username: str = field(default="twin", metadata={"help": "manager.conf user."})
    secret: str = field(default="", metadata={"help": "Secret (prefer secret_env)."})
    secret_env: str | None = field(default=None, metadata={
        "help": "Environment variable holding the secret (e.g. TWIN_AMI_SECRET)."})
    uuid_variable: str = field(default="CALL_UUID", metadata={
        "help": "Channel variable the dialplan sets to the AudioSocket UUID."})
    ping_interval_s: float = field(default=20.0, metadata={"help": "Keepalive Ping period."})
    reconnect_max_s: float = field(default=30.0, metadata={"help": "Longest reconnect delay."})


@dataclass
class HandoffSection:
    mode: str = field(default="dialplan", metadata={
        "help": "dialplan: set TWIN_* variables and end the bot's leg (the dialplan queues); "
                "redirect: also AMI-Redirect the channel to context/exten."})
    context: str = field(default="twin-handoff", metadata={"help": "Redirect target context."})
    exten: str = field(default="s", metadata={"help": "Redirect target extension."})
    priority: int = field(default=1, metadata={"help": "Redirect target priority."})


@dataclass
class MetricsSection:
    enabled: bool = field(default=True, metadata={"help": "Serve /health and /metrics."})
    host: str = field(default="0.0.0.0", metadata={"help": "HTTP listen address."})
    port: int = field(default=9100, metadata={"help": "HTTP port (0 = any free port)."})


_SECTIONS: dict[str, type] = {"audiosocket": AudioSocketSection, "ami": AmiSection,
                              "handoff": HandoffSection, "metrics": MetricsSection}
_PASSTHROUGH = ("voice", "llm", "database")


@dataclass
class ServeConfig:
    audiosocket: AudioSocketSection = field(default_factory=AudioSocketSection)
    ami: AmiSection = field(default_factory=AmiSection)
    handoff: HandoffSection = field(default_factory=HandoffSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    voice: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    database: dict[str, Any] = field(default_factory=dict)
    source: str = "defaults"

    def ami_secret(self, env: dict[str, str] | None = None) -> str:
        e = os.environ if env is None else env
        if self.ami.secret_env:
            value = e.get(self.ami.secret_env)
            if value is None:
                raise ServeConfigError(f"{self.source}: [ami].secret_env: environment variable "
                                       f"{self.ami.secret_env} is not set")
            return value
        return self.ami.secret

    def voice_settings_dict(self) -> dict[str, Any]:
        """``twin.settings.Settings.from_dict`` input: ``[voice]`` keys (data_dir, profile,
        stt, tts...), ``llm = [llm]``, ``database_url = [database].url``, and the recordings
        folder from ``[audiosocket]``."""
        data: dict[str, Any] = dict(self.voice)
        if self.llm:
            data["llm"] = dict(self.llm)
        if self.database.get("url"):
            data["database_url"] = self.database["url"]
        if self.audiosocket.recordings_dir and "recordings_dir" not in data:
            data["recordings_dir"] = self.audiosocket.recordings_dir
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> ServeConfig:
        if not isinstance(data, dict):
            raise ServeConfigError(f"{source}: the top level must be a table/mapping")
        unknown = set(data) - set(_SECTIONS) - set(_PASSTHROUGH)
        if unknown:
            raise ServeConfigError(
                f"{source}: unknown section(s) {', '.join(sorted(map(str, unknown)))} (known: "
                f"{', '.join([*_SECTIONS, *_PASSTHROUGH])})")
        kwargs: dict[str, Any] = {"source": source}
        for name, section_cls in _SECTIONS.items():
            if name in data:
                kwargs[name] = _build(section_cls, data[name], f"{source}: [{name}]")
        for name in _PASSTHROUGH:
            if name in data:
                if not isinstance(data[name], dict):
                    raise ServeConfigError(f"{source}: [{name}] must be a table/mapping")
                kwargs[name] = dict(data[name])
        cfg = cls(**kwargs)
        cfg._check()
        return cfg

    def _check(self) -> None:
        s = self.source
        for name, port in (("audiosocket", self.audiosocket.port), ("ami", self.ami.port),
                           ("metrics", self.metrics.port)):
            if not 0 <= port <= 65535:
                raise ServeConfigError(f"{s}: [{name}].port: {port} is not a TCP port (0-65535)")
        if self.audiosocket.max_calls < 1:
            raise ServeConfigError(f"{s}: [audiosocket].max_calls must be at least 1")
        if self.audiosocket.capacity < 0:
            raise ServeConfigError(f"{s}: [audiosocket].capacity must be 0 (auto) or more")
        if self.audiosocket.uuid_timeout_s <= 0:
            raise ServeConfigError(f"{s}: [audiosocket].uuid_timeout_s must be positive")
        h = self.audiosocket.handler
        if h != "voice" and (":" not in h or not all(h.split(":", 1))):
            raise ServeConfigError(f"{s}: [audiosocket].handler: 'voice' or 'module:factory', "
                                   f"not {h!r}")
        if self.handoff.mode not in ("dialplan", "redirect"):
            raise ServeConfigError(f"{s}: [handoff].mode: 'dialplan' or 'redirect', not "
                                   f"{self.handoff.mode!r}")
        if self.handoff.mode == "redirect" and not self.ami.enabled:
            raise ServeConfigError(f"{s}: [handoff].mode = 'redirect' needs [ami] enabled = true")
        if self.ami.enabled and not (self.ami.secret or self.ami.secret_env):
            raise ServeConfigError(f"{s}: [ami]: set secret_env (or secret) when enabled")


def _type_ok(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return True, None
        return _type_ok(value, next(a for a in args if a is not type(None)))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return True, float(value)
    if hint in (int, float) and isinstance(value, bool):
        return False, value
    return isinstance(value, hint), value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ServeConfigError(f"{where} must be a table/mapping, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ServeConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                               f"(known: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in data.items():
        ok, coerced = _type_ok(value, hints[name])
        if not ok:
            want = getattr(hints[name], "__name__", str(hints[name]))
            raise ServeConfigError(f"{where}.{name}: expected {want}, got "
                                   f"{type(value).__name__} ({value!r})")
        kwargs[name] = coerced
    return cls(**kwargs)


def load_serve_config(path: Path | None) -> ServeConfig:
    """Read and validate a TOML (``.toml``) or YAML file; ``None`` gives the defaults."""
    if path is None:
        return ServeConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ServeConfigError(f"cannot read serve config {p}: {exc.strerror or exc}") from exc
    is_toml = p.suffix.lower() == ".toml"
    try:
        data = tomllib.loads(text) if is_toml else (yaml.safe_load(text) or {})
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ServeConfigError(f"{p}: not valid {'TOML' if is_toml else 'YAML'}: {exc}") from exc
    return ServeConfig.from_dict(data, source=str(p))
