"""``twin telephony``: tools for the Asterisk edge.

* ``twin telephony echo``      - an AudioSocket echo server (check Asterisk reaches us);
* ``twin telephony call``      - play the patient against any AudioSocket server
  (WAV turns, DTMF), print per-turn voice-to-voice latency, save a stereo recording;
* ``twin telephony ami-check`` - log in to AMI, Ping, list channels;
* ``twin telephony ami-record``- capture real AMI traffic as a replay fixture (YAML).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

__all__ = ["cli"]


@click.group("telephony")
def cli() -> None:
    """AudioSocket server and caller simulator tools."""


@cli.command("echo")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=9092, show_default=True, type=int)
@click.option("--record-dir", type=click.Path(path_type=Path), help="Keep a stereo WAV per call.")
def echo_cmd(host: str, port: int, record_dir: Path | None) -> None:
    """Echo every caller's audio back (DTMF # hangs up). Ctrl-C stops."""
    from telephony.server import AudioSocketServer
    from telephony.session import AudioIn, CallSession, Dtmf, Hangup

    async def handler(session: CallSession) -> None:
        click.echo(f"call {session.call_id} from {session.remote} at {session.sample_rate} Hz")
        async for ev in session.events():
            if isinstance(ev, AudioIn):
                await session.send_audio(ev.pcm)
            elif isinstance(ev, Dtmf):
                click.echo(f"  DTMF {ev.digit}")
                if ev.digit == "#":
                    await session.hangup()
            elif isinstance(ev, Hangup):
                click.echo(f"  ended: {ev.reason}")

    async def main() -> None:
        server = AudioSocketServer(host=host, port=port, handler=handler, recordings_dir=record_dir)
        await server.start()
        click.echo(f"AudioSocket echo on {host}:{server.port}")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


@cli.command("call")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9092, show_default=True, type=int)
@click.option("--wav", "wavs", multiple=True, type=click.Path(path_type=Path),
              help="A patient turn (WAV); repeat for several turns.")
@click.option("--dtmf", default="", help="Keys to press after the last turn, e.g. 0.")
@click.option("--rate", default=8000, show_default=True, type=click.Choice(["8000", "16000"]))
@click.option("--record-to", type=click.Path(path_type=Path), default=Path("call.wav"),
              show_default=True, help="Stereo WAV of the call (left patient, right bot).")
@click.option("--eot", "end_of_turn_s", default=1.0, show_default=True,
              help="Bot silence (s) that ends its turn.")
@click.option("--timeout", "timeout_s", default=30.0, show_default=True,
              help="Longest wait for the bot's turn (s).")
def call_cmd(host: str, port: int, wavs: tuple[Path, ...], dtmf: str, rate: str,
             record_to: Path, end_of_turn_s: float, timeout_s: float) -> None:
    """Call an AudioSocket server as a patient and measure what the caller hears."""
    from telephony.audio import AudioFileError
    from telephony.simulator import CallerSimulator, PatientTurn, SimEvent

    turns = [PatientTurn(wav=w, timeout_s=timeout_s) for w in wavs]
    if dtmf:
        turns.append(PatientTurn(dtmf=dtmf, timeout_s=timeout_s))
    if not turns:
        raise click.UsageError("give at least one --wav or --dtmf")

    def show(ev: SimEvent) -> None:
        click.echo(f"  [{ev.t:6.2f}s] {ev.kind} {ev.detail}".rstrip())

    sim = CallerSimulator(host=host, port=port, sample_rate=int(rate),
                          end_of_turn_silence_s=end_of_turn_s, final_timeout_s=timeout_s,
                          on_event=show)
    try:
        rec = asyncio.run(sim.run(turns, record_to=record_to))
    except AudioFileError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot call {host}:{port}: {exc}") from exc
    click.echo(f"call {rec.call_id}: {rec.duration_s:.1f} s, ended by {rec.ended_by}; "
               f"longest gap in bot frames {rec.max_bot_gap_s * 1000:.0f} ms")
    for t in rec.turns:
        lat = "-" if t.latency_s is None else f"{t.latency_s:.2f} s"
        spoke = "-" if t.bot_speech_s is None else f"{t.bot_speech_s:.1f} s"
        click.echo(f"  turn {t.index} {t.source}: voice-to-voice {lat}, bot spoke {spoke}"
                   + ("" if t.bot_turn_ended else " (bot turn timed out)"))
    click.echo(f"recording: {rec.path}")


