"""``twin review``: serve the staff review page (``--demo``: on a throw-away demo store)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

__all__ = ["review"]

logger = logging.getLogger(__name__)


def _store(url: str) -> Any:
    from transcripts.store import TranscriptStore

    return TranscriptStore(url=url)


async def _prepare_demo(store: Any, folder: Path) -> tuple[str, str]:
    from transcripts.review.auth import Accounts
    from transcripts.review.demo import copy_demo_audio, load_demo

    await store.migrate()
    await load_demo(store, audio_dir=copy_demo_audio(folder / "audio"))
    password = secrets.token_urlsafe(9)
    accounts = Accounts(store=store)
    await accounts.add_user("admin", password, "admin", actor="twin review --demo")
    await accounts.add_user("secretaire", password, "reviewer", actor="twin review --demo")
    await accounts.add_user("formateur", password, "trainer", actor="twin review --demo")
    await store.dispose()  # the server's event loop opens its own connections
    return "admin", password


async def _prepare(store: Any) -> int:
    from transcripts.review.auth import Accounts

    await store.migrate()
    users = await Accounts(store=store).list_users()
    await store.dispose()
    return sum(1 for u in users if not u.disabled)


def _profile_name(path: Path | None) -> str:
    """The practice's name from its profile (``None``: the demo profile)."""
    from knowledge.profile import ProfileError, default_profile_path, load_profile

    try:
        return load_profile(path or default_profile_path()).practice.name
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc


def _exit_on_signal(signum: int, _frame: Any) -> None:
    sys.exit(128 + signum)


@click.command("review")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (keep 127.0.0.1 unless behind an https proxy).")
@click.option("--port", default=8088, show_default=True, type=int)
@click.option("--demo", is_flag=True,
              help="Serve a throw-away demo store (four corpus calls with audio) and print "
                   "the demo accounts.")
@click.option("--url", envvar="TWIN_DATABASE_URL", default=None, show_envvar=True,
              help="Database URL (default: SQLite agenda.db in the data folder).")
@click.option("--second-review/--no-second-review", default=False, show_default=True,
              help="Require a second person to approve a corrected call.")
@click.option("--secure-cookies", is_flag=True,
              help="Mark cookies Secure (when served over https by a proxy).")
@click.option("--audio-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder that relative audio paths of calls are resolved against.")
@click.option("--twin-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The twin's model folder (contribution ledgers); default: the data "
                   "folder's twin/.")
@click.option("--profile", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="The practice profile (its name heads the pages).")
def review(host: str, port: int, demo: bool, url: str | None, second_review: bool,
           secure_cookies: bool, audio_root: Path | None, twin_dir: Path | None,
           profile: Path | None) -> None:
    """Serve the staff review page: listen, correct, redact, label, approve."""
    try:
        import uvicorn

        from transcripts.review.app import create_app
    except ModuleNotFoundError as exc:
        raise click.ClickException(
            f"'twin review' needs the review extra ({exc.name}): pip install -e '.[review]'"
        ) from exc
    from records.db import default_data_dir, default_url
    from transcripts.review.settings import ReviewSettings

    if demo:
        folder = Path(tempfile.mkdtemp(prefix="twin-review-demo-"))
        url = f"sqlite+aiosqlite:///{folder / 'review-demo.db'}"
        store = _store(url)
        username, password = asyncio.run(_prepare_demo(store, folder))
        practice_name = _profile_name(None) + " (démo)"
        click.echo(f"Demo store: {folder}")
        click.echo(f"Log in as {username} / {password} (admin; also 'secretaire' as reviewer "
                   "and 'formateur' as trainer, same password)")
    else:
        practice_name = _profile_name(profile) if profile else "Cabinet médical"
        store = _store(url or default_url())
        active = asyncio.run(_prepare(store))
        if active == 0:
            click.echo("No account yet: create one with 'twin users add NAME --role admin'.",
                       err=True)
    settings = ReviewSettings(
        practice_name=practice_name, second_review=second_review, secure_cookies=secure_cookies,
        audio_root=audio_root, twin_model_dir=twin_dir or default_data_dir() / "twin")
    click.echo(f"Review page: http://{host}:{port}/")
    # uvicorn re-raises SIGTERM after its graceful shutdown: make that an exit, so the
    # demo's throw-away folder is removed below (SIGINT already raises KeyboardInterrupt)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(create_app(store=store, settings=settings), host=host, port=port,
                    log_level="warning", access_log=False)
    finally:
        if demo:
            shutil.rmtree(folder, ignore_errors=True)  # the demo store is throw-away
