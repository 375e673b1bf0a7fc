"""Start and stop everything a call needs, from :class:`twin.settings.Settings`.

``async with voice_runtime(settings) as services:`` starts the embedded llama.cpp
server (unless a remote ``llm.base_url`` is set), loads Whisper and the TTS voice
once, opens the agenda database (creating it when new, and bringing the practice's
practitioners, types and schedules up to date from its profile; demo patients only with
``seed_demo=True``, for ``twin demo``) and loads the practice profile and safety rules.
``twin demo``, ``twin call`` and ``twin serve``
all go through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from twin import models
from twin.settings import Settings
from voice.call import VoiceServices, make_agent

__all__ = ["voice_runtime"]

logger = logging.getLogger(__name__)


def _stt_dir(settings: Settings) -> Path:
    candidate = Path(settings.stt.model).expanduser()
    if candidate.is_dir():
        return candidate
    return models.require(settings.stt.model)


PACE_SENTENCE = ("Bonjour, je voudrais prendre un rendez-vous avec le docteur jeudi "
                 "après-midi, si possible après seize heures.")


def stt_workers(configured: int, cores: int | None = None) -> int:
    """Parallel transcriptions: as configured, else one per two cores (at least one)."""
    return configured if configured > 0 else max(1, (cores or os.cpu_count() or 1) // 2)


def measure_stt_pace(whisper: Any, tts: Any) -> float:
    """Transcribe one spoken sentence (synthesised here, at phone rate) and return the
    decode time: what one utterance costs on this machine right now. It also primes
    ``whisper.decode_s``, which later transcriptions keep up to date."""
    import numpy as np

    from telephony.audio import resample

    samples = np.asarray(tts.synthesize(PACE_SENTENCE), dtype=np.int16)
    pcm = resample(samples.tobytes(), int(tts.sample_rate), 8000)
    result = whisper.transcribe(pcm, 8000)
    return float(whisper.decode_s if whisper.decode_s is not None else result.elapsed_s)


def _initial_prompt(profile: Any) -> str:
    names = ", ".join(f"docteur {p.last_name}" for p in getattr(profile, "practitioners", []))
    return (f"{profile.practice.name}. {names}. Un rendez-vous le matin ou l'après-midi, "
            "une consultation, votre date de naissance.")


def deployed_twin() -> dict[str, Any] | None:
    """The twin ``twin deploy`` switched to (its registry entry), or ``None``."""
    from twin_training.registry import current_deployment  # stdlib only: no torch here

    try:
        return current_deployment()
    except (OSError, ValueError) as exc:
        logger.warning("twin registry unreadable (%s): the model policy runs the base model", exc)
        return None


async def _start_twin(settings: Settings, deployment: dict[str, Any] | None, *, main_server: Any,
                      data: Path, note: Callable[[str], None]) -> tuple[Any, Any]:
    """The model policy's LLM: ``(its own embedded server or None, client or None)``.

    Embedded: the deployed twin's base GGUF with its GGUF adapter, on a server of its own
    (the replies after the rules stay with ``llm.model``), prompted exactly as in training
    (raw completions). Remote: the Ollama model ``twin deploy`` created, with the same raw
    prompts (its Modelfile's template is ``{{ .Prompt }}``). With no twin deployed, the base
    model plays the twin."""
    from voice.embedded_llm import EmbeddedLLMError, EmbeddedLLMServer
    from voice.model_policy import RawPromptLLM

    def raw(url: str, model: str) -> RawPromptLLM:
        return RawPromptLLM(base_url=url, model=model, api_key=settings.llm.api_key,
                            temperature=settings.llm.temperature,
                            max_tokens=settings.llm.max_tokens, timeout_s=settings.llm.timeout_s)

    if settings.llm.base_url:
        if deployment and deployment.get("ollama_model"):
            note(f"dialogue policy {settings.policy}: twin {deployment['ollama_model']} on "
                 f"{settings.llm.base_url}")
            return None, raw(str(settings.llm.base_url), str(deployment["ollama_model"]))
        note(f"dialogue policy {settings.policy}: no twin deployed on the server; "
             f"{settings.llm.model} proposes")
        return None, None
    if deployment and deployment.get("adapter_gguf") and deployment.get("base_gguf"):
        twin = EmbeddedLLMServer(model_path=Path(deployment["base_gguf"]),
                                 lora_path=Path(deployment["adapter_gguf"]),
                                 alias=str(deployment.get("id") or "twin"), n_ctx=settings.llm.n_ctx,
                                 n_threads=settings.llm.threads or None,
                                 log_path=data / "logs" / "llama-server-twin.log")
        t = time.monotonic()
        try:
            await twin.start()
        except EmbeddedLLMError as exc:  # the guard holds whatever proposes: answer on the base
            logger.error("the deployed twin did not start (%s): the base model proposes", exc)
            note(f"dialogue policy {settings.policy}: twin not started ({exc}); the base model "
                 "proposes")
            return None, raw(main_server.base_url, main_server.model_name)
        note(f"dialogue policy {settings.policy}: twin {twin.model_name} ready in "
             f"{time.monotonic() - t:.1f} s")
        return twin, raw(twin.base_url, twin.model_name)
    note(f"dialogue policy {settings.policy}: no twin deployed (twin deploy); the base model "
         "proposes")
    return None, raw(main_server.base_url, main_server.model_name)


@contextlib.asynccontextmanager
async def voice_runtime(settings: Settings, *, seed_demo: bool = False, audio: bool = True,
                        say: Callable[[str], None] | None = None) -> AsyncIterator[VoiceServices]:
    from knowledge.profile import load_profile
    from records import BookingService, Database
    from voice.embedded_llm import EmbeddedLLMServer
    from voice.llm import OpenAICompatibleLLM
    from voice.stt import WhisperEngine
    from voice.tts import ESpeakTTS, PiperTTS

    note = say or (lambda _m: None)
    data = Path(settings.data_dir)
    await asyncio.to_thread(data.mkdir, parents=True, exist_ok=True)
    profile = load_profile(settings.profile_path)

    # Fail fast, before anything starts, if a model is missing.
    stt_dir = _stt_dir(settings) if audio else None
    llm_model_dir = None if settings.llm.base_url else models.require(settings.llm.model)

    server = None
    twin_server: Any = None
    llm = None
    twin_llm: Any = None
    db = Database(url=settings.db_url)
    try:
        if llm_model_dir is not None:
            t = time.monotonic()
            # the fixed prompt's evaluated state is kept in <data>/llm-state: a restart loads it
            # instead of evaluating the prompt again (voice.llm_warm_state)
            server = EmbeddedLLMServer(model_path=llm_model_dir / "model.gguf", n_ctx=settings.llm.n_ctx,
                                       n_threads=settings.llm.threads or None,
                                       log_path=data / "logs" / "llama-server.log",
                                       state_dir=data / "llm-state")
            note(f"starting the embedded LLM ({settings.llm.model})…")
            await server.start()
            note(f"LLM ready in {time.monotonic() - t:.1f} s at {server.base_url}")
            base_url, model_name = server.base_url, server.model_name
        else:
            base_url, model_name = str(settings.llm.base_url), settings.llm.model
        llm = OpenAICompatibleLLM(base_url=base_url, model=model_name, api_key=settings.llm.api_key,
                                  temperature=settings.llm.temperature,
                                  max_tokens=settings.llm.max_tokens, timeout_s=settings.llm.timeout_s)
        whisper: WhisperEngine | None = None
        tts: ESpeakTTS | PiperTTS | None = None
        if stt_dir is not None:
            whisper = WhisperEngine(model_dir=stt_dir, language=settings.stt.language,
                                    beam_size=settings.stt.beam_size, window=settings.stt.window,
                                    initial_prompt=_initial_prompt(profile),
                                    workers=stt_workers(settings.stt.workers))
            if settings.tts.engine == "piper":
                tts = PiperTTS(model_path=Path(str(settings.tts.piper_model)))
            else:
                tts = ESpeakTTS(language=settings.tts.language, rate_wpm=settings.tts.rate_wpm)
            await asyncio.gather(asyncio.to_thread(whisper.load), asyncio.to_thread(tts.load))
            pace = await asyncio.to_thread(measure_stt_pace, whisper, tts)
            note(f"speech recognition: {pace:.2f} s per utterance, {whisper.workers} at once")
        await db.create_schema()
        if seed_demo:  # twin demo: the demo practice's fictional patients too
            from records.seed import seed_demo as seed

            await seed(db, profile_path=settings.profile_path)
        else:  # the settings' practice, from its profile (what `twin practice init` does)
            from records.seed import seed_profile

            await seed_profile(db, profile)
        booking = BookingService(db=db, tz=profile.practice.timezone)
        safety = None
        try:
            from knowledge.safety import SafetyRules

            safety = SafetyRules.load(emergency_numbers=profile.policies.emergency_numbers)
        except ModuleNotFoundError:  # pragma: no cover - knowledge always ships it
            logger.warning("safety rules unavailable")
        if settings.policy != "rules":
            twin_server, twin_llm = await _start_twin(settings, deployed_twin(), main_server=server,
                                                      data=data, note=note)
        services = VoiceServices(llm=llm, whisper=whisper, tts_engine=tts, booking=booking,
                                 profile=profile, safety=safety, policy=settings.policy,
                                 twin_llm=twin_llm, vad_stop_s=settings.stt.vad_stop_s,
                                 speculate_after_s=(settings.stt.speculate_after_s
                                                    if settings.stt.speculate_after_s >= 0 else None))
        t = time.monotonic()
        agent, _tools = make_agent(services, call_id="warm-up")
        agent.greeting()
        await agent.warm()
        note(f"LLM prompt cache warmed in {time.monotonic() - t:.1f} s")
        yield services
    finally:
        if llm is not None:
            await llm.aclose()
        if twin_llm is not None:
            await twin_llm.aclose()
        await db.dispose()
        if twin_server is not None:
            await twin_server.stop()
        if server is not None:
            await server.stop()
