"""System prompt stability/size and the ``twin knowledge`` commands."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from knowledge.cli import cli
from knowledge.profile import PracticeProfile, default_profile_path, load_profile
from knowledge.prompts import build_system_prompt, estimate_tokens


@pytest.fixture(scope="module")
def profile() -> PracticeProfile:
    return load_profile(default_profile_path())


def test_prompt_content(profile: PracticeProfile) -> None:
    text = build_system_prompt(profile, today=date(2026, 12, 3))
    assert "Cabinet médical des Tilleuls" in text
    assert "le docteur Claire Morel (médecine générale)" in text
    assert "practice_info" in text and "find_slots" in text and "book" in text
    assert "avis médical" in text and "deux créneaux" in text
    assert "nom et la date de naissance" in text
    assert text.endswith("Aujourd'hui : jeudi 3 décembre 2026.")
    # No practice facts the model could parrot instead of calling the tool.
    for fact in ("30 euros", "rue des Tilleuls", "08:30", "8 heures 30"):
        assert fact not in text
    # Measured with the Qwen2.5 tokenizer: 307 tokens; the estimate errs high.
    assert estimate_tokens(text) <= 350


def test_prompt_is_stable_within_a_day_and_only_the_date_changes(profile: PracticeProfile) -> None:
    a = build_system_prompt(profile, today=date(2026, 12, 3))
    b = build_system_prompt(profile, today=date(2026, 12, 3))
    c = build_system_prompt(profile, today=date(2026, 12, 4))
    assert a == b
    assert a.splitlines()[:-1] == c.splitlines()[:-1]  # cache prefix shared across days
    assert a.splitlines()[-1] != c.splitlines()[-1]


def test_prompt_english(profile: PracticeProfile) -> None:
    text = build_system_prompt(profile, today=date(2026, 12, 3), language="en")
    assert text.startswith("You are the phone secretary")
    assert text.endswith("Today: Thursday 3 December 2026.")
    assert estimate_tokens(text) <= 350
    with pytest.raises(ValueError, match="unsupported"):
        build_system_prompt(profile, today=date(2026, 12, 3), language="de")


def test_cli_validate_ok() -> None:
    result = CliRunner().invoke(cli, ["validate", str(default_profile_path())])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "2 practitioners" in result.output


def test_cli_validate_error(tmp_path: Path) -> None:
    data = yaml.safe_load(default_profile_path().read_text(encoding="utf-8"))
    data["practitioners"][1]["schedule"]["monday"] = ["09:00-25:00"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "practitioners[1].schedule.monday[0]" in result.output
    assert "25:00" in result.output


def test_cli_check_rules() -> None:
    result = CliRunner().invoke(cli, ["check-rules"])
    assert result.exit_code == 0, result.output
    assert "red-flag recall (emergency + suicide): " in result.output
    assert "= 100.0%" in result.output
    for cat in ("emergency", "suicide", "medical_advice", "human_request", "anger", "none"):
        assert cat in result.output


def test_cli_check_rules_fails_on_missed_red_flag(tmp_path: Path) -> None:
    labelled = tmp_path / "l.yaml"
    labelled.write_text("emergency:\n  x: ['je voudrais un rendez-vous']\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["check-rules", "--labelled", str(labelled)])
    assert result.exit_code == 1
    assert "0/1" in result.output and "je voudrais un rendez-vous" in result.output


def test_cli_assess_and_ask() -> None:
    result = CliRunner().invoke(cli, ["assess", "j'ai", "mal", "à", "la", "poitrine"])
    assert result.exit_code == 0 and "emergency" in result.output and "15" in result.output
    result = CliRunner().invoke(cli, ["ask", "carte", "vitale"])
    assert result.exit_code == 0 and "carte Vitale" in result.output
    result = CliRunner().invoke(cli, ["prompt"])
    assert result.exit_code == 0 and "practice_info" in result.output
