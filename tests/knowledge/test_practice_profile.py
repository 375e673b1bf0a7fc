"""Practice profile loading and every validation error path."""

from __future__ import annotations

import copy
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
import yaml

from knowledge.profile import (
    ProfileError,
    default_profile_path,
    load_profile,
    parse_profile,
)


@pytest.fixture(scope="module")
def demo_data() -> dict[str, Any]:
    return yaml.safe_load(default_profile_path().read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "practice.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _error(tmp_path: Path, data: Any) -> ProfileError:
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(path) in str(info.value)
    return info.value


def test_demo_profile_loads() -> None:
    p = load_profile(default_profile_path())
    assert p.practice.name == "Cabinet médical des Tilleuls"
    assert p.practice.timezone == "Europe/Paris"
    assert p.practice.languages == ("fr", "en")
    assert [x.id for x in p.practitioners] == ["morel", "haddad"]
    morel = p.practitioner("morel")
    assert morel.display_name == "Dr Claire Morel"
    assert morel.spoken_name == "le docteur Morel"
    assert morel.schedule.ranges(0)[1].start == time(14, 0)
    assert not morel.schedule.is_open_on(2)  # Wednesday
    laser = p.appointment_type("laser")
    assert laser.tariff_eur == 120 and not laser.reimbursed and laser.follow_up_only
    assert p.appointment_type("dermato_premiere").new_patients_only
    assert p.closure_on(date(2026, 12, 25)) is not None
    assert p.closure_on(date(2026, 12, 27)) is None
    assert p.policies.emergency_numbers.suicide == "3114"
    assert p.policies.cancellation_notice_hours == 24
    assert p.carte_vitale is True
    assert len(p.faq) >= 3 and "domicile" in p.faq[1].question
    assert p.source == str(default_profile_path())
    with pytest.raises(KeyError):
        p.practitioner("nobody")


def test_is_open_at() -> None:
    p = load_profile(default_profile_path())
    assert p.is_open_at(datetime(2026, 11, 30, 8, 30))  # Monday morning
    assert not p.is_open_at(datetime(2026, 11, 30, 12, 30))  # lunch, end is exclusive
    assert not p.is_open_at(datetime(2026, 11, 29, 10, 0))  # Sunday
    assert not p.is_open_at(datetime(2026, 12, 24, 10, 0))  # Christmas closure (Thursday)


def test_default_path_exists() -> None:
    assert default_profile_path().is_file()


@pytest.mark.parametrize(
    ("mutate", "key", "fragment"),
    [
        (lambda d: d.pop("practice"), "practice", "missing required key"),
        (lambda d: d["practice"].pop("timezone"), "practice.timezone", "missing"),
        (lambda d: d.__setitem__("hourz", {}), "hourz", "unknown key"),
        (lambda d: d["practice"].__setitem__("timezone", "Europe/Lyon"), "practice.timezone",
         "unknown time zone"),
        (lambda d: d["practice"].__setitem__("phone", 478123456), "practice.phone",
         "quote it"),
        (lambda d: d["practice"].__setitem__("name", "  "), "practice.name", "must not be empty"),
        (lambda d: d["practice"].__setitem__("id", "Cabinet Tilleuls"), "practice.id",
         "not a valid id"),
        (lambda d: d["hours"].__setitem__("monday", ["25:00-26:00"]), "hours.monday[0]",
         "does not exist"),
        (lambda d: d["hours"].__setitem__("monday", ["08:70-12:00"]), "hours.monday[0]",
         "does not exist"),
        (lambda d: d["hours"].__setitem__("monday", ["12:00-08:00"]), "hours.monday[0]",
         "not after start"),
        (lambda d: d["hours"].__setitem__("monday", ["8h-12h"]), "hours.monday[0]",
         "not a time range"),
        (lambda d: d["hours"].__setitem__("monday", [830]), "hours.monday[0]",
         "expected a time range"),
        (lambda d: d["hours"].__setitem__("monday", ["08:00-12:00", "11:00-14:00"]),
         "hours.monday", "overlap"),
        (lambda d: d["hours"].__setitem__("lundi", ["08:00-12:00"]), "hours.lundi",
         "unknown weekday"),
        (lambda d: d["hours"].__setitem__("monday", "08:00-12:00"), "hours.monday",
         "expected a list"),
        (lambda d: d["practitioners"][1]["schedule"].__setitem__("monday", ["09:00-24:00"]),
         "practitioners[1].schedule.monday[0]", "does not exist"),
        (lambda d: d["practitioners"][1]["schedule"].__setitem__("funday", []),
         "practitioners[1].schedule.funday", "unknown weekday"),
        (lambda d: d["practitioners"][1].__setitem__("id", "morel"), "practitioners[1].id",
         "duplicate"),
        (lambda d: d["practitioners"][0].pop("last_name"), "practitioners[0].last_name",
         "missing"),
        (lambda d: d.__setitem__("practitioners", []), "practitioners", "empty list"),
        (lambda d: d["appointment_types"][2].__setitem__("practitioners", ["haddad", "dupont"]),
         "appointment_types[2].practitioners[1]", "unknown practitioner id 'dupont'"),
        (lambda d: d["appointment_types"][0].__setitem__("tariff_eur", "trente"),
         "appointment_types[0].tariff_eur", "expected a number"),
        (lambda d: d["appointment_types"][0].__setitem__("tariff_eur", -5),
         "appointment_types[0].tariff_eur", "negative"),
        (lambda d: d["appointment_types"][0].__setitem__("duration_min", 2),
         "appointment_types[0].duration_min", "at least 5"),
        (lambda d: d["appointment_types"][0].__setitem__("reimbursed", "oui"),
         "appointment_types[0].reimbursed", "true or false"),
        (lambda d: d["appointment_types"][1].__setitem__("code", "consultation"),
         "appointment_types[1].code", "duplicate"),
        (lambda d: d["appointment_types"][3].__setitem__("new_patients_only", True),
         "appointment_types[3]", "cannot both be true"),
        (lambda d: d["closures"][0].__setitem__("to", date(2026, 12, 1)), "closures[0].to",
         "before"),
        (lambda d: d["closures"][0].__setitem__("from", "24/12/2026"), "closures[0].from",
         "expected a date"),
        (lambda d: d.__setitem__("carte_vitale", "yes"), "carte_vitale", "true or false"),
        (lambda d: d.__setitem__("payments", "carte"), "payments", "expected a list"),
        (lambda d: d["faq"][0].pop("answer"), "faq[0].answer", "missing"),
        (lambda d: d["policies"]["emergency_numbers"].pop("suicide"),
         "policies.emergency_numbers.suicide", "missing"),
        (lambda d: d["policies"].__setitem__("cancellation_notice_hours", 1.5),
         "policies.cancellation_notice_hours", "whole number"),
        (lambda d: d.__setitem__("practice", ["a"]), "practice", "expected a mapping"),
    ],
)
def test_validation_errors(tmp_path: Path, demo_data: dict[str, Any], mutate: Any, key: str,
                           fragment: str) -> None:
    data = copy.deepcopy(demo_data)
    mutate(data)
    err = _error(tmp_path, data)
    assert err.key == key, str(err)
    assert fragment in err.reason, str(err)
    assert f": {key}: " in str(err)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="file not found"):
        load_profile(tmp_path / "nope.yaml")


def test_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("practice:\n  name: [unclosed\n  id: x\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"invalid YAML at line \d+"):
        load_profile(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="empty"):
        load_profile(path)


def test_top_level_not_mapping(tmp_path: Path) -> None:
    err = _error(tmp_path, ["a", "b"])
    assert "expected a mapping" in err.reason


def test_optional_sections(demo_data: dict[str, Any]) -> None:
    data = copy.deepcopy(demo_data)
    for key in ("closures", "tiers_payant", "documents_to_bring", "faq"):
        data.pop(key)
    data["practice"].pop("languages")
    p = parse_profile(data)
    assert p.closures == () and p.faq == () and p.tiers_payant == ""
    assert p.practice.languages == ("fr",)


def test_iso_string_dates(demo_data: dict[str, Any]) -> None:
    data = copy.deepcopy(demo_data)
    data["closures"] = [{"from": "2027-05-01", "to": "2027-05-01", "reason": "1er mai"}]
    assert parse_profile(data).closure_on(date(2027, 5, 1)) is not None
