"""``twin eval``: evaluate the assistant on the scenario suite (``evals/scenarios``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import click

__all__ = ["cli", "format_summary", "llm_endpoint", "run_text_suite"]

logger = logging.getLogger(__name__)


@click.group("eval")
def cli() -> None:
    """Evaluate the assistant (scenario suite)."""


def format_summary(summary: dict[str, Any]) -> str:
    """The per-category pass-rate table."""
    lines = [f"{'category':<16} {'passed':>7} {'rate':>7}"]

    def row(name: str, r: dict[str, Any]) -> str:
        rate = "-" if r["rate"] is None else f"{100 * r['rate']:.0f} %"
        return f"{name:<16} {r['passed']:>3}/{r['total']:<3} {rate:>7}"

    lines += [row(c, r) for c, r in summary["categories"].items()]
    lines.append("-" * 32)
    lines.append(row("overall", summary["overall"]))
    lines.append(row("non-emergency", summary["non_emergency"]))
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def llm_endpoint(llm_url: str | None, llm_model: str | None,
                       echo: Any = click.echo) -> AsyncIterator[tuple[str, str]]:
    """``(base_url, model)``: the given server, or the embedded model started for the run."""
    from twin import models
    from twin.settings import Settings
    from voice.embedded_llm import EmbeddedLLMServer

    settings = Settings.load(None)
    if llm_url:
        yield llm_url, llm_model or settings.llm.model
        return
    folder = models.require(llm_model or settings.llm.model)
    server = EmbeddedLLMServer(model_path=folder / "model.gguf", n_ctx=settings.llm.n_ctx,
                               n_threads=settings.llm.threads or None)
    echo(f"starting the embedded LLM ({llm_model or settings.llm.model})…")
    async with _serving(server) as endpoint:
        yield endpoint


@contextlib.asynccontextmanager
async def _serving(server: Any) -> AsyncIterator[tuple[str, str]]:
    """``(base_url, model)`` of an embedded server, started for the block and stopped after."""
    await server.start()
    try:
        yield server.base_url, server.model_name
    finally:
        await server.stop()


async def run_text_suite(scenarios: Sequence[Any], *, llm_url: str | None, llm_model: str | None,
                         echo: Any = click.echo, policy: str = "rules") -> list[Any]:
    """Start the embedded LLM unless ``llm_url`` is given, and run the scenarios at text level."""
    async with llm_endpoint(llm_url, llm_model, echo) as (base_url, model_name):
        return await _text_suite(scenarios, base_url=base_url, model_name=model_name, echo=echo,
                                 policy=policy, raw_prompt=llm_url is None)


@contextlib.asynccontextmanager
async def twin_endpoint(export_dir: Path | None,
                        echo: Any = click.echo) -> AsyncIterator[tuple[str, str] | None]:
    """``(base_url, model)`` of an embedded server running an exported twin (its base GGUF
    with its GGUF adapter, from ``twin export``), or ``None`` without ``export_dir``."""
    if export_dir is None:
        yield None
        return
    from twin.settings import Settings
    from voice.embedded_llm import EmbeddedLLMServer

    try:
        manifest = json.loads((export_dir / "export.json").read_text(encoding="utf-8"))
        base, adapter = Path(manifest["base_gguf"]), Path(manifest["adapter_gguf"])
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(f"{export_dir}: not a twin export ({exc}); run twin export RUN") from exc
    settings = Settings.load(None)
    server = EmbeddedLLMServer(model_path=base, lora_path=adapter, alias=export_dir.parent.name,
                               n_ctx=settings.llm.n_ctx, n_threads=settings.llm.threads or None)
    echo(f"starting the twin ({base.parent.name} + {adapter.name})…")
    async with _serving(server) as endpoint:
        yield endpoint


async def _text_suite(scenarios: Sequence[Any], *, base_url: str, model_name: str,
                      echo: Any, policy: str = "rules", raw_prompt: bool = False,
                      profile: Path | None = None,
                      twin: tuple[str, str] | None = None) -> list[Any]:
    from twin.scenarios import SuiteConfig, run_suite
    from twin.settings import Settings
    from voice.llm import OpenAICompatibleLLM
    from voice.model_policy import RawPromptLLM

    settings = Settings.load(None)
    llm = OpenAICompatibleLLM(base_url=base_url, model=model_name, api_key=settings.llm.api_key,
                              temperature=0.0, max_tokens=settings.llm.max_tokens,
                              timeout_s=settings.llm.timeout_s)
    # the twin on the embedded server: its prompt exactly as in training (raw completions)
    twin_url, twin_model = twin or (base_url, model_name)
    twin_llm = RawPromptLLM(base_url=twin_url, model=twin_model, api_key=settings.llm.api_key,
                            temperature=0.0, max_tokens=settings.llm.max_tokens,
                            timeout_s=settings.llm.timeout_s) if raw_prompt or twin else None

    def progress(r: Any) -> None:
        echo(f"  {'PASS' if r.passed else 'FAIL'}  {r.category:<15} {r.id:<42} {r.duration_s:5.1f}s")

    try:
        return await run_suite(scenarios, llm=llm, on_result=progress,
                               config=SuiteConfig(policy=policy, twin_llm=twin_llm,
                                                  profile_path=profile))
    finally:
        await llm.aclose()
        if twin_llm is not None:
            await twin_llm.aclose()


async def _run_all(scenarios: Sequence[Any], *, llm_url: str | None, llm_model: str | None,
                   audio: bool, echo: Any, policy: str = "rules",
                   profile: Path | None = None, twin_export: Path | None = None) -> list[Any]:
    """The text-level suite, then (``audio``) the scenarios with WAVs through the real
    pipeline, with one LLM server for both. ``profile``: the settings' practice (a
    scenario's own fixture names its own)."""
    from twin.scenarios import DbDiff, ScenarioResult, run_audio_scenario

    async with llm_endpoint(llm_url, llm_model, echo) as (base_url, model_name), \
            twin_endpoint(twin_export, echo) as twin:
        results = await _text_suite(scenarios, base_url=base_url, model_name=model_name,
                                    echo=echo, policy=policy, raw_prompt=llm_url is None,
                                    profile=profile, twin=twin)
        if audio:
            with_wavs = [s for s in scenarios if s.wavs]
            echo(f"\naudio level: {len(with_wavs)} scenarios with fixture WAVs")
            for sc in with_wavs:
                try:
                    r = await run_audio_scenario(sc, llm_url=base_url, llm_model=model_name,
                                                 policy=policy, profile=profile)
                except Exception as exc:  # one broken call must not lose the others' results
                    logger.exception("audio scenario %s crashed", sc.id)
                    r = ScenarioResult(id=sc.id, category=sc.category, passed=False,
                                       failures=[f"crashed: {type(exc).__name__}: {exc}"],
                                       transcript=[], actions=[], handoff=None, diff=DbDiff(),
                                       duration_s=0.0, level="audio")
                echo(f"  {'PASS' if r.passed else 'FAIL'}  {r.category:<15} {r.id:<42} "
                     f"{r.duration_s:5.1f}s  (audio)")
                results.append(r)
    return results


