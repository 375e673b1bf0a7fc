"""The French PII detector with the real spaCy model: each type in spoken and written forms,
the practice's own details kept, names across a call, and recall on the French test set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redaction_helpers import demo_profile, loaded_redactor
from stdnum.fr import nir as stdnir

from transcripts.redaction import RedactionContext, Redactor
from transcripts.redaction_eval import Example, score

ROOT = Path(__file__).resolve().parents[2]
TEST_SET = ROOT / "tests" / "fixtures" / "pii" / "sentences.jsonl"


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return loaded_redactor()


@pytest.fixture(scope="module")
def ctx() -> RedactionContext:
    return RedactionContext.from_profile(demo_profile(), staff_names=["amelie"], ref_year=2026)


def found(redactor: Redactor, text: str, ctx: RedactionContext, *, previous: str = ""
          ) -> list[tuple[str, str]]:
    return [(s.type, text[s.start:s.end])
            for s in redactor.detect(text, context=ctx, previous=previous)]


def test_detect_needs_load() -> None:
    with pytest.raises(RuntimeError, match="load"):
        Redactor().detect("Bonjour", context=RedactionContext())


@pytest.mark.parametrize(("text", "span"), [
    ("Sur mon portable : zéro six, quarante-cinq, dix-huit, soixante-treize, quatre-vingt-dix.",
     "zéro six, quarante-cinq, dix-huit, soixante-treize, quatre-vingt-dix"),
    ("Au zéro sept, quatre-vingt-trois, zéro zéro, quarante-six, quinze.",
     "zéro sept, quatre-vingt-trois, zéro zéro, quarante-six, quinze"),
    ("Alors zéro, six, quatre, cinq, un, huit, sept, trois, neuf, zéro.",
     "zéro, six, quatre, cinq, un, huit, sept, trois, neuf, zéro"),
    ("Rappelez-moi au 06 45 18 73 90.", "06 45 18 73 90"),
    ("Tél. 06.45.18.73.90", "06.45.18.73.90"),
    ("Numéro : 0645187390", "0645187390"),
    ("Mon numéro, +33 6 45 18 73 90.", "+33 6 45 18 73 90"),
    ("C'est le plus trente-trois, six, quarante-cinq, dix-huit, soixante-treize, quatre-vingt-dix.",
     "plus trente-trois, six, quarante-cinq, dix-huit, soixante-treize, quatre-vingt-dix"),
])
def test_phone_spoken_and_written(redactor: Redactor, ctx: RedactionContext, text: str,
                                  span: str) -> None:
    assert found(redactor, text, ctx) == [("phone", span)]


def test_phone_in_english_digits_only_for_english_calls(redactor: Redactor,
                                                        ctx: RedactionContext) -> None:
    text = "Plus four four, seven seven oh oh, nine oh oh, four one two."
    assert found(redactor, text, ctx.replace(language="en")) == [
        ("phone", "Plus four four, seven seven oh oh, nine oh oh, four one two")]
    assert found(redactor, text, ctx) == []


def test_practice_phone_and_address_are_not_pii(redactor: Redactor, ctx: RedactionContext) -> None:
    # knowledge/practices/demo.yaml: 04 78 12 34 56, 12 rue des Tilleuls, 69003 Lyon
    for text in ["Le cabinet, c'est le zéro quatre, soixante-dix-huit, douze, trente-quatre, "
                 "cinquante-six.",
                 "Le numéro du cabinet est le 04 78 12 34 56.",
                 "Nous sommes au douze rue des Tilleuls, au rez-de-chaussée.",
                 "Le cabinet est au 12 rue des Tilleuls, 69003 Lyon."]:
        assert found(redactor, text, ctx) == [], text
    # the same shapes for a patient are redacted
    assert found(redactor, "J'habite au douze rue des Lilas.", ctx) == [
        ("address", "douze rue des Lilas")]
    assert found(redactor, "Mon fixe, c'est le 04 78 12 34 57.", ctx) == [
        ("phone", "04 78 12 34 57")]


def _nir(body: str) -> str:
    return body + stdnir.calc_check_digits(body)


def test_nir_written_with_key_check(redactor: Redactor, ctx: RedactionContext) -> None:
    good = _nir("1910269387042")
    assert stdnir.is_valid(good)
    spaced = f"{good[0]} {good[1:3]} {good[3:5]} {good[5:7]} {good[7:10]} {good[10:13]} {good[13:]}"
    assert found(redactor, f"NIR : {spaced}", ctx) == [("nir", spaced)]
    assert found(redactor, f"Numéro de Sécu {good}.", ctx) == [("nir", good)]
    # a wrong key: not a NIR, but a 15-digit number is still an identifier, still hidden
    bad_key = (int(good[13:]) % 97) + 1
    bad = f"{good[:13]}{bad_key:02d}"
    assert not stdnir.is_valid(bad)
    assert found(redactor, f"Numéro de Sécu {bad}.", ctx) == [("other_id", bad)]


def test_nir_spoken_in_groups(redactor: Redactor, ctx: RedactionContext) -> None:
    good = _nir("1910269387042")
    key_words = {"50": "cinquante"}[good[13:]]
    spoken = (f"un, quatre-vingt-onze, zéro deux, soixante-neuf, trois cent quatre-vingt-sept, "
              f"zéro quarante-deux, clé {key_words}")
    assert found(redactor, f"Mon numéro de sécurité sociale, c'est le {spoken}.", ctx) == [
        ("nir", spoken)]
    # said without its key, after a cue: still a NIR
    partial = "deux, soixante-treize, zéro cinq, soixante-neuf, trois cent quatre-vingt-sept"
    assert found(redactor, f"Son numéro de Sécu, c'est le {partial}…", ctx) == [("nir", partial)]


@pytest.mark.parametrize(("text", "span", "previous"), [
    ("Oui. Le dix-sept février quatre-vingt-onze.", "dix-sept février quatre-vingt-onze", ""),
    ("Je suis née le quatorze février quarante et un.", "quatorze février quarante et un", ""),
    ("Je suis du douze mars quarante-cinq.", "douze mars quarante-cinq", ""),
    ("Il est né le vingt et un mars deux mille vingt-quatre.",
     "vingt et un mars deux mille vingt-quatre", ""),
    ("Né le 4 juin 1978.", "4 juin 1978", ""),
    ("Date de naissance : 04/06/1978", "04/06/1978", ""),
    ("Dix-huit, onze, soixante et onze.", "Dix-huit, onze, soixante et onze", ""),
    ("Zéro deux, zéro sept, quatre-vingt-huit.", "Zéro deux, zéro sept, quatre-vingt-huit", ""),
    ("Le premier avril.", "premier avril", "Et votre date de naissance ?"),
    # Whisper lost the day: the month and a year long past are still hidden
    ("Je suis Paul Girard, nelocatent juin 1978.", "juin 1978", ""),
])
def test_birth_dates(redactor: Redactor, ctx: RedactionContext, text: str, span: str,
                     previous: str) -> None:
    assert [f for f in found(redactor, text, ctx, previous=previous)
            if f[0] != "person"] == [("birth_date", span)]


def test_appointment_dates_are_not_birth_dates(redactor: Redactor, ctx: RedactionContext) -> None:
    for text in ["Je vous note lundi cinq octobre, à dix-sept heures quarante.",
                 "Votre rendez-vous est le 4 novembre 2026 à 9h30.",
                 "Il y a un créneau le dix-huit novembre à quatorze heures.",
                 "Jeudi quinze octobre, dix heures dix, avec le docteur Morel."]:
        assert found(redactor, text, ctx, previous="Vous êtes née quand ?"
                     if "Jeudi" in text else "") == [], text


@pytest.mark.parametrize(("text", "span"), [
    ("Girard. G, I, R, A, R, D.", "G, I, R, A, R, D"),
    ("Ça s'écrit G-I-R-A-R-D.", "G-I-R-A-R-D"),
    ("Ferrand. F, E, deux R, A, N, D.", "F, E, deux R, A, N, D"),
    ("N, apostrophe, D, I, A, Y, E.", "N, apostrophe, D, I, A, Y, E"),
    ("Alors g comme Gaston, i comme Irma, r comme Raoul.",
     "g comme Gaston, i comme Irma, r comme Raoul"),
])
def test_spelled_names(redactor: Redactor, ctx: RedactionContext, text: str, span: str) -> None:
    assert ("spelled_name", span) in found(redactor, text, ctx)


def test_single_letter_words_are_not_spelling(redactor: Redactor, ctx: RedactionContext) -> None:
    assert found(redactor, "Il y a à manger, y a pas de souci.", ctx) == []


@pytest.mark.parametrize(("text", "span"), [
    ("Mon adresse, c'est agnes point pasquier arobase logisfons point fr.",
     "agnes point pasquier arobase logisfons point fr"),
    ("Écrivez à jean tiret du bas dupont arobase laposte point net.",
     "jean tiret du bas dupont arobase laposte point net"),
    ("Mon mail : jean.dupont@gmail.com, merci.", "jean.dupont@gmail.com"),
    # as Whisper writes a spelled-out address: half words, half marks
    ("C'est jean.dupont arobase gmail.com.", "jean.dupont arobase gmail.com"),
    ("Alors marie-claire @ free.fr voilà.", "marie-claire @ free.fr"),
])
def test_emails(redactor: Redactor, ctx: RedactionContext, text: str, span: str) -> None:
    assert found(redactor, text, ctx) == [("email", span)]


@pytest.mark.parametrize(("text", "span"), [
    ("Il habite au quarante-deux rue des Glycines, dans le troisième.",
     "quarante-deux rue des Glycines"),
    ("On est au 3 bis avenue Jean Jaurès.", "3 bis avenue Jean Jaurès"),
    ("Adresse : 27 bis, avenue du Général Leclerc, 69007 Lyon.",
     "27 bis, avenue du Général Leclerc, 69007 Lyon"),
    ("Mon adresse, c'est le huit chemin du Moulin, soixante-neuf mille cent Villeurbanne.",
     "huit chemin du Moulin, soixante-neuf mille cent Villeurbanne"),
])
def test_addresses(redactor: Redactor, ctx: RedactionContext, text: str, span: str) -> None:
    assert found(redactor, text, ctx) == [("address", span)]


def test_names_with_cues_and_staff_kept(redactor: Redactor, ctx: RedactionContext) -> None:
    assert found(redactor, "Bonjour, je suis Paul Girard, j'appelle pour mon fils.", ctx) == [
        ("person", "Paul Girard")]
    assert found(redactor, "Merci, madame Vasseur, à jeudi.", ctx) == [("person", "Vasseur")]
    assert found(redactor, "C'est pour ma fille, Léa.", ctx) == [("person", "Léa")]
    # the practice's practitioners (profile) and the call's secretary are not PII
    assert found(redactor, "Cabinet médical des Tilleuls, Amélie, bonjour.", ctx) == []
    assert found(redactor, "Je voudrais voir le docteur Morel ou le docteur Haddad.", ctx) == []


def test_patient_list_finds_names_that_are_also_words(redactor: Redactor,
                                                      ctx: RedactionContext) -> None:
    text = "Le dossier de Blanc est arrivé hier."
    assert found(redactor, text, ctx) == []
    with_list = ctx.replace(patient_names=("Michel Blanc",))
    assert [(s.type, s.source, text[s.start:s.end])
            for s in redactor.detect(text, context=with_list)] == [
        ("person", "patient_list", "Blanc")]


def test_names_found_once_are_found_in_the_whole_call(redactor: Redactor,
                                                      ctx: RedactionContext) -> None:
    turns = ["Vous pouvez me donner votre nom et votre date de naissance ?",
             "Oui oui. Jacquet, Rémi Jacquet. Le dix-sept février quatre-vingt-onze.",
             "Bien. Jacquet, vous avez dit ? Très bien.",
             "Ferreira... F, E, deux R, E, I, R, A.",
             "Alors Ferreira, c'est noté."]
    spans = redactor.detect_call(turns, context=ctx)
    got = [[(s.type, t[s.start:s.end]) for s in ss] for t, ss in zip(turns, spans, strict=True)]
    assert got[0] == []
    assert ("person", "Rémi Jacquet") in got[1] and ("birth_date",
                                                      "dix-sept février quatre-vingt-onze") in got[1]
    assert got[2] == [("person", "Jacquet")]
    assert ("spelled_name", "F, E, deux R, E, I, R, A") in got[3]
    assert got[4] == [("person", "Ferreira")]


def test_placeholders_are_left_alone(redactor: Redactor, ctx: RedactionContext) -> None:
    text = "Merci, monsieur [NOM_1], né le [DATE_NAISSANCE_1], au [TELEPHONE_1]."
    assert found(redactor, text, ctx) == []


def test_health_only_when_asked(redactor: Redactor, ctx: RedactionContext) -> None:
    text = "J'ai une angine, je crois, et de la fièvre depuis hier soir."
    assert found(redactor, text, ctx) == []
    health = found(redactor, text, ctx.replace(health=True))
    assert [t for t, _ in health] == ["health", "health"]
    assert "une angine" in health[0][1] and "fièvre" in health[1][1]


def test_overlaps_resolved_most_specific_first(redactor: Redactor, ctx: RedactionContext) -> None:
    # a street named after a person is one address, not an address plus a name
    text = "J'habite au 5 rue Victor Hugo."
    assert found(redactor, text, ctx) == [("address", "5 rue Victor Hugo")]


def test_recall_on_the_french_test_set(redactor: Redactor, ctx: RedactionContext) -> None:
    rows = [json.loads(x) for x in TEST_SET.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(rows) >= 100
    counts: dict[str, int] = {}
    for row in rows:
        for s in row["spans"]:
            counts[s["type"]] = counts.get(s["type"], 0) + 1
    assert min(counts[t] for t in ("nir", "email", "address", "phone", "birth_date")) >= 20
    examples = []
    for row in rows:
        c = ctx.replace(health=True, language=row.get("language", "fr"))
        spans = redactor.detect(row["text"], context=c, previous=row.get("previous", ""))
        examples.append(Example(row["text"], tuple((s["type"], s["text"]) for s in row["spans"]),
                                tuple(spans)))
    result = score(examples)
    for t in ("person", "spelled_name", "birth_date", "phone", "nir", "email", "address"):
        s = result.by_type[t]
        assert s.recall >= 0.95, (t, s, [m for m in result.missed if m[0] == t])
        assert s.recall_typed >= 0.9, (t, s)
    assert result.total().precision >= 0.9, result.wrong


def test_misheard_practice_names_are_not_callers(redactor: Redactor,
                                                 ctx: RedactionContext) -> None:
    # Whisper's versions of the greeting and of the staff's names
    turns = ["Kabinets médicales de Thio. Amelie, bonjour.",
             "Bonjour, je voudrais voir le docteur Mohel. Je suis Paul Girard."]
    spans = redactor.detect_call(turns, context=ctx, speakers=["secretary", "patient"])
    assert spans[0] == []
    assert [(s.type, turns[1][s.start:s.end]) for s in spans[1]] == [("person", "Paul Girard")]
    # without the speakers the greeting's misheard words look like names
    assert redactor.detect_call(turns, context=ctx)[0] != []
    # a doctor's name that is not the practice's is a person
    text = "Mon cardiologue, le docteur Dupuis, m'a dit de vous appeler."
    assert found(redactor, text, ctx) == [("person", "Dupuis")]


def test_rules_only_without_the_model(ctx: RedactionContext) -> None:
    # use_ner=False: a blank French pipeline; cues and rules still work
    r = Redactor(use_ner=False)
    r.load()
    text = "Bonjour, je suis Paul Girard, né le 4 juin 1978, au 06 45 18 73 90."
    assert [(s.type, text[s.start:s.end]) for s in r.detect(text, context=ctx)] == [
        ("person", "Paul Girard"), ("birth_date", "4 juin 1978"), ("phone", "06 45 18 73 90")]
