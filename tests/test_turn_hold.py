"""A turn that ends while the VAD already hears the caller again is held (voice/pipeline.py).

With speculative decoding the transcript of "Je suis Paul Girard," can arrive within the
VAD's 0.2 s start confirmation of "né le …": the turn is held then, and answered only if no
start is confirmed (a noise), or replaced by the whole utterance's transcript (a start).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from voice.pipeline import MIN_GAP_S, START_CONFIRM_S, _AgentProcessor


class ScriptedAgent:
    """The call agent's surface the processor uses; records what it was asked to answer."""

    def __init__(self) -> None:
        self.answered: list[str] = []
        self.ended = False
        self.handoff = None

    def greeting(self) -> str:
        return "Bonjour."

    async def warm(self) -> None:
        return None

    def retract_last_turn(self) -> None:
        return None

    async def respond(self, user_text: str) -> AsyncIterator[str]:
        self.answered.append(user_text)
        yield "D'accord."


def _context_frame(text: str) -> object:
    from pipecat.frames.frames import LLMContextFrame
    from pipecat.processors.aggregators.llm_context import LLMContext

    return LLMContextFrame(context=LLMContext(messages=[{"role": "user", "content": text}]))


async def _run(frames: list[object], heard: Iterator[bool]) -> ScriptedAgent:
    from pipecat.tests.utils import run_test

    agent = ScriptedAgent()

    async def done() -> None:
        return None

    proc = _AgentProcessor(agent=agent, on_agent_done=done,  # type: ignore[arg-type]
                           caller_active=lambda: next(heard, False))
    await run_test(proc, frames_to_send=frames, start_timeout=30.0)  # type: ignore[arg-type]
    return agent


@pytest.mark.asyncio
async def test_a_turn_is_held_while_an_unconfirmed_start_becomes_speech() -> None:
    from pipecat.frames.frames import VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame
    from pipecat.tests.utils import SleepFrame

    agent = await _run([
        _context_frame("Je suis Paul Girard."),  # the VAD hears speech: not yet a start
        SleepFrame(0.05),
        VADUserStartedSpeakingFrame(),  # confirmed: the caller goes on
        SleepFrame(START_CONFIRM_S + 0.5),
        VADUserStoppedSpeakingFrame(),
        _context_frame("Je suis Paul Girard, né le 4 juin 1978."),
        SleepFrame(0.5),
    ], heard=iter([True]))
    assert agent.answered == ["Je suis Paul Girard, né le 4 juin 1978."]


@pytest.mark.asyncio
async def test_a_held_turn_is_answered_when_no_start_is_confirmed() -> None:
    from pipecat.tests.utils import SleepFrame

    agent = await _run([_context_frame("Je voudrais un rendez-vous."),
                        SleepFrame(START_CONFIRM_S + 2.0)], heard=iter([True]))
    assert agent.answered == ["Je voudrais un rendez-vous."]


@pytest.mark.asyncio
async def test_a_turn_with_no_speech_heard_is_answered() -> None:
    from pipecat.tests.utils import SleepFrame

    agent = await _run([_context_frame("Bonjour."), SleepFrame(0.5)], heard=iter([]))
    assert agent.answered == ["Bonjour."]


async def test_a_transcript_in_before_the_minimum_gap_waits_for_it() -> None:
    """A transcript decoded at the pause's onset can be in before the caller goes on after a
    short pause: the turn waits out the minimum gap, and the caller's next words win."""
    from pipecat.frames.frames import VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame
    from pipecat.tests.utils import SleepFrame

    agent = await _run([
        VADUserStoppedSpeakingFrame(),
        _context_frame("Je suis Paul Girard."),  # in at once: inside the minimum gap
        SleepFrame(0.1),
        VADUserStartedSpeakingFrame(),  # the caller goes on
        SleepFrame(1.0),
        VADUserStoppedSpeakingFrame(),
        _context_frame("Je suis Paul Girard, né le 4 juin 1978."),
        SleepFrame(MIN_GAP_S + 1.0),
    ], heard=iter([]))
    assert agent.answered == ["Je suis Paul Girard, né le 4 juin 1978."]
    # and a caller who stays quiet is answered once the gap is over
    agent = await _run([VADUserStoppedSpeakingFrame(), _context_frame("Bonjour."),
                        SleepFrame(MIN_GAP_S + 2.0)], heard=iter([]))
    assert agent.answered == ["Bonjour."]
