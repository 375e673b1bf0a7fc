"""Settings of the voice assistant: which LLM, STT, TTS, database and practice profile.

Defaults are the embedded setup (everything local, models from ``twin models
install``). Production points ``llm.base_url`` at Ollama (or any
OpenAI-compatible server) and ``tts`` at a French Piper voice. Settings come
from a YAML or TOML file (``--config``), then ``TWIN_*`` environment variables.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from twin.models import DEFAULT_LLM, data_dir

__all__ = ["LLMSettings", "RetentionSettings", "STTSettings", "Settings", "SettingsError",
           "TTSSettings"]


class SettingsError(ValueError):
    """A configuration file or value is invalid."""


@dataclass
class LLMSettings:
    base_url: str | None = field(default=None, metadata={
        "help": "OpenAI-compatible endpoint, e.g. http://ollama:11434/v1. Empty: start the "
                "embedded llama.cpp server with `model`."})
    model: str = field(default=DEFAULT_LLM, metadata={
        "help": "Embedded: an installed model name (twin models list). Remote: the server's model "
                "name, e.g. qwen2.5:7b-instruct for Ollama."})
    api_key: str = field(default="local", metadata={"help": "API key for the remote server."})
    temperature: float = field(default=0.2, metadata={"help": "Sampling temperature."})
    max_tokens: int = field(default=160, metadata={"help": "Longest reply, in tokens."})
    n_ctx: int = field(default=4096, metadata={"help": "Embedded server context window."})
    threads: int = field(default=0, metadata={"help": "Embedded server threads (0 = all cores)."})
    timeout_s: float = field(default=30.0, metadata={"help": "Per-request timeout; beyond it the "
                                                               "call is handed to a human."})


@dataclass
class STTSettings:
    model: str = field(default="whisper-base", metadata={"help": "Installed Whisper model name, or a "
                                                                  "path to a CTranslate2 model folder."})
    language: str = field(default="fr", metadata={"help": "Forced transcription language."})
    beam_size: int = field(default=5, metadata={"help": "Beam size (1 is faster, 5 is more accurate)."})
    vad_stop_s: float = field(default=0.2, metadata={
        "help": "Silence (s) before the VAD ends a speech segment; smart-turn v3 then decides "
                "whether the turn is over. Longer: fewer split sentences, slower answers."})
    speculate_after_s: float = field(default=0.0, metadata={
        "help": "Start decoding this long (s) into a pause, before the VAD calls the speech "
                "over; kept if nothing but quiet follows, so the transcript is ready up to "
                "vad_stop_s sooner. Negative: off (decode at the VAD's stop)."})
    window: str = field(default="fit", metadata={
        "help": "fit: encode the utterance plus 1 s (at least 20 s) instead of Whisper's fixed "
                "30 s window (half the time per utterance, same or better WER on the phone "
                "fixtures); full: always 30 s."})
    workers: int = field(default=0, metadata={
        "help": "Transcriptions run at once (the cores are split between them); 0: one per "
                "two cores. twin serve admits calls by the measured pace of these."})


@dataclass
class TTSSettings:
    engine: str = field(default="espeak", metadata={"help": "espeak (embedded French) or piper."})
    piper_model: str | None = field(default=None, metadata={
        "help": "Path to a Piper .onnx voice (its .onnx.json beside it), e.g. fr_FR-siwis-medium.onnx."})
    language: str = field(default="fr", metadata={"help": "eSpeak NG voice language."})
    rate_wpm: int = field(default=165, metadata={"help": "eSpeak NG speaking rate, words per minute."})


@dataclass
class RetentionSettings:
    audio_days: int = field(default=183, metadata={
        "help": "Days a call's audio is kept (6 months, the CNIL's guidance for recorded "
                "calls); `twin transcripts purge --config` deletes it afterwards, the text "
                "stays until transcripts_days."})
    transcripts_days: int = field(default=365, metadata={
        "help": "Days a call's transcript, labels and reviews are kept (1 year); then the "
                "whole call is deleted. At least audio_days."})


@dataclass
class Settings:
    data_dir: str = field(default_factory=lambda: str(data_dir()), metadata={
        "help": "Folder for the database, recordings and logs."})
    database_url: str | None = field(default=None, metadata={
        "help": "SQLAlchemy async URL; empty: SQLite in data_dir/agenda.db."})
    profile: str | None = field(default=None, metadata={
        "help": "Practice profile YAML (relative: to the settings file); empty: the demo "
                "practice. $TWIN_PROFILE overrides it."})
    recordings_dir: str | None = field(default=None, metadata={
        "help": "Where call recordings go; empty: data_dir/recordings."})
    policy: str = field(default="rules", metadata={
        "help": "Dialogue policy: rules (the hand-written booking core, then the LLM), model "
                "(the twin: the LLM in the secretaries' action vocabulary) or hybrid (rules "
                "where they are sure, the twin elsewhere). The guard holds for all three."})
    llm: LLMSettings = field(default_factory=LLMSettings)
    stt: STTSettings = field(default_factory=STTSettings)
    tts: TTSSettings = field(default_factory=TTSSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{Path(self.data_dir) / 'agenda.db'}"

    @property
    def recordings_path(self) -> Path:
        return Path(self.recordings_dir) if self.recordings_dir else Path(self.data_dir) / "recordings"

    @property
    def profile_path(self) -> Path:
        if self.profile:
            return Path(self.profile)
        from knowledge.profile import default_profile_path

        return Path(default_profile_path())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "settings") -> Settings:
        subs = {"llm": LLMSettings, "stt": STTSettings, "tts": TTSSettings,
                "retention": RetentionSettings}
        kwargs: dict[str, Any] = {}
        known = {f.name for f in fields(cls)}
        for key, value in (data or {}).items():
            if key not in known:
                raise SettingsError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})")
            if key in subs:
                if not isinstance(value, dict):
                    raise SettingsError(f"{where}: '{key}' must be a table/mapping")
                kwargs[key] = _build(subs[key], value, f"{where}.{key}")
            else:
                kwargs[key] = _coerce(value, str, f"{where}.{key}", optional=True)
        settings = cls(**kwargs)
        if settings.policy not in {"rules", "model", "hybrid"}:
            raise SettingsError(f"{where}.policy: must be 'rules', 'model' or 'hybrid', not "
                                f"'{settings.policy}'")
        if settings.stt.window not in {"fit", "full"}:
            raise SettingsError(f"{where}.stt.window: must be 'fit' or 'full', not "
                                f"'{settings.stt.window}'")
        if settings.tts.engine not in {"espeak", "piper"}:
            raise SettingsError(f"{where}.tts.engine: must be 'espeak' or 'piper', not "
                                f"'{settings.tts.engine}'")
        if settings.tts.engine == "piper" and not settings.tts.piper_model:
            raise SettingsError(f"{where}.tts.piper_model: required when tts.engine is 'piper'")
        r = settings.retention
        if min(r.audio_days, r.transcripts_days) < 1 or r.audio_days > r.transcripts_days:
            raise SettingsError(f"{where}.retention: days must be >= 1 and audio_days <= "
                                f"transcripts_days (got {r.audio_days} and {r.transcripts_days})")
        return settings

    @classmethod
    def load(cls, path: Path | None = None, *, env: dict[str, str] | None = None) -> Settings:
        data: dict[str, Any] = {}
        if path is not None:
            try:
                text = path.read_text()
            except OSError as exc:
                raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
            try:
                data = tomllib.loads(text) if path.suffix == ".toml" else (yaml.safe_load(text) or {})
            except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
                raise SettingsError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: "
                                    f"{exc}") from exc
            if not isinstance(data, dict):
                raise SettingsError(f"{path}: the top level must be a mapping")
        settings = cls.from_dict(data, where=str(path) if path else "settings")
        if settings.profile and path is not None and not Path(settings.profile).is_absolute() \
                and (path.parent / settings.profile).is_file():
            settings.profile = str(path.parent / settings.profile)  # relative to the config file
        return settings.with_env(env)

    def with_env(self, env: dict[str, str] | None = None) -> Settings:
        """Apply ``TWIN_LLM_URL``, ``TWIN_LLM_MODEL``, ``TWIN_DATABASE_URL`` and ``TWIN_PROFILE``
        (they win over the file); ``env`` defaults to the process environment."""
        env = dict(os.environ) if env is None else env
        if env.get("TWIN_LLM_URL"):
            self.llm.base_url = env["TWIN_LLM_URL"]
        if env.get("TWIN_LLM_MODEL"):
            self.llm.model = env["TWIN_LLM_MODEL"]
        if env.get("TWIN_DATABASE_URL"):
            self.database_url = env["TWIN_DATABASE_URL"]
        if env.get("TWIN_PROFILE"):
            self.profile = env["TWIN_PROFILE"]
        return self


def _coerce(value: Any, typ: type, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise SettingsError(f"{where}: expected {typ.__name__}, got {type(value).__name__} ({value!r})")
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    types = {"str": str, "int": int, "float": float, "str | None": str}
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], types[str(f.type)], f"{where}.{f.name}",
                                     optional="None" in str(f.type))
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise SettingsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return cls(**kwargs)
