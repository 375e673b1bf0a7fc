"""``twin db`` and ``twin agenda`` against a real SQLite file."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from twin.cli import main


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TWIN_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    return CliRunner()


def test_db_init_seed_and_agenda(cli: CliRunner) -> None:
    r = cli.invoke(main, ["db", "init", "--seed"])
    assert r.exit_code == 0, r.output
    assert "revision 0002" in r.output
    again = cli.invoke(main, ["db", "seed"])  # idempotent
    assert again.exit_code == 0, again.output

    outputs = []
    for ahead in range(0, 14):
        r = cli.invoke(main, ["agenda", "day", (date.today() + timedelta(days=ahead)).isoformat()])
        assert r.exit_code == 0, r.output
        outputs.append(r.output)
    text = "".join(outputs)
    # each demo patient has exactly one appointment: the second seed did not book again
    for name in ("Paul Girard", "Sophie Laurent", "Nadia Benali", "Léa Laurent"):
        assert text.count(name) == 1, text
    assert "Dr Claire Morel" in text and "by staff:seed" in text

    r = cli.invoke(main, ["agenda", "free", "-p", "docteur Adad", "--limit", "3"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 3 and all("Dr Karim Haddad" in x for x in lines)

    r = cli.invoke(main, ["agenda", "audit", "--limit", "50"])
    assert r.exit_code == 0 and "appointment.book" in r.output and "staff:seed" in r.output


def test_staff_cancel_is_audited(cli: CliRunner) -> None:
    assert cli.invoke(main, ["db", "init", "--seed"]).exit_code == 0
    r = cli.invoke(main, ["agenda", "cancel", "1", "--staff", "alice", "--reason", "called"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(main, ["agenda", "audit", "--limit", "1"])
    assert "staff:alice" in r.output and "appointment.cancel" in r.output
    r = cli.invoke(main, ["agenda", "cancel", "1", "--staff", "alice"])
    assert r.exit_code != 0 and "no upcoming appointment" in r.output


def test_clear_errors(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(main, ["db", "init", "--seed"]).exit_code == 0
    r = cli.invoke(main, ["agenda", "free", "-p", "docteur Dubois"])
    assert r.exit_code != 0 and "no practitioner matches" in r.output
    r = cli.invoke(main, ["agenda", "day", "2026-02-30"])
    assert r.exit_code != 0 and "does not exist" in r.output
    r = cli.invoke(main, ["db", "migrate", "--down", "--revision", "base"])
    assert r.exit_code == 0 and "-> empty" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("practice: {}\n")
    r = cli.invoke(main, ["db", "seed", "--profile", str(bad)])
    assert r.exit_code != 0 and "bad.yaml" in r.output


def test_calls_and_messages_views(cli: CliRunner, tmp_path: Path) -> None:
    import asyncio

    from records import BookingService, Database

    assert cli.invoke(main, ["db", "init"]).exit_code == 0

    async def record() -> None:
        db = Database(url=f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        svc = BookingService(db=db, spool_path=tmp_path / "spool.jsonl")
        await svc.start_call(call_id="call-77", caller_number="+33612345678")
        await svc.leave_message(kind="results", body="Résultats de prise de sang",
                                actor="assistant:call-77", call_id="call-77",
                                caller_name="Nadia Benali", callback_number="0761228014")
        await svc.end_call(call_id="call-77", outcome="handoff", handoff_reason="results")
        await db.dispose()

    asyncio.run(record())
    r = cli.invoke(main, ["agenda", "calls"])
    assert r.exit_code == 0 and "call-77" in r.output and "handoff: results" in r.output
    r = cli.invoke(main, ["agenda", "messages"])
    assert r.exit_code == 0 and "Résultats de prise de sang" in r.output and "Nadia" in r.output



def test_absence_command(cli: CliRunner) -> None:
    assert cli.invoke(main, ["db", "init", "--seed"]).exit_code == 0
    start = (date.today() + timedelta(days=1)).isoformat()
    end = (date.today() + timedelta(days=20)).isoformat()
    r = cli.invoke(main, ["agenda", "absence", "docteur Morel", start, end, "--staff", "alice",
                          "--reason", "congés"])
    assert r.exit_code == 0, r.output
    assert "absence #1 recorded for morel" in r.output
    assert "appointments to move or cancel: #" in r.output  # the seeded Morel appointments
    r = cli.invoke(main, ["agenda", "free", "-p", "morel", "--from", start, "--to", end])
    assert r.exit_code == 0 and r.output.strip() == ""
    r = cli.invoke(main, ["agenda", "absence", "morel", "demain", end, "--staff", "a"])
    assert r.exit_code != 0 and "YYYY-MM-DD" in r.output
