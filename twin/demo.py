"""``twin demo``: a real call, end to end, on this machine.

Starts the embedded LLM, loads Whisper and the French voice, opens a fresh demo
agenda, starts the AudioSocket server on loopback, and phones in with a scripted
patient (French WAVs in ``demo_audio/``) through the caller simulator — the same
TCP protocol Asterisk speaks. Prints the live transcript with per-turn latency,
the appointment now in the database and the path of the recorded call.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from twin.settings import Settings, SettingsError

DEMO_AUDIO = Path(__file__).resolve().parent.parent / "demo_audio"
DEMO_SCRIPT = [
    "03_book_morel_thursday_pm.wav",  # « … le docteur Morel peut me recevoir jeudi après-midi ? »
    "11_confirm_slot.wav",  # « Oui, c'est parfait pour moi, merci. »
    "07_identity_paul_girard.wav",  # « Je suis Paul Girard, né le quatre juin 1978. »
    "24_goodbye.wav",  # « Très bien, merci pour votre aide, au revoir. »
]


async def booked_appointments(booking: Any, ids: list[str]) -> list[Any]:
    """The agenda rows of ``ids``, read back from the database (not from the call's memory)."""
    from datetime import timedelta

    today = datetime.now().date()
    wanted = {int(i) for i in ids}
    found = []
    for offset in range(0, 120):
        for appt in await booking.day_agenda(today + timedelta(days=offset)):
            if appt.id in wanted:
                found.append(appt)
        if len(found) == len(wanted):
            break
    return found


_ASKED_AGAIN = re.compile(r"\b(?:redire|redonner|répéter|repeter)\b|pas bien compris", re.IGNORECASE)


def asked_to_repeat(last: list[str]) -> bool:
    """Whether the assistant's last words ask the caller to say it again (the simulated
    caller then repeats its turn, up to twice, as a person would when misheard)."""
    return bool(last) and _ASKED_AGAIN.search(last[-1]) is not None


def fmt_seconds(v: float | None) -> str:
    """A stage time for a table column (``-`` when the stage did not happen)."""
    return "   -  " if v is None else f"{v:5.2f}s"


async def run_demo(settings: Settings, *, wavs: list[Path], echo: Any = click.echo,
                   fresh_db: bool = True, demo_data: bool = True,
                   repeat_when_asked: bool = False) -> dict[str, Any]:
    """Run one simulated call; return a summary (also used by the tests and the bench).

    ``repeat_when_asked``: the caller says a turn again (up to twice) when the assistant asks for it
    (a misheard date of birth, say), as a person would; otherwise the script is played as is.

    ``demo_data``: seed the demo practice's fictional patients (``twin demo``, the scenario
    suite); otherwise the agenda holds the settings' practice only (``twin call``)."""
    from telephony.server import AudioSocketServer
    from telephony.simulator import CallerSimulator, PatientTurn
    from twin.runtime import voice_runtime
    from voice.call import CallReport, build_call_handler

    data = Path(settings.data_dir)
    if fresh_db and settings.database_url is None:
        (data / "agenda.db").unlink(missing_ok=True)
    reports: list[CallReport] = []
    t0 = time.monotonic()

    said: list[str] = []  # the assistant's latest words, as the simulated caller "hears" them

    def on_text(_call_id: str, who: str, text: str) -> None:
        if who != "patient":
            said.append(text)
        label = "patient  " if who == "patient" else "assistant"
        echo(f"  [{time.monotonic() - t0:6.1f}s] {label} › {text}")

    async with voice_runtime(settings, say=echo, seed_demo=demo_data) as services:
        handler = build_call_handler(services, on_text=on_text, on_report=reports.append)
        server = AudioSocketServer(host="127.0.0.1", port=0, handler=handler,
                                   recordings_dir=settings.recordings_path)
        await server.start()
        try:
            echo(f"AudioSocket server listening on 127.0.0.1:{server.port}; the patient dials in…")
            record_to = settings.recordings_path / f"demo-caller-{time.strftime('%Y%m%d-%H%M%S')}.wav"
            sim = CallerSimulator(host="127.0.0.1", port=server.port, sample_rate=8000)
            again = (lambda: asked_to_repeat(said[-1:])) if repeat_when_asked else None
            # a person asked again says it again, and once more if still misheard
            turns = [PatientTurn(wav=w, repeat_if=again, max_repeats=2) for w in wavs]
            recording = await sim.run(turns, record_to=record_to)
            for _ in range(100):  # the server side finishes its bookkeeping
                if reports:
                    break
                await asyncio.sleep(0.1)
        finally:
            await server.stop()
        report = reports[0] if reports else None
        appointments = []
        if report is not None and report.booked:
            appointments = await booked_appointments(services.booking, report.booked)
    return {"report": report, "recording": recording, "appointments": appointments}


@click.command("demo")
@click.option("--config", type=click.Path(path_type=Path), help="Settings file (YAML or TOML).")
@click.option("--wav", "wavs", multiple=True, type=click.Path(path_type=Path),
              help="Patient turns to play instead of the scripted booking call.")
@click.option("--json-out", type=click.Path(path_type=Path), help="Write the call report as JSON.")
def demo(config: Path | None, wavs: tuple[Path, ...], json_out: Path | None) -> None:
    """A patient phones the practice and books an appointment, all local."""
    try:
        settings = Settings.load(config)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.database_url is None:
        settings.data_dir = str(Path(settings.data_dir) / "demo")
    script = list(wavs) or [DEMO_AUDIO / name for name in DEMO_SCRIPT]
    missing = [str(p) for p in script if not p.is_file()]
    if missing:
        raise click.ClickException(f"patient audio not found: {', '.join(missing)}")
    click.echo(f"Demo call: {len(script)} patient turns, LLM "
               f"{settings.llm.base_url or settings.llm.model}, STT {settings.stt.model}, "
               f"TTS {settings.tts.engine}")
    try:
        result = asyncio.run(run_demo(settings, wavs=script, repeat_when_asked=not wavs))
    except Exception as exc:
        from twin.models import ModelMissingError

        if isinstance(exc, ModelMissingError):
            raise click.ClickException(str(exc)) from exc
        raise
    report = result["report"]
    if report is None:
        raise click.ClickException("the call produced no report (see the log above)")
    click.echo("\nPer-turn latency (end of patient speech → …):")
    click.echo("  transcript   first LLM text  first TTS audio  voice-to-voice   patient said")
    v2v = []
    for t in report.turns:
        click.echo(f"  {fmt_seconds(t['stt_s'])}       {fmt_seconds(t['llm_first_token_s'])}         "
                   f"{fmt_seconds(t['tts_first_audio_s'])}          {fmt_seconds(t['voice_to_voice_s'])}         "
                   f"{t['text'][:50]}")
        if t["voice_to_voice_s"] is not None:
            v2v.append(t["voice_to_voice_s"])
    if v2v:
        click.echo(f"  voice-to-voice median {statistics.median(v2v):.2f} s over {len(v2v)} turns")
    click.echo(f"\nTools called: {', '.join(report.tool_calls) or 'none (rules handled the turns)'}")
    if report.handoff:
        click.echo(f"Handed to a human: {report.handoff.reason} — {report.handoff.summary}")
    click.echo(f"Call recording (server side): {report.recording}")
    click.echo(f"Call recording (caller side):  {result['recording'].path}")
    if json_out:
        json_out.write_text(json.dumps({"turns": report.turns, "booked": report.booked,
                                        "tool_calls": report.tool_calls}, indent=2, default=str))
    if not result["appointments"]:
        raise click.ClickException("no appointment was booked during the demo call")
    click.echo("\nAppointment now in the agenda database:")
    for appt in result["appointments"]:
        click.echo(f"  #{appt.id} {appt.start:%A %d %B %Y %H:%M}–{appt.end:%H:%M}  "
                   f"{appt.practitioner_name}, {appt.appointment_label}, patient {appt.patient_name} "
                   f"(status {appt.status}, created by {appt.created_by})")
    width = shutil.get_terminal_size((80, 20)).columns
    click.echo("=" * min(width, 80))
