"""The parts of transcription that need no Whisper model: diarization of a mono call against
its reference turn timings, role assignment, turn building."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from transcripts.audio import load_channels
from transcripts.diarize import assign_roles, diarize
from transcripts.transcribe import _merge, _phrases, _Utterance

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts"


def test_diarize_mono_call_against_reference_timings() -> None:
    audio = load_channels(FIXTURES / "P3-023_mono.flac")[0]
    reference = json.loads((FIXTURES / "P3-023_mono.json").read_text())["turns"]
    segments = diarize(audio)
    assert len(segments) >= 10 and {s.label for s in segments} == {0, 1}
    assert segments[0].label == 0  # cluster 0 = whoever speaks first
    frames = np.arange(0.0, len(audio) / 16000, 0.01)
    ref = np.full(len(frames), -1)
    for turn in reference:
        inside = (frames >= turn["start_s"]) & (frames < turn["end_s"])
        ref[inside] = np.where(ref[inside] == -1, 0 if turn["speaker"] == "secretary" else 1, 2)
    hyp = np.full(len(frames), -1)
    for s in segments:
        hyp[(frames >= s.start_s) & (frames < s.end_s)] = s.label
    scored = (ref >= 0) & (ref < 2) & (hyp >= 0)
    assert scored.sum() > 3000  # 30 s of speech scored
    accuracy = float((ref[scored] == hyp[scored]).mean())
    assert accuracy >= 0.85, accuracy


def test_diarize_silence_and_noise() -> None:
    assert diarize(np.zeros(16000 * 3, dtype=np.float32)) == []
    noise = (np.random.default_rng(0).normal(0, 0.001, 16000 * 3)).astype(np.float32)
    assert diarize(noise) == []


@pytest.mark.parametrize(("opening", "greetings", "secretary"), [
    ([(0, "Cabinet médical, bonjour"), (1, "Bonjour, je voudrais…")], (), 0),
    ([(1, "Allô ?"), (0, "Cabinet des Tilleuls, bonjour")], (), 1),  # first speaker wins
    ([(1, "Allô ?"), (0, "Cabinet des Tilleuls, bonjour")], ("tilleuls",), 0),
    # a greeting word late in a turn does not count
    ([(1, "Allô ?"), (0, "oui je voulais savoir si le cabinet des tilleuls est ouvert")],
     ("tilleuls",), 1),
    ([], (), 0),
])
def test_assign_roles(opening: list[tuple[int, str]], greetings: tuple[str, ...],
                      secretary: int) -> None:
    roles = assign_roles(opening, greetings)
    assert roles[secretary] == "secretary" and roles[1 - secretary] == "patient"


def _w(text: str, start: float, end: float) -> dict[str, object]:
    return {"w": text, "start": start, "end": end, "p": 0.9}


def test_stereo_utterances_merge_into_turns_by_time() -> None:
    utterances = sorted([
        _Utterance("secretary", 1.0, 3.0, [_w(" Cabinet,", 1.0, 1.5), _w(" bonjour.", 1.6, 3.0)],
                   "Cabinet, bonjour."),
        _Utterance("patient", 3.4, 6.0, [_w(" Bonjour,", 3.4, 4.0)], "Bonjour,"),
        _Utterance("patient", 6.5, 8.0, [_w(" je", 6.5, 6.8)], "je voudrais un rendez-vous."),
        _Utterance("secretary", 7.8, 9.0, [_w(" Oui.", 7.8, 9.0)], "Oui."),  # overlap
        _Utterance("secretary", 30.0, 31.0, [_w(" Allô ?", 30.0, 31.0)], "Allô ?"),
    ], key=lambda u: u.start)
    turns = _merge(utterances, max_pause_s=8.0)
    assert [(t.speaker, t.text) for t in turns] == [
        ("secretary", "Cabinet, bonjour."),
        ("patient", "Bonjour, je voudrais un rendez-vous."),
        ("secretary", "Oui."),
        ("secretary", "Allô ?"),  # after a long silence: a turn of its own
    ]
    assert turns[1].start_s == 3.4 and turns[1].end_s == 8.0 and len(turns[1].words) == 2
    assert turns[0].confidence == pytest.approx(0.9)


def test_phrases_cut_at_pauses_and_sentence_ends() -> None:
    words = [_w(" Oui", 0.0, 0.2), _w(" bonjour.", 0.25, 0.6), _w(" Je", 0.65, 0.8),
             _w(" voudrais", 0.85, 1.2), _w(" un", 1.8, 1.9), _w(" rendez-vous", 1.95, 2.4)]
    assert [[w["w"] for w in p] for p in _phrases(words)] == [
        [" Oui", " bonjour."], [" Je", " voudrais"], [" un", " rendez-vous"]]
