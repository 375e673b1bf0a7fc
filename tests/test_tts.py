"""Text-to-speech engines: eSpeak NG (embedded French) and Piper (production engine)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.models import ModelMissingError, require
from voice.tts import ESpeakTTS, PiperTTS


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_espeak_speaks_french() -> None:
    tts = ESpeakTTS(language="fr")
    tts.load()
    audio = tts.synthesize("Le docteur Morel peut vous recevoir jeudi 3 décembre à 14 heures.")
    seconds = len(audio) / tts.sample_rate
    assert audio.dtype == np.int16 and 2.0 < seconds < 8.0 and _rms(audio) > 500
    short = tts.synthesize("Oui.")
    assert len(short) < len(audio) / 4


def test_espeak_rejects_an_unknown_voice() -> None:
    from voice.espeak import ESpeakError

    tts = ESpeakTTS(language="xx-nope")
    tts.load()
    with pytest.raises(ESpeakError, match="no voice"):
        tts.synthesize("bonjour")


@pytest.mark.models
def test_piper_voice_from_the_registry_package() -> None:
    try:
        folder = require("piper-en_US-joe-medium")
    except ModelMissingError as exc:
        pytest.fail(str(exc))
    tts = PiperTTS(model_path=folder / "en_US-joe-medium.onnx")
    tts.load()
    assert tts.sample_rate == 22050
    audio = tts.synthesize("Your appointment with doctor Morel is on Thursday at two pm.")
    seconds = len(audio) / tts.sample_rate
    assert 1.5 < seconds < 8.0 and _rms(audio) > 500


def test_piper_missing_voice_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"fr_FR-missing\.onnx"):
        PiperTTS(model_path=tmp_path / "fr_FR-missing.onnx").load()