@cli.command("scenarios")
@click.option("--category", "categories", multiple=True, help="Only these categories (repeatable).")
@click.option("--id", "ids", multiple=True, help="Only these scenario ids (repeatable).")
@click.option("--dir", "folder", type=click.Path(path_type=Path, exists=True),
              help="Scenario folder or file (default: evals/scenarios).")
@click.option("--llm-url", help="An OpenAI-compatible server instead of the embedded model.")
@click.option("--llm-model", help="Model name (with --llm-url) or embedded model to start.")
@click.option("--json", "json_out", type=click.Path(path_type=Path),
              help="Write every result (transcript, actions, DB diff, failures) as JSON.")
@click.option("--audio", is_flag=True,
              help="Also play the scenarios that have fixture WAVs through the real audio pipeline.")
@click.option("--policy", type=click.Choice(["rules", "model", "hybrid"]), default="rules",
              show_default=True,
              help="Dialogue policy: the rules, the twin model, or rules where sure and the twin "
                   "elsewhere. The guard holds for all three.")
@click.option("--config", type=click.Path(path_type=Path),
              help="Settings file: its practice profile (or $TWIN_PROFILE) is the scenarios' "
                   "practice, unless a scenario's fixture names its own.")
@click.option("--twin", "twin_export", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="An exported twin (twin export's folder) for --policy model/hybrid at text "
                   "level; without it the base model proposes.")
