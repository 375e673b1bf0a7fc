"""``twin call``: place your own call, with WAV files or typed text as the patient."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import click

from twin.settings import Settings, SettingsError


async def _text_call(settings: Settings) -> None:
    from twin.runtime import voice_runtime
    from voice.call import make_agent

    async with voice_runtime(settings, audio=False, say=click.echo) as services:
        call_id = f"text-{uuid.uuid4().hex[:8]}"
        agent, tools = make_agent(services, call_id=call_id)
        await services.booking.start_call(call_id=call_id, caller_number=None)
        click.echo(f"assistant › {agent.greeting()}")
        click.echo("(type as the patient; an empty line or Ctrl-D hangs up)")
        while not agent.ended:
            try:
                line = await asyncio.to_thread(input, "patient   › ")
            except EOFError:
                break
            if not line.strip():
                break
            reply = ""
            async for piece in agent.respond(line.strip()):
                reply += piece
            click.echo(f"assistant › {reply.strip()}")
            if agent.tool_calls:
                last = agent.turns[-1].tool_calls
                for c in last:
                    click.echo(click.style(f"            [tool] {c.name}({c.arguments})", dim=True))
        outcome = "handoff" if agent.handoff else ("booked" if tools.booked_ids() else "completed")
        await services.booking.end_call(call_id=call_id, outcome=outcome,
                                        handoff_reason=agent.handoff.reason if agent.handoff else None,
                                        summary=" | ".join(f"{t.user} → {t.reply}" for t in agent.turns))
        if agent.handoff:
            click.echo(f"[handed to a human: {agent.handoff.reason}]")
        if tools.booked_ids():
            click.echo(f"[booked: {', '.join(tools.booked_ids())}]")


@click.command("call")
@click.option("--wav", "wavs", multiple=True, type=click.Path(path_type=Path),
              help="A patient turn (WAV file); repeat for several turns, in order.")
@click.option("--text", "text", is_flag=True, help="Type the patient's words instead of audio.")
@click.option("--config", type=click.Path(path_type=Path), help="Settings file (YAML or TOML).")
def call(wavs: tuple[Path, ...], text: bool, config: Path | None) -> None:
    """Call the assistant yourself, against the agenda in the data folder."""
    try:
        settings = Settings.load(config)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if text == bool(wavs):
        raise click.UsageError("give either --text or one or more --wav FILE")
    if text:
        asyncio.run(_text_call(settings))
        return
    from twin.demo import run_demo

    missing = [str(w) for w in wavs if not w.is_file()]
    if missing:
        raise click.ClickException(f"not found: {', '.join(missing)}")
    result = asyncio.run(run_demo(settings, wavs=list(wavs), fresh_db=False, demo_data=False))
    report = result["report"]
    if report is not None:
        click.echo(f"recording: {report.recording}; booked: {report.booked or 'nothing'}")
