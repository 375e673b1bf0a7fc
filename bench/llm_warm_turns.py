"""Time to the first words of a turn that reaches the LLM after turns the rules answered,
with and without the call so far evaluated after each reply (``llm.warm_turns``).

The real call agent (rules policy, guard) on a seeded SQLite agenda and the embedded LLM on
llama.cpp: three turns the rules answer (a slot request, yes, the identity), then a question
the rules leave to the model. Both variants alternate on one loaded server; prints each
answer's time to its first spoken words, and p50/max per variant with their ratio.

Usage: .venv/bin/python bench/llm_warm_turns.py [--reps 4] [--model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

TODAY = date(2026, 11, 28)
RULES_TURNS = ("Est-ce que le docteur Morel peut me recevoir jeudi après-midi ?",
               "Oui, c'est parfait pour moi, merci.", "Je suis Paul Girard, né le 4 juin 1978.")
MODEL_TURN = "Ah et au fait, c'est vous qui m'avez appelé hier en fin de matinée ? J'ai vu un appel manqué."


async def one_call(services: object, *, warm: bool, call_id: str) -> tuple[float, str, str]:
    from voice.call import make_agent

    services.warm_turns = warm  # type: ignore[attr-defined]
    agent, _tools = make_agent(services, call_id=call_id)  # type: ignore[arg-type]
    agent.greeting()
    await agent.warm()
    for text in RULES_TURNS:
        async for _ in agent.respond(text):
            pass
        await agent.warm_after_turn()
    started, first, said = time.monotonic(), None, ""
    async for piece in agent.respond(MODEL_TURN):
        if first is None and piece.strip():
            first = time.monotonic() - started
        said += piece
    return (first if first is not None else float("nan")), agent.turns[-1].policy, said.strip()


async def main() -> None:
    from knowledge.profile import default_profile_path, load_profile
    from knowledge.safety import SafetyRules
    from records import BookingService, Database
    from records.seed import seed_demo
    from twin.models import DEFAULT_LLM, require
    from voice.call import VoiceServices
    from voice.embedded_llm import EmbeddedLLMServer
    from voice.llm import OpenAICompatibleLLM

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=4, help="calls per variant")
    p.add_argument("--model", default=DEFAULT_LLM)
    a = p.parse_args()
    server = EmbeddedLLMServer(model_path=require(a.model) / "model.gguf")
    await server.start()
    llm = OpenAICompatibleLLM(base_url=server.base_url, model=server.model_name, max_tokens=96,
                              timeout_s=60)
    now = datetime(2026, 11, 28, 10, 0)
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rep in range(a.reps):
                for warm in (False, True):
                    db = Database(url=f"sqlite+aiosqlite:///{Path(tmp) / f'agenda-{rep}-{warm}.db'}")
                    await db.create_schema()
                    await seed_demo(db, profile_path=default_profile_path(), today=TODAY)
                    services = VoiceServices(
                        llm=llm, whisper=None, tts_engine=None,
                        booking=BookingService(db=db, now=lambda: now.astimezone()),
                        profile=load_profile(default_profile_path()), safety=SafetyRules.load(),
                        today=lambda: TODAY, now=lambda: now)
                    first, policy, said = await one_call(services, warm=warm,
                                                         call_id=f"bench-{rep}-{warm}")
                    times[warm].append(first)
                    print(f"warm_turns={int(warm)} first words {first:.2f} s ({policy}): {said[:80]!r}",
                          flush=True)
                    await db.dispose()
    finally:
        await llm.aclose()
        await server.stop()
    base = statistics.median(times[False])
    for warm, values in times.items():
        p50 = statistics.median(values)
        print(f"warm_turns={int(warm)}: n={len(values)} first words p50 {p50:.2f} s, "
              f"max {max(values):.2f} s, ratio to warm_turns=0: {p50 / base:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
