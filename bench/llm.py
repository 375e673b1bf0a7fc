"""The embedded LLM candidates on this machine: speed, and whether they use the tools.

For each installed Qwen2.5-Coder GGUF, starts the llama.cpp server, sends the real
system prompt and tools (knowledge/prompts.py, voice/tools.py) once to fill the
prompt cache, then plays patient turns that should be answered with a tool call
and prints per model: prompt-cache warm-up time, time to first token (p50/p95) on
a cached prefix, generation speed, and how many turns produced the expected tool
call.

Usage: .venv/bin/python bench/llm.py [--models NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import date

TURNS = [  # (patient turn, the tool a good answer calls)
    ("Bonjour, j'aurais voulu voir un médecin mardi prochain si c'est possible.", "find_slots"),
    ("Vous auriez une place avec la dermatologue cette semaine ?", "find_slots"),
    ("Est-ce que je peux passer le voir demain en fin de journée ?", "find_slots"),
    ("Je voudrais parler à une vraie personne s'il vous plaît.", "transfer_to_human"),
    ("J'aimerais laisser un message pour que le docteur me rappelle.", "leave_message"),
    ("C'est combien une séance de laser ?", "practice_info"),
]


async def bench_model(name: str) -> dict[str, object]:
    from knowledge.profile import default_profile_path, load_profile
    from knowledge.prompts import build_system_prompt
    from twin.models import require
    from voice.embedded_llm import EmbeddedLLMServer
    from voice.llm import OpenAICompatibleLLM, ToolCall
    from voice.tools import PracticeTools

    profile = load_profile(default_profile_path())
    tools = PracticeTools(booking=None, profile=profile, call_id="bench").schemas()
    system = build_system_prompt(profile, today=date.today())
    server = EmbeddedLLMServer(model_path=require(name) / "model.gguf")
    await server.start()
    llm = OpenAICompatibleLLM(base_url=server.base_url, model=server.model_name, temperature=0.0)
    try:
        base = [{"role": "system", "content": system},
                {"role": "assistant", "content": "Cabinet médical des Tilleuls, bonjour."}]
        t = time.monotonic()
        await llm.warm(base, tools)
        warm_s = time.monotonic() - t
        ttft, rates, hits = [], [], 0
        for text, expected in TURNS:
            t = time.monotonic()
            first = None
            items = []
            async for item in llm.stream([*base, {"role": "user", "content": text}], tools):
                if first is None:
                    first = time.monotonic() - t
                items.append(item)
            total = time.monotonic() - t
            ttft.append(first or total)
            chars = sum(len(getattr(i, "text", "")) + len(str(getattr(i, "arguments", ""))) for i in items)
            rates.append(chars / 4 / max(1e-3, total - (first or 0)))  # ~4 chars per token
            calls = [i.name for i in items if isinstance(i, ToolCall)]
            hits += expected in calls
            print(f"  {name[:28]:<28} {first or 0:5.2f}s {total:5.2f}s  {calls or '(text)'}  {text[:40]}")
        ttft.sort()
        return {"model": name, "warm_s": warm_s, "ttft_p50": statistics.median(ttft),
                "ttft_p95": ttft[int(0.95 * (len(ttft) - 1))], "tok_s": statistics.median(rates),
                "tool_hits": f"{hits}/{len(TURNS)}"}
    finally:
        await llm.aclose()
        await server.stop()


async def main(models: list[str]) -> None:
    rows = [await bench_model(m) for m in models]
    print(f"\n{'model':<38}{'warm-up':>9}{'TTFT p50':>10}{'TTFT p95':>10}{'~tok/s':>8}{'tools':>7}")
    for r in rows:
        print(f"{r['model']:<38}{r['warm_s']:>8.1f}s{r['ttft_p50']:>9.2f}s{r['ttft_p95']:>9.2f}s"
              f"{r['tok_s']:>8.1f}{r['tool_hits']:>7}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["qwen2.5-coder-1.5b-instruct-q4_k_m",
                                                   "qwen2.5-coder-0.5b-instruct-q4_k_m"])
    asyncio.run(main(p.parse_args().models))
