"""The twin's commands: ``twin train``, ``twin export``, ``twin deploy``.

(``twin eval twin`` lives with the other evaluations in ``twin/eval_cli.py`` and calls
``twin_training.evaluate``.)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

__all__ = ["cli", "deploy", "export"]

logger = logging.getLogger(__name__)


@click.command("train")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="Run config (YAML): sections data, model, lora, train.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. --set train.max_steps=50 (repeatable).")
@click.option("--calls", type=click.Path(exists=True, dir_okay=False),
              help="Shortcut for --set data.calls=FILE (corpus JSONL).")
@click.option("--from-store", is_flag=True, help="Read the approved calls from the transcripts "
                                                 "store (data.from_store).")
@click.option("--output-dir", help="Shortcut for --set train.output_dir=DIR.")
@click.option("--resume", is_flag=True, help="Continue from the run folder's last checkpoint.")
@click.option("--dataset-only", is_flag=True, help="Build the dataset and its card, no training.")
@click.option("--help-config", is_flag=True, help="List every config field with its help.")
def cli(config_path: str | None, overrides: tuple[str, ...], calls: str | None,
        from_store: bool, output_dir: str | None, resume: bool, dataset_only: bool,
        help_config: bool) -> None:
    """Fine-tune the twin (LoRA) on the best secretaries' reviewed calls."""
    from twin_training.config import ConfigError, config_help, load_config

    if help_config:
        click.echo(config_help())
        return
    extra = list(overrides)
    if calls:
        extra.append(f"data.calls={calls}")
    if from_store:
        extra.append("data.from_store=true")
    if output_dir:
        extra.append(f"train.output_dir={output_dir}")
    try:
        config = load_config(config_path, extra)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    out = Path(config.train.output_dir).expanduser()
    from twin_training.data import prepare_data

    data = prepare_data(config, out)
    tokens = data.card["tokens"]
    click.echo(f"dataset: {data.card['input']['selected_calls']} of "
               f"{data.card['input']['calls']} calls selected; sequences train "
               f"{tokens['train']['sequences']} ({tokens['train']['tokens']} tokens), validation "
               f"{tokens['validation']['sequences']}, test {tokens['test']['sequences']}; "
               f"card: {out / 'dataset_card.md'}")
    if dataset_only:
        return
    from twin_training.train import run_training

    result = run_training(config, resume=resume, prepared=data)
    click.echo(f"{result.stopped} after {result.steps} steps in {result.train_seconds:.0f} s; "
               f"loss {result.first_loss:.3f} -> {result.last_loss:.3f}; best validation "
               f"{result.best_validation_loss if result.best_validation_loss is not None else '-'}"
               f"; adapter: {result.adapter_dir}")


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder (default RUN_DIR/export).")
@click.option("--merged", is_flag=True, help="Also write a merged float16 GGUF.")
def export(run_dir: str, out_dir: str | None, merged: bool) -> None:
    """Export a trained adapter as a GGUF LoRA for llama.cpp, with an Ollama Modelfile."""
    from twin_training.export import export_run

    manifest = export_run(run_dir, out_dir=out_dir, merged=merged)
    click.echo(json.dumps(manifest, indent=2))


@click.command("deploy")
@click.argument("export_dir", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--report", type=click.Path(exists=True, dir_okay=False),
              help="The new model's evaluation (twin eval twin --out ...: report.json).")
@click.option("--rollback", is_flag=True, help="Return to the previously deployed model.")
@click.option("--ollama-url", help="Also create the model on this Ollama server "
                                   "(e.g. http://ollama:11434).")
@click.option("--name", "model_name", default=None, help="Ollama model name (default: twin-<id>).")
@click.option("--force", is_flag=True, help="Deploy even if a safety figure is worse.")
def deploy(export_dir: str | None, report: str | None, rollback: bool, ollama_url: str | None,
           model_name: str | None, force: bool) -> None:
    """Switch the assistant to a new twin if it is at least as safe as the current one."""
    from twin_training.deploy import DeployError, deploy_export, rollback_deployment

    try:
        if rollback:
            entry = rollback_deployment()
            click.echo(f"rolled back to {entry['id'] if entry else 'the rules / base model'}")
            return
        if not export_dir or not report:
            raise click.UsageError("give EXPORT_DIR and --report (or --rollback)")
        entry = deploy_export(export_dir, report, ollama_url=ollama_url,
                              model_name=model_name, force=force, echo=click.echo)
    except DeployError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"deployed {entry['id']}")
