"""Changes made on a call's page, checked in the database: turn corrections, split and
merge, PII decisions (accept, reject, a missed span), action chips, labels, the review
status with and without a second reviewer, and the audit trail of each."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from review_support import Browser, Demo

from transcripts.review.app import create_app
from transcripts.review.settings import ReviewSettings

pytestmark = pytest.mark.timeout(300)

NewBrowser = Callable[[object], Browser]


async def _logged(browsers: NewBrowser, app: object, name: str) -> Browser:
    b = browsers(app)
    assert (await b.login(name)).status_code == 303
    return b


async def _call(demo: Demo, external: str, *, pii: bool = True):  # type: ignore[no-untyped-def]
    call = await demo.store.get_call(demo.ids[external], can_see_pii=pii)
    assert call is not None
    return call


async def test_correct_text_and_speaker_keeps_spans(demo: Demo, app: object,
                                                   browsers: NewBrowser) -> None:
    alice = await _logged(browsers, app, "alice")
    call = await _call(demo, "P1-001")
    turn = call.turns[3]  # "Oui oui. [NOM_1], [NOM_2]. Le [DATE_NAISSANCE_1]."
    assert [s.placeholder for s in turn.spans] == ["[NOM_1]", "[NOM_2]", "[DATE_NAISSANCE_1]"]
    new_text = turn.text.replace("Oui oui.", "Oui, oui.")
    r = await alice.post(f"/calls/{call.id}/turns/{turn.id}",
                         {"text": new_text, "speaker": "unknown", "op": "save"},
                         call_id=call.id)
    assert r.status_code == 303 and r.headers["location"].endswith("ok=turn#turn-3")
    after = (await _call(demo, "P1-001")).turns[3]
    assert after.text == new_text and after.speaker == "unknown"
    assert [s.original for s in after.spans] == ["Jacquet", "Rémi Jacquet",
                                                 "dix-sept février quatre-vingt-onze"]
    assert all(after.text[s.start:s.end] == s.placeholder for s in after.spans)
    audit = await demo.store.list_audit(call_id=call.id, limit=1)
    assert audit[0].actor == "alice" and audit[0].action == "turn.update"
    assert audit[0].before["speaker"] == "patient" and audit[0].after["speaker"] == "unknown"


async def test_split_then_merge_a_turn(demo: Demo, app: object, browsers: NewBrowser) -> None:
    alice = await _logged(browsers, app, "alice")
    call = await _call(demo, "P1-001")
    turn = call.turns[3]
    cut = turn.text.index(" Le [DATE")  # between the name and the birth date
    r = await alice.post(f"/calls/{call.id}/turns/{turn.id}",
                         {"text": turn.text, "op": "split", "at": cut}, call_id=call.id)
    assert r.status_code == 303, r.text
    split = await _call(demo, "P1-001")
    assert len(split.turns) == len(call.turns) + 1
    first, second = split.turns[3], split.turns[4]
    assert first.text == "Oui oui. [NOM_1], [NOM_2]."
    assert second.text == "Le [DATE_NAISSANCE_1]." and second.speaker == "patient"
    assert [s.placeholder for s in second.spans] == ["[DATE_NAISSANCE_1]"]
    assert second.text[second.spans[0].start:second.spans[0].end] == "[DATE_NAISSANCE_1]"
    assert second.spans[0].original == "dix-sept février quatre-vingt-onze"
    assert turn.start_s < second.start_s < turn.end_s and first.end_s == second.start_s
    assert [t.idx for t in split.turns] == list(range(len(split.turns)))
    assert split.turns[5].text == call.turns[4].text  # later turns moved down by one
    # a cut inside a placeholder is refused
    inside = second.text.index("NAISSANCE")
    r = await alice.post(f"/calls/{call.id}/turns/{second.id}",
                         {"text": second.text, "op": "split", "at": inside}, call_id=call.id)
    assert r.status_code == 400 and "donnée masquée" in r.text
    r = await alice.post(f"/calls/{call.id}/turns/{first.id}", {"text": first.text,
                                                                "op": "merge"},
                         call_id=call.id)
    assert r.status_code == 303
    merged = await _call(demo, "P1-001")
    assert len(merged.turns) == len(call.turns)
    assert merged.turns[3].text == turn.text
    assert [(s.start, s.end, s.original) for s in merged.turns[3].spans] == [
        (s.start, s.end, s.original) for s in turn.spans]
    assert merged.turns[3].end_s == turn.end_s
    assert [t.text for t in merged.turns] == [t.text for t in call.turns]
    actions = [a.action for a in await demo.store.list_audit(call_id=call.id, limit=2)]
    assert actions == ["turn.merge", "turn.split"]


async def test_accept_reject_and_mark_missed_pii(demo: Demo, app: object,
                                                 browsers: NewBrowser) -> None:
    alice = await _logged(browsers, app, "alice")
    call = await _call(demo, "P3-021")
    turn = call.turns[1]
    assert {s.status for s in turn.spans} == {"proposed"}
    name, wife = turn.spans[0], turn.spans[1]
    r = await alice.post(f"/calls/{call.id}/spans/{name.id}", {"status": "accepted"},
                         call_id=call.id)
    assert r.status_code == 303
    r = await alice.post(f"/calls/{call.id}/spans/{wife.id}", {"status": "rejected"},
                         call_id=call.id)
    assert r.status_code == 303
    after = (await _call(demo, "P3-021")).turns[1]
    statuses = {s.id: s.status for s in after.spans}
    assert statuses[name.id] == "accepted" and statuses[wife.id] == "rejected"
    assert "Elena" in after.text and "[NOM_1]" in after.text  # rejected: original put back
    # a reviewer (no PII rights) sees the rejected original, never the accepted one
    page = (await alice.page(f"/calls/{call.id}")).text
    assert "Elena" in page and "Andrei" not in page
    # mark a missed piece by offsets (what the page's selection script posts) ...
    sec = (await _call(demo, "P3-021")).turns[6]
    start = sec.text.index("Morel")
    r = await alice.post(f"/calls/{call.id}/spans", {"turn_id": sec.id, "start": start,
                                                     "end": start + 5, "type": "person"},
                         call_id=call.id)
    assert r.status_code == 303
    # ... and by typing it (the fallback form)
    r = await alice.post(f"/calls/{call.id}/spans", {"turn_id": sec.id,
                                                     "phrase": "Ne venez pas", "type": "other_id"},
                         call_id=call.id)
    assert r.status_code == 303
    r = await alice.post(f"/calls/{call.id}/spans", {"turn_id": sec.id, "phrase": "absent",
                                                     "type": "person"}, call_id=call.id)
    assert r.status_code == 400 and "tel quel" in r.text
    sec_after = (await _call(demo, "P3-021")).turns[6]
    marked = [(s.type, s.source, s.status, s.original) for s in sec_after.spans]
    assert ("person", "reviewer", "accepted", "Morel") in marked
    assert ("other_id", "reviewer", "accepted", "Ne venez pas") in marked
    assert "Morel" not in sec_after.text
    # an overlap with an existing span is refused
    placeholder = next(s for s in sec_after.spans if s.original == "Morel")
    r = await alice.post(f"/calls/{call.id}/spans", {
        "turn_id": sec.id, "start": placeholder.start, "end": placeholder.end + 3,
        "type": "person"}, call_id=call.id)
    assert r.status_code == 400


async def test_action_chips_add_edit_remove(demo: Demo, app: object,
                                            browsers: NewBrowser) -> None:
    alice = await _logged(browsers, app, "alice")
    call = await _call(demo, "P2-005")
    turn = call.turns[4]
    assert turn.actions == []
    url = f"/calls/{call.id}/turns/{turn.id}/actions"
    r = await alice.post(url, {"op": "add", "action": "give_info", "args": "topic = adresse"},
                         call_id=call.id)
    assert r.status_code == 303
    r = await alice.post(url, {"op": "add", "action": "transfer",
                               "args": "to = accueil\nreason = faux numéro"}, call_id=call.id)
    assert r.status_code == 303
    actions = (await _call(demo, "P2-005")).turns[4].actions
    assert actions == [{"action": "give_info", "args": {"topic": "adresse"}, "result": {}},
                       {"action": "transfer", "args": {"to": "accueil",
                                                       "reason": "faux numéro"}, "result": {}}]
    r = await alice.post(url, {"op": "edit", "index": 0, "action": "give_info",
                               "args": "topic = horaires"}, call_id=call.id)
    assert r.status_code == 303
    r = await alice.post(url, {"op": "remove", "index": 1}, call_id=call.id)
    assert r.status_code == 303
    actions = (await _call(demo, "P2-005")).turns[4].actions
    assert actions == [{"action": "give_info", "args": {"topic": "horaires"}, "result": {}}]
    # existing corpus actions keep their recorded result when edited
    booked = await _call(demo, "P1-001")
    sec = booked.turns[6]
    assert sec.actions[0]["action"] == "book"
    r = await alice.post(f"/calls/{booked.id}/turns/{sec.id}/actions", {
        "op": "edit", "index": 0, "action": "book",
        "args": "patient_id = pat-1104\npractitioner = morel\nappointment_type = consultation\n"
                "start = 2026-10-05T17:50"}, call_id=booked.id)
    assert r.status_code == 303
    edited = (await _call(demo, "P1-001")).turns[6].actions[0]
    assert edited["args"]["start"] == "2026-10-05T17:50"
    assert edited["result"] == {"appointment_id": "apt-20113"}
    # not on a patient's turn
    r = await alice.post(f"/calls/{call.id}/turns/{call.turns[1].id}/actions",
                         {"op": "add", "action": "end_call"}, call_id=call.id)
    assert r.status_code == 400


async def test_labels_rating_flags_comment(demo: Demo, app: object,
                                           browsers: NewBrowser) -> None:
    alice = await _logged(browsers, app, "alice")
    call = await _call(demo, "P3-021")
    r = await alice.post(f"/calls/{call.id}/labels", {
        "category": "emergency", "outcome": "emergency_redirected", "rating": "4",
        "flags": ["red_flag_slow", "good_example"], "comment": "  Réflexe 15 immédiat. "},
        call_id=call.id)
    assert r.status_code == 303
    after = await _call(demo, "P3-021")
    assert after.review.rating == 4
    assert after.review.flags == ["red_flag_slow", "good_example"]
    assert after.comment == "Réflexe 15 immédiat."
    assert after.version == call.version + 1
    audit = (await demo.store.list_audit(call_id=call.id, limit=1))[0]
    assert audit.actor == "alice" and audit.after["review_rating"] == 4
    # clearing the rating
    r = await alice.post(f"/calls/{call.id}/labels", {"rating": "", "category": "emergency"},
                         call_id=call.id)
    assert r.status_code == 303
    cleared = await _call(demo, "P3-021")
    assert cleared.review is None or cleared.review.rating is None


async def test_status_draft_corrected_approved_reopened(demo: Demo, app: object,
                                                        browsers: NewBrowser) -> None:
    alice = await _logged(browsers, app, "alice")
    call = await _call(demo, "P2-005")
    assert call.status == "redacted"
    r = await alice.post(f"/calls/{call.id}/status", {"to": "corrected"}, call_id=call.id)
    assert r.status_code == 303
    after = await _call(demo, "P2-005")
    assert after.status == "reviewed" and after.review.reviewer == "alice"
    # a proposed masking not yet checked blocks the approval
    r = await alice.post(f"/calls/{call.id}/status", {"to": "approved"}, call_id=call.id)
    assert r.status_code == 409 and "1 masquage(s) à vérifier" in r.text
    assert (await _call(demo, "P2-005")).status == "reviewed"
    r = await alice.post(f"/calls/{call.id}/spans/accept-all", {}, call_id=call.id)
    assert r.status_code == 303
    assert {s.status for t in (await _call(demo, "P2-005")).turns for s in t.spans} == {
        "accepted"}
    r = await alice.post(f"/calls/{call.id}/status", {"to": "approved"}, call_id=call.id)
    assert r.status_code == 303
    after = await _call(demo, "P2-005")
    assert after.status == "approved" and after.second_reviewer is None
    r = await alice.post(f"/calls/{call.id}/status", {"to": "draft"}, call_id=call.id)
    assert r.status_code == 303
    assert (await _call(demo, "P2-005")).status == "redacted"
    statuses = [(a.before or {}).get("status") for a in
                await demo.store.list_audit(call_id=call.id, action="call.status", limit=5)]
    assert statuses == ["approved", "reviewed", "redacted"]


async def test_second_review_needs_another_person(demo: Demo, browsers: NewBrowser) -> None:
    app = create_app(store=demo.store, settings=ReviewSettings(second_review=True))
    alice = await _logged(browsers, app, "alice")
    bea = await _logged(browsers, app, "bea")
    call = await _call(demo, "P3-021")
    r = await alice.post(f"/calls/{call.id}/spans/accept-all", {}, call_id=call.id)
    assert r.status_code == 303
    r = await alice.post(f"/calls/{call.id}/status", {"to": "approved"}, call_id=call.id)
    assert r.status_code == 409 and "deux relectures" in r.text
    r = await alice.post(f"/calls/{call.id}/status", {"to": "corrected"}, call_id=call.id)
    assert r.status_code == 303
    r = await alice.post(f"/calls/{call.id}/status", {"to": "approved"}, call_id=call.id)
    assert r.status_code == 409 and "autre personne" in r.text
    assert (await _call(demo, "P3-021")).status == "reviewed"
    r = await bea.post(f"/calls/{call.id}/status", {"to": "approved"}, call_id=call.id)
    assert r.status_code == 303
    after = await _call(demo, "P3-021")
    assert after.status == "approved"
    assert after.review.reviewer == "alice" and after.second_reviewer == "bea"
