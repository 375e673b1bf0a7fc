"""Ingesting recordings: decoding WAV/FLAC/MP3 with the channels kept apart, dedup by content
hash, metadata, and bad files rejected while the rest of the batch goes on (no model needed)."""

from __future__ import annotations

import json
import wave
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from click.testing import CliRunner

from transcripts import TranscriptStore
from transcripts.audio import AudioError, load_channels, probe, write_audio
from transcripts.ingest import discover, ingest, started_at_from_name

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts"
STEREO = FIXTURES / "P1-001_head.flac"  # left: the caller, right: the secretary


def _tone(freq: float, seconds: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3"])
def test_write_and_decode_keep_channels_apart(tmp_path: Path, suffix: str) -> None:
    left, right = _tone(300.0, 2.0), _tone(1200.0, 2.0)
    right[: len(right) // 2] = 0.0  # right silent for the first second
    path = tmp_path / f"call{suffix}"
    write_audio(path, [left, right], rate=8000)
    info = probe(path)
    assert (info.channels, info.sample_rate) == (2, 8000)
    assert info.duration_s == pytest.approx(2.0, abs=0.08)  # MP3 pads a frame
    chans = load_channels(path)  # 16 kHz
    assert len(chans) == 2 and abs(len(chans[0]) / 16000 - 2.0) < 0.08

    def dominant(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x))
        return float(np.argmax(spec) * 16000 / len(x))

    mid = slice(int(0.2 * 16000), int(0.8 * 16000))
    assert dominant(chans[0][mid]) == pytest.approx(300.0, abs=5)
    assert np.sqrt(np.mean(chans[1][mid] ** 2)) < 0.01  # nothing leaked from the left
    late = slice(int(1.2 * 16000), int(1.8 * 16000))
    assert dominant(chans[1][late]) == pytest.approx(1200.0, abs=5)


def test_lossless_roundtrip_of_the_fixture(tmp_path: Path) -> None:
    src = load_channels(STEREO, rate=8000)
    out = tmp_path / "copy.wav"
    write_audio(out, src, rate=8000)
    back = load_channels(out, rate=8000)
    assert all(np.array_equal(a, b) for a, b in zip(src, back, strict=True))


def test_bad_files_have_clear_reasons(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        probe(empty)
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError):
        probe(garbage)
    header_only = tmp_path / "header_only.wav"
    with wave.open(str(header_only), "wb") as w:  # a valid header, no samples
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    with pytest.raises(AudioError, match="no audio"):
        probe(header_only)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(STEREO.read_bytes()[:100])
    with pytest.raises(AudioError):
        probe(truncated)


def test_dates_in_file_names() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert started_at_from_name("20261005-083400-sec.wav", tz=paris) == datetime(
        2026, 10, 5, 6, 34, tzinfo=UTC)
    assert started_at_from_name("call_2026-10-05_08-34-12.flac", tz=paris) == datetime(
        2026, 10, 5, 6, 34, 12, tzinfo=UTC)
    assert started_at_from_name("1759646040.1234.wav") == datetime.fromtimestamp(1759646040, UTC)
    assert started_at_from_name("recording.wav") is None
    assert started_at_from_name("20261345-999999.wav") is None  # not a date


def test_discover(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.WAV", "a/b/y.flac", "a/b/z.mp3", "a/notes.txt", "a/x.wav.json"):
        (tmp_path / name).write_bytes(b"1")
    files, rejected = discover([tmp_path / "a", tmp_path / "a" / "notes.txt",
                                tmp_path / "missing.wav", tmp_path / "a" / "b" / "y.flac"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a/b/y.flac", "a/b/z.mp3",
                                                                   "a/x.WAV"]
    reasons = {r.path.name: r.reason for r in rejected}
    assert "unsupported" in reasons["notes.txt"] and "no such" in reasons["missing.wav"]


def _batch(folder: Path) -> dict[str, Path]:
    """A batch like a practice's archive: good files in three formats, bad ones among them."""
    folder.mkdir(parents=True, exist_ok=True)
    src = load_channels(STEREO, rate=8000)
    files = {
        "stereo": folder / "20261005-083400.flac",
        "mono": folder / "mono" / "2026-10-06_09-15-00.wav",
        "mp3": folder / "mono" / "caller.mp3",
        "empty": folder / "empty.wav",
        "corrupt": folder / "corrupt.flac",
    }
    files["stereo"].write_bytes(STEREO.read_bytes())
    files["mono"].parent.mkdir()
    write_audio(files["mono"], [(src[0] + src[1]) / 2], rate=8000)
    write_audio(files["mp3"], [src[0][: 8000 * 8]], rate=8000)
    files["empty"].write_bytes(b"")
    files["corrupt"].write_bytes(b"fLaC" + bytes(range(256)) * 8)
    (folder / "mono" / "2026-10-06_09-15-00.json").write_text(json.dumps(
        {"secretary_id": "sec-bruno", "caller_number": "+33600000000",
         "started_at": "2026-10-06T09:15:30+02:00"}))
    return files


async def test_ingest_batch_dedups_and_rejects_without_stopping(
        store: TranscriptStore, tmp_path: Path) -> None:
    files = _batch(tmp_path / "archive")
    seen: list[str] = []
    report = await ingest(store, [tmp_path / "archive"], secretary_id="sec-amelie",
                          tz=ZoneInfo("Europe/Paris"), on_file=lambda p, m: seen.append(p.name))
    assert sorted(p.name for p, _ in report.added) == sorted(
        files[k].name for k in ("stereo", "mono", "mp3"))
    assert {r.path.name: r.reason for r in report.rejected}.keys() == {"empty.wav", "corrupt.flac"}
    assert "empty file" in next(r.reason for r in report.rejected if r.path.name == "empty.wav")
    assert report.duplicates == [] and not report.failed_all
    assert len(seen) == 5

    ids = dict((p.name, cid) for p, cid in report.added)
    stereo = await store.get_call(ids[files["stereo"].name], can_see_pii=True)
    assert stereo is not None
    assert (stereo.source, stereo.status, stereo.channels, stereo.sample_rate) == (
        "recording", "new", 2, 8000)
    assert stereo.external_id == f"rec-{stereo.audio_sha256[:12]}"
    assert stereo.duration_s == pytest.approx(26.8, abs=0.01)
    assert stereo.secretary_id == "sec-amelie"
    assert stereo.started_at == datetime(2026, 10, 5, 6, 34, tzinfo=UTC)
    assert stereo.metadata["channel_roles"] == ["patient", "secretary"]
    assert stereo.audio_path == str(files["stereo"].resolve())
    mono = await store.get_call(ids[files["mono"].name], can_see_pii=True)
    assert mono is not None and mono.channels == 1 and "channel_roles" not in mono.metadata
    # the sidecar wins over --secretary and the file name
    assert mono.secretary_id == "sec-bruno" and mono.caller_number == "+33600000000"
    assert mono.started_at == datetime(2026, 10, 6, 7, 15, 30, tzinfo=UTC)
    assert mono.metadata["started_at_source"] == "sidecar"

    # the same recordings again, one under another name: nothing new
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "renamed.flac").write_bytes(files["stereo"].read_bytes())
    again = await ingest(store, [tmp_path / "archive", tmp_path / "again"])
    assert again.added == []
    assert sorted(cid for _, cid in again.duplicates) == sorted(
        [*ids.values(), ids[files["stereo"].name]])
    assert (await store.list_calls()).total == 3


def test_cli_ingest_exit_status(tmp_path: Path) -> None:
    from transcripts.cli import cli

    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    files = _batch(tmp_path / "archive")
    runner = CliRunner()
    bad = runner.invoke(cli, ["ingest", "--url", url, str(files["empty"]), str(files["corrupt"])])
    assert bad.exit_code == 1, bad.output
    assert "REJECTED" in bad.output and "ingested 0 recording(s)" in bad.output
    good = runner.invoke(cli, ["ingest", "--url", url, "--secretary", "sec-chloe",
                               "--channels", "secretary,patient", str(tmp_path / "archive")])
    assert good.exit_code == 0, good.output
    assert "ingested 3 recording(s)" in good.output and "2 rejected" in good.output
    rerun = runner.invoke(cli, ["ingest", "--url", url, str(tmp_path / "archive")])
    assert rerun.exit_code == 0 and "3 already stored" in rerun.output
    listing = runner.invoke(cli, ["list", "--url", url])
    assert listing.exit_code == 0 and listing.output.count("rec-") == 3
    wrong = runner.invoke(cli, ["ingest", "--url", url, "--channels", "left,right", "x.wav"])
    assert wrong.exit_code == 2 and "patient,secretary" in wrong.output