def _ami_config(host: str, port: int, user: str, secret_env: str) -> object:
    from telephony.ami import AmiConfig

    secret = os.environ.get(secret_env)
    if secret is None:
        raise click.ClickException(f"set the AMI secret in the environment variable {secret_env}")
    return AmiConfig(host=host, port=port, username=user, secret=secret, ping_interval_s=0,
                     reconnect_max_s=2)


@cli.command("ami-check")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5038, show_default=True, type=int)
@click.option("--user", default="twin", show_default=True)
@click.option("--secret-env", default="TWIN_AMI_SECRET", show_default=True)
def ami_check(host: str, port: int, user: str, secret_env: str) -> None:
    """Log in to Asterisk's AMI, Ping, and list the channels."""
    from telephony.ami import AmiClient, AmiConfig, AmiError

    cfg = _ami_config(host, port, user, secret_env)
    assert isinstance(cfg, AmiConfig)

    async def main() -> None:
        client = AmiClient(config=cfg)
        await client.start()
        try:
            for _ in range(100):  # up to 10 s, but a refused login fails at once
                if await client.wait_connected(0.1) or "Login failed" in (client.last_error or ""):
                    break
            if not client.connected:
                raise click.ClickException(f"AMI {host}:{port}: {client.last_error or 'no login'}")
            click.echo(f"logged in: {client.banner}")
            pong = await client.action("Ping")
            click.echo(f"Ping: {pong.get('Ping')} {pong.get('Timestamp') or ''}")
            for ch in await client.action_list("CoreShowChannels"):
                click.echo(f"  {ch.get('Channel')} {ch.get('Application')}({ch.get('ApplicationData')})"
                           f" {ch.get('CallerIDNum')} {ch.get('Duration')}")
        except AmiError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            await client.stop()

    asyncio.run(main())


@cli.command("ami-record")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5038, show_default=True, type=int)
@click.option("--user", default="twin", show_default=True)
@click.option("--secret-env", default="TWIN_AMI_SECRET", show_default=True)
@click.option("--seconds", default=30.0, show_default=True, help="How long to record events.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Fixture YAML to write (tests/telephony/fixtures/...).")
def ami_record(host: str, port: int, user: str, secret_env: str, seconds: float,
               out: Path) -> None:
    """Record real AMI traffic (login, Ping, CoreShowChannels, events) as a replay fixture.

    Place a test call during the recording to capture Newchannel/VarSet/Hangup events.
    The secret is never written to the fixture (the Login step checks the username)."""
    import yaml

    from telephony.ami import encode_action

    secret = os.environ.get(secret_env)
    if secret is None:
        raise click.ClickException(f"set the AMI secret in the environment variable {secret_env}")

    async def main() -> list[dict[str, object]]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        steps: list[dict[str, object]] = []
        banner = (await reader.readline()).decode().rstrip("\r\n")
        steps.append({"banner": banner})

        async def read_msg() -> str:
            raw = await reader.readuntil(b"\r\n\r\n")
            return raw.decode("utf-8", "replace")[:-4].replace("\r\n", "\n")

        async def act(action: str, aid: str, fields: list[tuple[str, object]],
                      expect: dict[str, str], *, until: str) -> None:
            """Send one action, record everything up to its last answer message."""
            writer.write(encode_action(action, [("ActionID", aid), *fields]))
            await writer.drain()
            steps.append({"expect": {"Action": action, **expect}})
            while True:
                msg = await asyncio.wait_for(read_msg(), 10)
                mine = f"ActionID: {aid}\n" in msg + "\n"
                steps.append({"send": msg.replace(f"ActionID: {aid}", "ActionID: {ActionID}")
                              + "\n"})
                if mine and until in msg:
                    return

        await act("Login", "rec-1", [("Username", user), ("Secret", secret), ("Events", "on")],
                  {"Username": user}, until="Response:")
        await act("Ping", "rec-2", [], {}, until="Response:")
        await act("CoreShowChannels", "rec-3", [], {}, until="EventList: Complete")
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                msg = await asyncio.wait_for(read_msg(), left)
            except TimeoutError:
                break
            steps.append({"send": msg + "\n"})
        writer.close()
        return steps

    steps = asyncio.run(main())
    out.write_text(f"# Recorded with `twin telephony ami-record` from {host}:{port}.\n"
                   + yaml.safe_dump({"steps": steps}, allow_unicode=True, sort_keys=False,
                                    width=1000), encoding="utf-8")
    click.echo(f"{len(steps)} steps written to {out}")
