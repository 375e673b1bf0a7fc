"""The ``twin`` command line: one sub-command group per package.

Each package exposes a ``click`` group in its own ``cli`` module; groups are
imported lazily so that ``twin --help`` stays fast and a missing optional
dependency only breaks the group that needs it (with an install hint).
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

# group name -> (module, attribute, one-line help)
_GROUPS: dict[str, tuple[str, str, str]] = {
    "models": ("twin.models_cli", "cli", "Install and list the embedded models."),
    "demo": ("twin.demo", "demo", "Run a scripted demo call end to end (the README's main job)."),
    "call": ("twin.call_cli", "call", "Place your own call: WAV files or typed text as the patient."),
    "serve": ("twin.serve", "serve", "Run the AudioSocket server and AMI client for Asterisk."),
    "db": ("records.cli", "db", "Create, migrate and seed the agenda database."),
    "agenda": ("records.cli", "agenda", "Show a day's appointments and free slots."),
    "telephony": ("telephony.cli", "cli", "AudioSocket server and caller simulator tools."),
    "knowledge": ("knowledge.cli", "cli", "Validate the practice profile, test the safety rules."),
    "eval": ("twin.eval_cli", "cli", "Evaluate the assistant (scenario suite)."),
    "practice": ("twin.practice_cli", "cli", "Set up a practice's agenda from its profile."),
    "transcripts": ("transcripts.cli", "cli", "Transcribe, redact, review and export calls."),
    "train": ("twin_training.cli", "cli", "Build datasets, fine-tune, evaluate and export the twin."),
    "export": ("twin_training.cli", "export", "Export a trained twin as GGUF (llama.cpp, Ollama)."),
    "deploy": ("twin_training.cli", "deploy", "Switch the assistant to a new twin, or roll back."),
    "review": ("transcripts.review.review_cli", "review", "Serve the staff review page (--demo: try it)."),
    "users": ("transcripts.review.users_cli", "cli", "Accounts of the review page."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_GROUPS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _GROUPS:
            return None
        module_name, attr, help_text = _GROUPS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            raise click.ClickException(
                f"'twin {cmd_name}' needs the Python package '{missing}'. "
                "Install the project with its extras: pip install -e '.[voice,embedded]'"
            ) from exc
        command: click.Command = getattr(module, attr)
        if command.help is None:
            command.help = help_text
        return command


@click.group(cls=_LazyGroup)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Phone secretary for medical practices: local, private, trained on your best calls."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    quiet_pipecat(level)


def quiet_pipecat(level: int) -> None:
    """pipecat logs through loguru at DEBUG by default: follow our verbosity instead."""
    try:
        from loguru import logger
    except ModuleNotFoundError:  # pragma: no cover - loguru comes with the voice extra
        return
    logger.remove()
    logger.add(sys.stderr, level=logging.getLevelName(level))


if __name__ == "__main__":  # pragma: no cover
    main()
