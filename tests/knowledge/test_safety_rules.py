"""The deterministic safety layer: labelled-set recall, robustness to ASR output, escalation."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from knowledge.evaluation import default_labelled_path, evaluate, load_labelled
from knowledge.profile import EmergencyNumbers
from knowledge.safety import (
    CATEGORIES,
    EscalationTracker,
    RulesError,
    SafetyRules,
    SafetyVerdict,
    TurnOutcome,
    classify_transcript,
    default_rules_path,
    detect_language,
    normalize,
)

HOLDOUTS = sorted(default_labelled_path().parent.glob("safety_fr_holdout*.yaml"),
                  key=lambda p: (len(p.stem), p.stem))
SETS = [default_labelled_path(), *HOLDOUTS]
SET_IDS = ["main", *(p.stem for p in HOLDOUTS)]


@pytest.fixture(scope="module")
def rules() -> SafetyRules:
    return SafetyRules.load()


@pytest.mark.parametrize("path", SETS, ids=SET_IDS)
def test_red_flag_recall_is_total(rules: SafetyRules, path: Path) -> None:
    report = evaluate(rules, load_labelled(path))
    missed = [(it.text, v.category) for it, v in report.missed_red_flags]
    assert report.red_flag_recall == 1.0, missed
    # Suicide risk must get the 3114 script, not only the generic emergency one.
    wrong_script = [it.text for it, v in report.items
                    if it.label == "suicide" and v.category != "suicide"]
    assert not wrong_script


@pytest.mark.parametrize("path", SETS, ids=SET_IDS)
def test_false_positives_stay_low(rules: SafetyRules, path: Path) -> None:
    report = evaluate(rules, load_labelled(path))
    assert report.negatives_total >= 20
    assert report.false_positive_rate <= 0.05, [(it.text, v.category, v.matched)
                                                for it, v in report.items
                                                if it.label == "none" and v.category != "none"]
    assert report.negatives_red_flagged == 0


def test_labelled_set_size_and_coverage() -> None:
    items = load_labelled()
    assert len(items) >= 150
    red = [i for i in items if i.label in ("emergency", "suicide")]
    assert len(red) >= 60
    families = {i.family for i in red}
    for family in ("chest_pain", "stroke", "breathing", "bleeding", "consciousness", "seizure",
                   "anaphylaxis", "suicide", "purpura", "burn"):
        assert family in families
    assert sum(1 for i in items if i.label == "none") >= 60


def test_other_categories_recall(rules: SafetyRules) -> None:
    report = evaluate(rules, [i for path in SETS for i in load_labelled(path)])
    for cat in ("medical_advice", "human_request", "anger"):
        assert report.scores[cat].recall >= 0.9, cat
        assert report.scores[cat].precision >= 0.9, cat


def test_every_rule_example_and_counter_example(rules: SafetyRules) -> None:
    assert rules.check_examples() == []


def _strip_accents(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c))


_VARIANTS = {
    "upper": str.upper,
    "lower_no_punct": lambda t: re.sub(r"[^\w\s']", "", t.lower()),
    "no_accents": _strip_accents,
    "no_apostrophes": lambda t: t.replace("'", "").replace("’", ""),
    "curly_apostrophes": lambda t: t.replace("'", "’"),
    "filler_words": lambda t: f"euh allô oui bonjour euh {t} voilà",
}


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_red_flags_survive_asr_variants(rules: SafetyRules, variant: str) -> None:
    transform = _VARIANTS[variant]
    missed = []
    for item in [i for path in SETS for i in load_labelled(path)]:
        if item.label in ("emergency", "suicide"):
            verdict = rules.assess(transform(item.text))
            if not verdict.is_red_flag:
                missed.append(transform(item.text))
    assert not missed


@pytest.mark.parametrize(("text", "category"), [
    ("je voudrais un rendez-vous pour mon fils", "none"),
    ("mal au dos depuis une semaine, je voudrais un rendez-vous", "none"),
    ("une douleur à la poitrine il y a 5 ans, c'est pour le suivi", "emergency"),
    ("pas de douleur thoracique", "emergency"),  # negation is not trusted for red flags
    ("JAI MAL A LA POITRINE", "emergency"),
    ("j'ai des idées noires", "suicide"),
    ("est-ce que je peux prendre rendez-vous jeudi", "none"),
    ("est-ce que je peux prendre du doliprane", "medical_advice"),
    ("je veux parler à une vraie personne", "human_request"),
    ("vous comprenez rien", "anger"),
    ("", "none"),
    ("   ", "none"),
])
def test_examples_from_the_brief(rules: SafetyRules, text: str, category: str) -> None:
    assert rules.assess(text).category == category


def test_priority_red_flag_beats_everything(rules: SafetyRules) -> None:
    v = rules.assess("passez-moi une secrétaire, mon mari a une douleur dans la poitrine")
    assert v.category == "emergency" and "human_request" in v.also
    v = rules.assess("j'ai mal à la poitrine et j'ai envie de mourir")
    assert v.category == "suicide"
    v = rules.assess("c'est n'importe quoi, est-ce que c'est grave ?")
    assert v.category == "anger"


def test_verdict_scripts(rules: SafetyRules) -> None:
    v = rules.assess("mon père a perdu connaissance")
    assert v.handoff and v.is_red_flag and v.rule_id == "loss_of_consciousness"
    assert v.response_fr == ("Ce que vous décrivez peut être une urgence. Raccrochez et appelez "
                             "immédiatement le 15, ou le 112. Je préviens aussi l'équipe du cabinet.")
    s = rules.assess("je veux en finir")
    assert "3114" in s.response_fr and "15" in s.response_fr
    m = rules.assess("quelle dose de doliprane pour mon fils")
    assert m.category == "medical_advice" and not m.handoff
    assert "avis médical" in m.response_fr and "rendez-vous" in m.response_fr
    n = rules.assess("bonjour")
    assert n == SafetyVerdict(category="none") and n.response == "" and not n.handoff


def test_numbers_come_from_the_profile() -> None:
    custom = SafetyRules.load(emergency_numbers=EmergencyNumbers(samu="15", europe="112",
                                                                 suicide="0800 000 000"))
    assert "0800 000 000" in custom.assess("je veux me suicider").response_fr
    as_mapping = SafetyRules.load(emergency_numbers={"samu": "18"})
    assert "le 18" in as_mapping.assess("il s'est évanoui").response_fr


def test_english_callers(rules: SafetyRules) -> None:
    v = rules.assess("I have chest pain and I can't breathe")
    assert v.category == "emergency" and v.language == "en"
    assert v.response.startswith("What you describe may be an emergency")
    assert rules.assess("can I speak to a real person please").category == "human_request"
    assert rules.assess("I want to book an appointment with Dr Morel").category == "none"


@pytest.mark.parametrize(("text", "lang"), [
    ("Hello, I would like to book an appointment please", "en"),
    ("Do you speak English?", "en"),
    ("Bonjour, je voudrais un rendez-vous", "fr"),
    ("oui", "fr"),
    ("Dr Morel", "fr"),
    ("ok", "fr"),
    ("Je voudrais un rendez-vous pour mon fils, il a de la fièvre", "fr"),
])
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_normalize() -> None:
    assert normalize("J'ai MAL à la poitrine!!") == "j ai mal a la poitrine"
    assert normalize("jai mal, cest grave") == "j ai mal c est grave"
    assert normalize("Œdème de Quincke") == "oedeme de quincke"
    assert normalize("39,5 de fièvre") == "39 5 de fievre"
    assert normalize("l’œil") == "l oeil"


def test_escalation_two_failures_in_a_row() -> None:
    t = EscalationTracker()
    d = t.record(TurnOutcome.NOT_UNDERSTOOD)
    assert not d.handoff and d.say_fr and "répéter" in d.say_fr
    assert not t.record("understood").handoff  # resets the count
    assert not t.record(TurnOutcome.SILENCE).handoff
    d = t.record(TurnOutcome.NOT_UNDERSTOOD)
    assert d.handoff and d.reason == "misunderstanding" and t.should_handoff
    # Once handed off, it stays handed off.
    assert t.record("understood").handoff


def test_escalation_on_verdicts(rules: SafetyRules) -> None:
    for text, reason in [("je veux parler à un humain", "caller_request"),
                         ("c'est inadmissible", "anger"),
                         ("il ne respire plus", "emergency"),
                         ("j'ai envie de mourir", "suicide")]:
        t = EscalationTracker()
        d = t.record("understood", verdict=rules.assess(text))
        assert d.handoff and d.reason == reason and d.say_fr is None


def test_escalation_insisting_on_medical_advice(rules: SafetyRules) -> None:
    t = EscalationTracker(max_medical=2)
    assert not t.record(verdict=rules.assess("est-ce que c'est grave ?")).handoff
    assert not t.record(verdict=rules.assess("je voudrais un rendez-vous")).handoff
    d = t.record(verdict=rules.assess("mais c'est contagieux ?"))
    assert d.handoff and d.reason == "medical_insistence"


def test_escalation_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        EscalationTracker(max_failures=0)
    with pytest.raises(ValueError):
        EscalationTracker().record("maybe")


@pytest.mark.parametrize(("text", "outcome"), [
    ("", TurnOutcome.SILENCE),
    (None, TurnOutcome.SILENCE),
    ("Sous-titres réalisés par la communauté d'Amara.org", TurnOutcome.SILENCE),
    ("Merci d'avoir regardé !", TurnOutcome.SILENCE),
    ("euh... hum", TurnOutcome.NOT_UNDERSTOOD),
    ("...", TurnOutcome.SILENCE),
    ("je voudrais un rendez-vous", TurnOutcome.UNDERSTOOD),
])
def test_classify_transcript(text: str | None, outcome: TurnOutcome) -> None:
    assert classify_transcript(text) is outcome


def _rules_data() -> dict:
    return yaml.safe_load(default_rules_path().read_text(encoding="utf-8"))


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda d: d["rules"][0].__setitem__("category", "panic"), "unknown category"),
    (lambda d: d["rules"][0].__setitem__("patterns", ["(unclosed"]), "bad regular expression"),
    (lambda d: d["rules"][0].__setitem__("patterns", ["{nope} x"]), "unknown macro {nope}"),
    (lambda d: d["rules"][0].__setitem__("patterns", ["douleur "]), "space"),
    (lambda d: d["rules"][1].__setitem__("id", d["rules"][0]["id"]), "duplicate id"),
    (lambda d: d["rules"][0].__setitem__("patternz", ["x"]), "unknown key 'patternz'"),
    (lambda d: d["rules"][0].pop("patterns"), "needs patterns or all"),
    (lambda d: d["categories"].pop("anger"), "missing anger"),
    (lambda d: d["categories"]["emergency"].__setitem__("response_fr", "appelez le {pompiers}"),
     "bad placeholder"),
    (lambda d: d.pop("rules"), "expected a mapping"),
])
def test_rules_errors(mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    data = _rules_data()
    mutate(data)
    with pytest.raises(RulesError, match=re.escape(fragment)):
        SafetyRules.from_dict(data, source="test.yaml")


def test_rules_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        SafetyRules.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed\n", encoding="utf-8")
    with pytest.raises(RulesError, match="invalid YAML"):
        SafetyRules.load(bad)


def test_categories_are_complete(rules: SafetyRules) -> None:
    assert set(rules.responses_fr) == set(CATEGORIES) - {"none"}
    assert {r.category for r in rules.rules} == set(CATEGORIES) - {"none"}


def test_labelled_set_errors(tmp_path: Path) -> None:
    bad = tmp_path / "labelled.yaml"
    bad.write_text("panic:\n  x: [a]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown label"):
        load_labelled(bad)
    bad.write_text("none:\n  x: a\n", encoding="utf-8")
    with pytest.raises(ValueError, match="list of strings"):
        load_labelled(bad)


def test_red_flag_across_turns(rules: SafetyRules) -> None:
    first = "ma fille a de la fièvre depuis hier"
    assert rules.assess(first).category == "none"
    second = "et elle a des taches sur le ventre"
    assert rules.assess(second).category == "none"
    v = rules.assess(second, context=[first])
    assert v.category == "emergency" and v.from_context
    # Without a red flag across the turns, the turn's own verdict stands.
    assert rules.assess("je voudrais un rendez-vous", context=[first]).category == "none"
    assert rules.assess("est-ce que c'est grave ?", context=[first]).category == "medical_advice"
    # A red flag already in the context alone is not raised again on a later turn.
    assert rules.assess("oui", context=["il a du mal à respirer"]).category == "none"


def test_split_elisions_only_where_safe(rules: SafetyRules) -> None:
    from knowledge.safety import split_elisions

    text = normalize("crise dasthme, leau bouillante, il saffaisse, dans lescalier")
    assert split_elisions(text, rules.vocabulary) == (
        "crise d asthme l eau bouillante il s affaisse dans l escalier")
    ordinary = normalize("je voudrais savoir s ils sont là, mais maux de tête, tout le monde")
    assert split_elisions(ordinary, rules.vocabulary) == ordinary
