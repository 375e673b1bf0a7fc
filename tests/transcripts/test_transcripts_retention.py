"""Retention: expired audio and calls are purged with a fixed clock; objections; the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from transcripts import NewCall, NewTurn, TranscriptStore
from transcripts.retention import RetentionError, RetentionPolicy, purge

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


async def _add(store: TranscriptStore, tmp_path: Path, name: str, age_days: int) -> tuple[int, Path]:
    audio = tmp_path / f"{name}.wav"
    audio.write_bytes(b"RIFF....WAVEfmt ")
    cid = await store.add_call(NewCall(
        external_id=name, source="recording", started_at=NOW - timedelta(days=age_days),
        audio_path=str(audio), audio_sha256=name.ljust(64, "0"), status="transcribed",
        turns=[NewTurn(speaker="secretary", text="Cabinet médical, bonjour."),
               NewTurn(speaker="patient", text="Bonjour, c'est pour un rendez-vous.")]),
        actor="ingest")
    return cid, audio


async def test_purge_by_kind_with_a_fixed_clock(store: TranscriptStore, tmp_path: Path) -> None:
    recent, recent_audio = await _add(store, tmp_path, "recent", 30)
    mid, mid_audio = await _add(store, tmp_path, "mid", 200)  # audio expired, text kept
    old, old_audio = await _add(store, tmp_path, "old", 400)  # everything expired
    policy = RetentionPolicy()
    assert (policy.audio_days, policy.transcripts_days) == (183, 365)

    dry = await purge(store, policy, now=NOW, dry_run=True)
    assert (dry.audio_deleted, dry.calls_deleted) == (1, 1)
    assert mid_audio.exists() and old_audio.exists()
    assert (await store.list_calls()).total == 3

    report = await purge(store, policy, now=NOW)
    assert (report.audio_deleted, report.calls_deleted, report.failures) == (1, 1, [])
    assert recent_audio.exists() and not mid_audio.exists() and not old_audio.exists()
    assert await store.get_call(old, can_see_pii=False) is None
    kept = await store.get_call(mid, can_see_pii=False)
    assert kept is not None and kept.audio_path is None and len(kept.turns) == 2
    assert kept.audio_deleted_at is not None
    fresh = await store.get_call(recent, can_see_pii=False)
    assert fresh is not None and fresh.audio_path == str(recent_audio)

    runs = await store.list_audit(action="retention.purge")
    assert len(runs) == 1
    assert runs[0].after["audio_deleted"] == 1 and runs[0].after["calls_deleted"] == 1
    assert runs[0].after["policy"] == {"audio_days": 183, "transcripts_days": 365}
    # the deleted call leaves its audit trail (ids and reasons, no content)
    trail = await store.list_audit(call_id=old)
    assert [a.action for a in trail][:1] == ["call.delete"]
    assert trail[0].after == {"reason": "retention"}

    again = await purge(store, policy, now=NOW)
    assert (again.audio_deleted, again.calls_deleted) == (0, 0)
    later = await purge(store, RetentionPolicy(audio_days=10, transcripts_days=20), now=NOW)
    assert (later.audio_deleted, later.calls_deleted) == (0, 2)
    assert not recent_audio.exists()


def test_policy_from_files_and_validation(tmp_path: Path) -> None:
    yml = tmp_path / "transcripts.yaml"
    yml.write_text("retention:\n  audio_days: 90\n  transcripts_days: 200\nother: 1\n")
    assert RetentionPolicy.load(yml) == RetentionPolicy(audio_days=90, transcripts_days=200)
    toml = tmp_path / "t.toml"
    toml.write_text("[retention]\naudio_days = 30\n")
    assert RetentionPolicy.load(toml) == RetentionPolicy(audio_days=30)
    bad = tmp_path / "bad.yaml"
    bad.write_text("retention:\n  audio_dayz: 3\n")
    with pytest.raises(RetentionError, match="audio_dayz"):
        RetentionPolicy.load(bad)
    with pytest.raises(RetentionError):
        RetentionPolicy(audio_days=400, transcripts_days=365)
    with pytest.raises(RetentionError):
        RetentionPolicy(audio_days=0)


def test_purge_cli(tmp_path: Path) -> None:
    import asyncio

    from transcripts.cli import cli

    url = f"sqlite+aiosqlite:///{tmp_path / 'agenda.db'}"

    async def seed() -> None:
        store = TranscriptStore(url=url)
        await store.migrate()
        # ages relative to the real clock: the CLI purges "now"
        await store.add_call(NewCall(external_id="ancient", source="import",
                                     started_at=datetime.now(UTC) - timedelta(days=800),
                                     turns=[NewTurn(speaker="patient", text="Allô ?")]),
                             actor="test")
        await store.dispose()

    asyncio.run(seed())
    runner = CliRunner()
    dry = runner.invoke(cli, ["purge", "--dry-run", "--url", url])
    assert dry.exit_code == 0, dry.output
    assert "dry run: would delete" in dry.output and "and 1 calls" in dry.output
    done = runner.invoke(cli, ["purge", "--url", url, "--transcripts-days", "700"])
    assert done.exit_code == 0 and "deleted" in done.output and "and 1 calls" in done.output
    bad = runner.invoke(cli, ["purge", "--url", url, "--audio-days", "0"])
    assert bad.exit_code != 0 and "audio_days" in bad.output


def test_main_settings_carry_the_retention_policy(tmp_path: Path) -> None:
    from twin.settings import Settings, SettingsError

    defaults = Settings.load(None, env={}).retention
    # one policy, two places that must agree: the settings' defaults and the purge's
    assert (defaults.audio_days, defaults.transcripts_days) == (
        RetentionPolicy().audio_days, RetentionPolicy().transcripts_days) == (183, 365)
    cfg = tmp_path / "settings.yaml"
    cfg.write_text("retention:\n  audio_days: 90\n  transcripts_days: 200\n")
    s = Settings.load(cfg, env={})
    assert (s.retention.audio_days, s.retention.transcripts_days) == (90, 200)
    for bad in ("retention:\n  audio_days: 400\n", "retention:\n  transcripts_days: 0\n",
                "retention:\n  audio_dayz: 3\n"):
        cfg.write_text(bad)
        with pytest.raises(SettingsError, match="retention"):
            Settings.load(cfg, env={})


def test_purge_cli_reads_the_main_settings_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``--config settings.yaml``: its retention section and, without --url, its database."""
    import asyncio

    from transcripts.cli import cli

    monkeypatch.delenv("TWIN_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite+aiosqlite:///{data / 'agenda.db'}"

    async def seed() -> None:
        store = TranscriptStore(url=url)
        await store.migrate()
        for name, age in (("old", 300), ("older", 500)):
            await store.add_call(NewCall(external_id=name, source="import",
                                         started_at=datetime.now(UTC) - timedelta(days=age),
                                         turns=[NewTurn(speaker="patient", text="Allô ?")]),
                                 actor="test")
        await store.dispose()

    asyncio.run(seed())
    settings = tmp_path / "settings.yaml"  # a whole settings file, as twin serve reads it
    settings.write_text(f"data_dir: {data}\npolicy: rules\nstt:\n  beam_size: 1\n"
                        "retention:\n  audio_days: 100\n  transcripts_days: 400\n")
    runner = CliRunner()
    dry = runner.invoke(cli, ["purge", "--dry-run", "--config", str(settings)])
    assert dry.exit_code == 0, dry.output
    assert "and 1 calls" in dry.output  # 500 days old only: the file's 400, not the default 365
    # the existing flags still win over the file
    flag = runner.invoke(cli, ["purge", "--dry-run", "--config", str(settings),
                               "--transcripts-days", "200"])
    assert flag.exit_code == 0 and "and 2 calls" in flag.output, flag.output
    settings.write_text(f"data_dir: {data}\nretention:\n  audio_days: 500\n")
    bad = runner.invoke(cli, ["purge", "--config", str(settings)])
    assert bad.exit_code != 0 and "audio_days" in bad.output
