"""``twin users add|list|disable``: the review app's accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

__all__ = ["cli"]

T = TypeVar("T")

_url_option = click.option(
    "--url", envvar="TWIN_DATABASE_URL", default=None, show_envvar=True,
    help="Database URL (default: SQLite agenda.db in the data folder).")


def _run(url: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from records.db import default_url
    from transcripts.review.auth import AccountError, Accounts
    from transcripts.store import TranscriptStore

    async def main() -> T:
        store = TranscriptStore(url=url or default_url())
        try:
            await store.migrate()
            return await work(Accounts(store=store))
        finally:
            await store.dispose()

    try:
        return asyncio.run(main())
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("users")
def cli() -> None:
    """Accounts of the review page (roles: reviewer, trainer, admin)."""


@cli.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["reviewer", "trainer", "admin"]), default="reviewer",
              show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              envvar="TWIN_USER_PASSWORD", help="Asked for when not given (8 characters or "
              "more); or $TWIN_USER_PASSWORD.")
@_url_option
def add(username: str, role: str, password: str, url: str | None) -> None:
    """Create an account."""
    user_id = _run(url, lambda a: a.add_user(username, password, role, actor="cli"))
    click.echo(f"account {username.strip().lower()} ({role}) created, id {user_id}")


@cli.command("list")
@_url_option
def list_users(url: str | None) -> None:
    """List the accounts."""
    users = _run(url, lambda a: a.list_users())
    if not users:
        click.echo("no account yet: twin users add NAME --role admin")
    for u in users:
        state = "disabled" if u.disabled else "active"
        click.echo(f"{u.username:<24} {u.role:<9} {state:<9} created "
                   f"{u.created_at:%Y-%m-%d %H:%M} UTC")


@cli.command("disable")
@click.argument("username")
@_url_option
def disable(username: str, url: str | None) -> None:
    """Disable an account (its sessions end at once)."""
    info = _run(url, lambda a: a.disable_user(username, actor="cli"))
    click.echo(f"account {info.username} disabled")
