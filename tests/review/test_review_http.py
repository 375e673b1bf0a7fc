"""The review app over HTTP (httpx on the ASGI app, a real SQLite / PostgreSQL store with
the demo calls): what each role may do, and every kind of bad input refused with nothing
lost or overwritten."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from review_support import PASSWORD, Browser, Demo

from transcripts.review.app import create_app
from transcripts.review.settings import ReviewSettings

pytestmark = pytest.mark.timeout(300)

NewBrowser = Callable[[object], Browser]


async def _logged(browsers: NewBrowser, app: object, name: str) -> Browser:
    b = browsers(app)
    r = await b.login(name)
    assert r.status_code == 303, r.text
    return b


async def _turn(demo: Demo, external: str, idx: int) -> object:
    call = await demo.store.get_call(demo.ids[external], can_see_pii=True)
    assert call is not None
    return call.turns[idx]


# -- authentication ---------------------------------------------------------------------

async def test_unauthenticated_get_goes_to_login_and_post_is_refused(
        demo: Demo, app: object, browsers: NewBrowser) -> None:
    b = browsers(app)
    r = await b.page("/calls?state=draft")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fcalls%3Fstate%3Ddraft"
    call_id = demo.ids["P3-021"]
    before = await demo.store.get_call(call_id, can_see_pii=False)
    r = await b.post(f"/calls/{call_id}/labels", {"version": before.version, "rating": "2",
                                                 "comment": "mon commentaire"}, csrf=False)
    assert r.status_code == 401
    assert "Session expirée" in r.text and "mon commentaire" in r.text  # typed text shown back
    after = await demo.store.get_call(call_id, can_see_pii=False)
    assert after.version == before.version and after.review is None
    assert (await b.page(f"/calls/{call_id}/audio")).status_code == 303


async def test_login_sets_strict_httponly_cookie_and_logout_ends_the_session(
        demo: Demo, app: object, browsers: NewBrowser) -> None:
    b = browsers(app)
    r = await b.login("alice")
    assert r.status_code == 303 and r.headers["location"] == "/calls"
    cookie = next(c for c in r.headers.get_list("set-cookie") if "twin_review_session=" in c)
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http on loopback
    assert (await b.page("/calls")).status_code == 200
    r = await b.post("/logout", {})
    assert r.status_code == 303
    assert (await b.page("/calls")).status_code == 303
    actions = [a.action for a in await demo.store.list_audit(limit=5)]
    assert "logout" in actions and "login" in actions


async def test_secure_cookie_when_configured(demo: Demo, browsers: NewBrowser) -> None:
    app = create_app(store=demo.store, settings=ReviewSettings(secure_cookies=True))
    b = browsers(app)
    page = await b.http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    # the login cookie is Secure too, so a plain-http client does not send it back: add it
    b.http.cookies.set("twin_review_login", token.group(1))
    r = await b.http.post("/login", data={"csrf_token": token.group(1), "username": "alice",
                                          "password": PASSWORD})
    assert r.status_code == 303
    cookie = next(c for c in r.headers.get_list("set-cookie") if "twin_review_session=" in c)
    assert "Secure" in cookie


async def test_wrong_password_then_rate_limited_even_with_the_right_one(
        demo: Demo, app: object, browsers: NewBrowser) -> None:
    b = browsers(app)
    for _ in range(5):
        r = await b.login("alice", "not the password")
        assert r.status_code == 401 and "incorrect" in r.text
    r = await b.login("alice", PASSWORD)
    assert r.status_code == 429 and "Trop d&#39;essais" in r.text
    assert int(r.headers["retry-after"]) > 0
    # another account from the same address is limited too (per-address count)
    assert (await b.login("bea")).status_code == 429
    failed = [a for a in await demo.store.list_audit(action="login.failed", limit=20)]
    assert len(failed) == 5


async def test_login_form_without_its_csrf_cookie_is_refused(
        demo: Demo, app: object, browsers: NewBrowser) -> None:
    b = browsers(app)
    r = await b.http.post("/login", data={"csrf_token": "forged", "username": "alice",
                                          "password": PASSWORD})
    assert r.status_code == 403 and "Formulaire refusé" in r.text


async def test_disabled_account_loses_its_session(demo: Demo, app: object,
                                                  browsers: NewBrowser) -> None:
    alice = await _logged(browsers, app, "alice")
    admin = await _logged(browsers, app, "ada")
    users = await admin.page("/users")
    assert users.status_code == 200 and "alice" in users.text
    from transcripts.review.auth import Accounts

    ids = {u.username: u.id for u in await Accounts(store=demo.store).list_users()}
    r = await admin.post(f"/users/{ids['alice']}/disable", {})
    assert r.status_code == 303
    assert (await alice.page("/calls")).status_code == 303
    assert (await browsers(app).login("alice")).status_code == 401


# -- roles ------------------------------------------------------------------------------

async def test_reviewer_sees_placeholders_admin_sees_originals(
        demo: Demo, app: object, browsers: NewBrowser) -> None:
    call_id = demo.ids["P1-001"]
    reviewer = await _logged(browsers, app, "alice")
    page = (await reviewer.page(f"/calls/{call_id}")).text
    assert "[NOM_1]" in page and "Jacquet" not in page
    assert "dix-sept février" not in page
    admin = await _logged(browsers, app, "ada")
    page = (await admin.page(f"/calls/{call_id}")).text
    assert "Rémi Jacquet" in page and "dix-sept février quatre-vingt-onze" in page


@pytest.mark.parametrize(("user", "path"), [
    ("alice", "/audit"), ("alice", "/users"), ("tom", "/users")])
async def test_pages_refused_by_role(demo: Demo, app: object, browsers: NewBrowser, user: str,
                                     path: str) -> None:
    b = await _logged(browsers, app, user)
    r = await b.page(path)
    assert r.status_code == 403 and "Action non autorisée" in r.text


async def test_trainer_may_label_but_not_rewrite_transcripts(
        demo: Demo, app: object, browsers: NewBrowser) -> None:
    call_id = demo.ids["P3-021"]
    tom = await _logged(browsers, app, "tom")
    page = (await tom.page(f"/calls/{call_id}")).text
    assert "Corriger ce tour" not in page and "✓ masquer" not in page
    turn = await _turn(demo, "P3-021", 2)
    before = await demo.store.get_call(call_id, can_see_pii=False)
    r = await tom.post(f"/calls/{call_id}/turns/{turn.id}", {"text": "réécrit", "op": "save"},
                       call_id=call_id)
    assert r.status_code == 403
    span = (await _turn(demo, "P3-021", 1)).spans[0]
    r = await tom.post(f"/calls/{call_id}/spans/{span.id}", {"status": "rejected"},
                       call_id=call_id)
    assert r.status_code == 403
    after = await demo.store.get_call(call_id, can_see_pii=False)
    assert after.version == before.version
    r = await tom.post(f"/calls/{call_id}/labels", {"rating": "5", "flags": "good_example",
                                                    "category": "emergency"}, call_id=call_id)
    assert r.status_code == 303
    after = await demo.store.get_call(call_id, can_see_pii=False)
    assert after.review.rating == 5 and after.review.flags == ["good_example"]


async def test_reviewer_cannot_add_accounts(demo: Demo, app: object,
                                            browsers: NewBrowser) -> None:
    alice = await _logged(browsers, app, "alice")
    r = await alice.post("/users", {"username": "mallory", "password": "whatever123",
                                    "role": "admin"})
    assert r.status_code == 403
    admin = await _logged(browsers, app, "ada")
    r = await admin.post("/users", {"username": "zoe", "password": "whatever123",
                                    "role": "trainer"})
    assert r.status_code == 303
    assert "zoe" in (await admin.page("/users")).text
    r = await admin.post("/users", {"username": "x", "password": "short", "role": "admin"})
    assert r.status_code == 400 and "Compte non créé" in r.text


# -- forged, stale and malformed posts ---------------------------------------------------

async def test_forged_post_without_or_with_foreign_csrf_token_is_refused(
        demo: Demo, app: object, browsers: NewBrowser) -> None:
    call_id = demo.ids["P3-021"]
    alice = await _logged(browsers, app, "alice")
    bea = await _logged(browsers, app, "bea")
    version = await alice.version(call_id)
    r = await alice.post(f"/calls/{call_id}/labels", {"rating": "1", "version": version},
                         csrf=False)
    assert r.status_code == 403 and "Formulaire refusé" in r.text
    r = await alice.post(f"/calls/{call_id}/labels", {"rating": "1", "version": version,
                                                      "csrf_token": bea.csrf})
    assert r.status_code == 403
    after = await demo.store.get_call(call_id, can_see_pii=False)
    assert after.version == version and after.review is None


async def test_stale_edit_after_someone_else_approved_is_refused(
        demo: Demo, app: object, browsers: NewBrowser) -> None:
    call_id = demo.ids["P1-001"]
    alice = await _logged(browsers, app, "alice")
    bea = await _logged(browsers, app, "bea")
    stale_version = await alice.version(call_id)  # alice opens the page
    r = await bea.post(f"/calls/{call_id}/status", {"to": "approved"}, call_id=call_id)
    assert r.status_code == 303
    turn = await _turn(demo, "P1-001", 2)
    r = await alice.post(f"/calls/{call_id}/turns/{turn.id}",
                         {"text": "Ma correction soigneuse.", "op": "save",
                          "version": stale_version})
    assert r.status_code == 409
    assert "modifié par bea" in r.text and "approuvé" in r.text, r.text
    assert "Ma correction soigneuse." in r.text  # shown back, not lost
    call = await demo.store.get_call(call_id, can_see_pii=False)
    assert call.status == "approved" and call.second_reviewer == "bea"
    assert call.review.reviewer == "staff-lead"  # the corpus's reviewer corrected it
    assert (await _turn(demo, "P1-001", 2)).text == turn.text
    # with the current version the approved call is still locked until reopened
    r = await alice.post(f"/calls/{call_id}/turns/{turn.id}",
                         {"text": "Ma correction soigneuse.", "op": "save"}, call_id=call_id)
    assert r.status_code == 409 and "Rouvrez" in r.text


async def test_oversized_and_malformed_posts(demo: Demo, app: object,
                                             browsers: NewBrowser) -> None:
    call_id = demo.ids["P3-021"]
    alice = await _logged(browsers, app, "alice")
    version = await alice.version(call_id)
    turn = await _turn(demo, "P3-021", 2)
    url = f"/calls/{call_id}/turns/{turn.id}"
    # a body over the limit: 413 before anything is parsed
    r = await alice.post(url, {"text": "x" * 400_000, "op": "save", "version": version})
    assert r.status_code == 413 and "trop volumineux" in r.text
    # a text over the per-field limit: 413 with the limit named
    r = await alice.post(url, {"text": "y" * 5000, "op": "save", "version": version})
    assert r.status_code == 413 and "4000" in r.text
    # not a form
    r = await alice.http.post(url, json={"text": "hello"})
    assert r.status_code == 400 and "formulaires" in r.text
    # a file upload
    r = await alice.http.post(url, data={"csrf_token": alice.csrf, "version": str(version)},
                              files={"text": ("a.txt", b"hello", "text/plain")})
    assert r.status_code == 400
    # broken multipart
    r = await alice.http.post(url, content=b"--zz\r\nnot a part",
                              headers={"content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code in (400, 403)
    # a version that is not a number, an unknown speaker, an unknown action
    r = await alice.post(url, {"text": "ok", "op": "save", "version": "abc"})
    assert r.status_code == 400
    r = await alice.post(url, {"text": "ok", "op": "save", "speaker": "robot",
                               "version": version})
    assert r.status_code == 400 and "Locuteur" in r.text
    r = await alice.post(f"{url}/actions", {"op": "add", "action": "launch_rocket",
                                            "version": version})
    assert r.status_code == 400
    r = await alice.post(f"{url}/actions", {"op": "add", "action": "book",
                                            "args": "colour = blue", "version": version})
    assert r.status_code == 400 and "colour" in r.text
    r = await alice.post(f"/calls/{call_id}/labels", {"rating": "9", "version": version})
    assert r.status_code == 400
    r = await alice.page("/calls/99999")
    assert r.status_code == 404
    r = await alice.page("/calls/not-a-number")
    assert r.status_code == 400
    r = await alice.page("/calls?date_from=yesterday")
    assert r.status_code == 400 and "AAAA-MM-JJ" in r.text
    call = await demo.store.get_call(call_id, can_see_pii=False)
    assert call.version == version  # nothing changed


async def test_missing_audio_file_page_still_works(demo: Demo, app: object,
                                                   browsers: NewBrowser) -> None:
    call_id = demo.ids["P2-005"]
    (demo.audio_dir / "P2-005.flac").unlink()
    alice = await _logged(browsers, app, "alice")
    r = await alice.page(f"/calls/{call_id}")
    assert r.status_code == 200
    assert "Fichier audio introuvable" in r.text and "<audio" not in r.text
    assert "Corriger ce tour" in r.text
    r = await alice.page(f"/calls/{call_id}/audio")
    assert r.status_code == 404 and "introuvable" in r.text


async def test_audio_is_served_with_ranges(demo: Demo, app: object,
                                           browsers: NewBrowser) -> None:
    alice = await _logged(browsers, app, "alice")
    r = await alice.http.get(f"/calls/{demo.ids['P3-021']}/audio",
                             headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and len(r.content) == 100
    assert r.headers["content-type"] == "audio/flac"
    assert r.content == (demo.audio_dir / "P3-021.flac").read_bytes()[100:200]


async def test_security_headers(demo: Demo, app: object, browsers: NewBrowser) -> None:
    r = await browsers(app).page("/login")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