def scenarios_cmd(categories: tuple[str, ...], ids: tuple[str, ...], folder: Path | None,
                  llm_url: str | None, llm_model: str | None, json_out: Path | None,
                  audio: bool, policy: str, config: Path | None,
                  twin_export: Path | None) -> None:
    """Play the scripted patient calls and print pass rates per category."""
    from twin.scenarios import ScenarioError, load_scenarios, summarize
    from twin.settings import Settings, SettingsError

    try:
        settings = Settings.load(config)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    profile = Path(settings.profile) if settings.profile else None

    try:
        scenarios = load_scenarios(folder, categories=categories)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc
    if ids:
        unknown = set(ids) - {s.id for s in scenarios}
        if unknown:
            raise click.ClickException(f"unknown scenario ids: {', '.join(sorted(unknown))}")
        scenarios = [s for s in scenarios if s.id in ids]
    if not scenarios:
        raise click.ClickException("no scenario selected")
    if twin_export is not None and policy == "rules":
        raise click.ClickException("--twin needs --policy model or hybrid")
    click.echo(f"{len(scenarios)} scenarios, LLM {llm_url or llm_model or 'embedded default'}, "
               f"policy {policy}")
    started = time.monotonic()
    try:
        results = asyncio.run(_run_all(scenarios, llm_url=llm_url, llm_model=llm_model,
                                       audio=audio, echo=click.echo, policy=policy,
                                       profile=profile, twin_export=twin_export))
    except Exception as exc:
        from twin.models import ModelMissingError

        if isinstance(exc, ModelMissingError):
            raise click.ClickException(str(exc)) from exc
        raise
    elapsed = time.monotonic() - started
    text = [r for r in results if r.level == "text"]
    text_s = sum(r.duration_s for r in text)
    click.echo(f"\nText level ({len(text)} scenarios, {text_s:.0f} s; whole run {elapsed:.0f} s):")
    click.echo(format_summary(summarize(text)))
    audio_results = [r for r in results if r.level == "audio"]
    if audio_results:
        click.echo("\nAudio level:")
        click.echo(format_summary(summarize(audio_results)))
    failed = [r for r in results if not r.passed]
    if failed:
        click.echo("\nFailures:")
        for r in failed:
            click.echo(f"- [{r.level}] {r.id} ({r.category})")
            for f in r.failures:
                click.echo(f"    {f}")
            for who, said in r.transcript:
                click.echo(f"      {who:>9}: {said}")
    if json_out:
        json_out.write_text(json.dumps({"policy": policy,
                                        "twin": str(twin_export) if twin_export else None,
                                        "summary": summarize(text),
                                        "audio_summary": summarize(audio_results),
                                        "elapsed_s": elapsed,
                                        "results": [r.as_dict() for r in results]},
                                       indent=2, ensure_ascii=False, default=str),
                            encoding="utf-8")
        click.echo(f"\nresults written to {json_out}")


@cli.command("twin")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The training run folder (twin train's train.output_dir).")
@click.option("--export", "export_dir", type=click.Path(exists=True, file_okay=False),
              help="The exported GGUF adapter folder (default RUN/export; twin export RUN).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Report folder (default RUN/eval).")
@click.option("--calls", type=click.Path(exists=True, dir_okay=False),
              help="Corpus JSONL (default: the run's data.calls).")
@click.option("--no-base", is_flag=True, help="Skip the base model column.")
@click.option("--no-rules", is_flag=True, help="Skip the rules column.")
@click.option("--limit-calls", type=int, default=0, help="Only the first N test calls.")
@click.option("--only", "only", multiple=True, help="Only this test call (repeatable).")
@click.option("--max-tokens", type=int, default=192, show_default=True,
              help="Longest generation per turn (actions; words get half).")
@click.option("--threads", type=int, default=0, help="llama.cpp threads (0: all cores).")
def twin_cmd(run_dir: str, export_dir: str | None, out_dir: str | None, calls: str | None,
             no_base: bool, no_rules: bool, limit_calls: int, only: tuple[str, ...],
             max_tokens: int, threads: int) -> None:
    """Base vs twin vs rules on the run's test split, turn by turn (teacher forcing)."""
    from twin_training.eval_run import run_eval

    run_eval(run_dir, out_dir=out_dir or Path(run_dir) / "eval", export_dir=export_dir,
             calls_path=calls, with_base=not no_base, with_rules=not no_rules,
             limit_calls=limit_calls, only=only, threads=threads, max_tokens=max_tokens,
             echo=click.echo)
