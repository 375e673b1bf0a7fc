"""Whisper on a fitted window (voice/whisper_fit.py): same words as the 30 s path, a
smaller encoder input, and the 30 s path whenever the fitted decode looks derailed."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from voice import whisper_fit
from voice.whisper_fit import FULL_FRAMES, fitted_frames

ROOT = Path(__file__).resolve().parent.parent


def test_window_is_the_speech_plus_a_second_within_bounds() -> None:
    assert fitted_frames(200) == 2000  # a 2 s "oui merci": the 20 s minimum
    assert fitted_frames(2234) == 2350  # 22.3 s + 1 s, rounded up to 0.5 s
    assert fitted_frames(2950) == FULL_FRAMES
    assert fitted_frames(2999) == FULL_FRAMES


def test_a_derailed_decode_is_recognised() -> None:
    assert whisper_fit._looks_derailed("merci " * 40, 80, 3.0, -0.3)  # repetition
    assert whisper_fit._looks_derailed("bonjour madame", 200, 2.0, -0.3)  # too long for 2 s
    assert whisper_fit._looks_derailed("bonjour madame", 4, 2.0, -2.0)  # very unsure
    assert not whisper_fit._looks_derailed("Oui, c'est parfait pour moi, merci.", 12, 2.6, -0.3)
    prompt = "Un rendez-vous le matin ou l'après-midi, votre date de naissance."
    assert whisper_fit.echoes_prompt("Un rendez-vous le matin ou l'après-midi.", prompt)
    assert not whisper_fit.echoes_prompt("Je voudrais un rendez-vous jeudi matin.", prompt)
    assert not whisper_fit.echoes_prompt("Un rendez-vous.", None)


def test_a_prompt_echo_on_the_30_s_path_is_decoded_again_without_the_prompt() -> None:
    """Whisper "transcribed" its initial prompt for a chest-pain call on both paths (a CI
    run): the words of the caller come from one more decode without the prompt."""
    from voice.stt import WhisperEngine

    prompts: list[str | None] = []

    class Segment:
        no_speech_prob, avg_logprob = 0.1, -0.3

        def __init__(self, text: str) -> None:
            self.text = text

    class Info:
        language = "fr"

    class EchoingModel:  # a faster-whisper double: echoes the prompt whenever it has one
        def transcribe(self, audio: np.ndarray, **kw: object) -> tuple[object, Info]:
            prompts.append(kw.get("initial_prompt"))  # type: ignore[arg-type]
            said = ("Un rendez-vous le matin ou l'après-midi, une consultation."
                    if kw.get("initial_prompt") else "J'ai une douleur dans la poitrine.")
            return iter([Segment(said)]), Info()

    prompt = ("Cabinet. docteur Morel. Un rendez-vous le matin ou l'après-midi, une "
              "consultation, votre date de naissance.")
    engine = WhisperEngine(model_dir=Path("unused"), initial_prompt=prompt, window="full")
    engine._model = EchoingModel()
    heard = engine.transcribe(np.zeros(16000, np.int16).tobytes(), 16000)
    assert heard.text == "J'ai une douleur dans la poitrine." and prompts == [prompt, None]


def _load(path: Path) -> np.ndarray:
    import soxr

    with wave.open(str(path)) as w:
        rate = w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    return soxr.resample(audio, rate, 16000) if rate != 16000 else audio


@pytest.mark.models
def test_fitted_window_hears_what_the_full_window_hears() -> None:
    from twin.models import ModelError, require
    from voice.stt import WhisperEngine

    try:
        model_dir = require("whisper-base")
    except ModelError as exc:
        pytest.skip(str(exc))
    fit = WhisperEngine(model_dir=model_dir, beam_size=1, window="fit")
    fit.load()
    full = WhisperEngine(model_dir=model_dir, beam_size=1, window="full")
    full._model = fit._model  # one loaded model, two decode paths
    wav = ROOT / "demo_audio" / "11_confirm_slot.wav"
    with wave.open(str(wav)) as w:
        pcm, rate = w.readframes(w.getnframes()), w.getframerate()
    a = fit.transcribe(pcm, rate)
    b = full.transcribe(pcm, rate)
    for t in (a, b):
        words = t.text.lower()
        assert "parfait" in words and "merci" in words, t.text
    # the fitted path really encoded less than 30 s
    result = whisper_fit.transcribe_fitted(fit._model, _load(wav), language="fr", beam_size=1,
                                           initial_prompt=None)
    assert result is not None and result.frames < FULL_FRAMES
    # longer than one window: the caller runs the 30 s path
    long_audio = np.zeros(16000 * 31, dtype=np.float32)
    assert whisper_fit.transcribe_fitted(fit._model, long_audio, language="fr", beam_size=1,
                                         initial_prompt=None) is None


def test_window_setting_is_checked() -> None:
    from voice.stt import WhisperEngine

    with pytest.raises(ValueError, match="window"):
        WhisperEngine(model_dir=Path("x"), window="tiny")


def test_the_live_stt_does_not_wait_for_a_late_transcript(tmp_path: Path) -> None:
    """Segmented transcripts are final: pipecat must not hold a turn for one more (its 1.0 s
    default held every split utterance 0.8 s after its whole transcript, bench/latency.py)."""
    from voice.stt import WhisperEngine, WhisperSTT

    engine = WhisperEngine(model_dir=tmp_path)  # nothing is loaded by the constructor
    assert WhisperSTT(engine=engine).service_metadata_frame().ttfs_p99_latency == pytest.approx(0.25)
    stt = WhisperSTT(engine=engine, vad_stop_s=0.3)
    assert stt.service_metadata_frame().ttfs_p99_latency == pytest.approx(0.35)
