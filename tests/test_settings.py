"""Settings files: defaults, production overrides, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.settings import Settings, SettingsError


def test_defaults_are_the_embedded_setup(tmp_path: Path) -> None:
    s = Settings.load(None, env={})
    assert s.llm.base_url is None and s.llm.model.startswith("qwen2.5-coder-1.5b")
    assert s.tts.engine == "espeak" and s.stt.language == "fr"
    assert s.db_url.startswith("sqlite+aiosqlite:///")


def test_production_yaml_and_env_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "prod.yaml"
    cfg.write_text("llm:\n  base_url: http://ollama:11434/v1\n  model: qwen2.5:7b-instruct\n"
                   "tts:\n  engine: piper\n  piper_model: /voices/fr_FR-siwis-medium.onnx\n"
                   "database_url: postgresql+asyncpg://twin@db/twin\n")
    s = Settings.load(cfg, env={"TWIN_LLM_MODEL": "mistral-nemo"})
    assert s.llm.base_url == "http://ollama:11434/v1" and s.llm.model == "mistral-nemo"
    assert s.tts.engine == "piper" and s.db_url == "postgresql+asyncpg://twin@db/twin"


def test_toml_is_accepted(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('[llm]\ntemperature = 0\nmax_tokens = 200\n[stt]\nbeam_size = 1\n'
                   'speculate_after_s = -1\n')
    s = Settings.load(cfg, env={})
    assert s.llm.temperature == 0.0 and s.stt.beam_size == 1
    assert s.stt.speculate_after_s == -1.0  # decode at the VAD's stop only
    assert Settings.load(None, env={}).stt.speculate_after_s == 0.0  # at the pause's onset


@pytest.mark.parametrize("text,message", [
    ("llm:\n  modle: x\n", r"llm: unknown key\(s\) modle"),
    ("llm: fast\n", "'llm' must be a table"),
    ("stt:\n  beam_size: five\n", r"stt.beam_size: expected int"),
    ("stt:\n  speculate_after_s: soon\n", r"stt.speculate_after_s: expected float"),
    ("tts:\n  engine: festival\n", "must be 'espeak' or 'piper'"),
    ("tts:\n  engine: piper\n", "piper_model: required"),
    ("colour: blue\n", "unknown key 'colour'"),
    ("llm: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
])
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=message):
        Settings.load(cfg, env={})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        Settings.load(tmp_path / "nope.yaml", env={})
