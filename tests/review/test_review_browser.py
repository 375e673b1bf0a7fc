"""The review app in real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium) against a real uvicorn server on 127.0.0.1: a reviewer logs in, plays a turn,
corrects it, accepts a PII span, marks a missed one by selecting it, adds an action chip,
rates and approves the call with the keyboard; the database is checked after each step.
Other sessions check what each role is refused. Screenshots of the list, call and
dashboard pages (desktop and phone width) go to docs/screenshots/."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from review_support import PASSWORD, ROOT, make_demo

from transcripts.review.app import create_app
from transcripts.review.settings import ReviewSettings
from transcripts.store import TranscriptStore

pytestmark = pytest.mark.timeout(600)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = (1280, 900)
PHONE = (390, 844)
WAIT_S = 60  # generous ceiling on a busy 2-core machine; waits end on real signals

if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("chromium and chromium-driver are not installed (scripts/browser.sh installs "
                "them as root)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """uvicorn serving the app on a free loopback port, in a thread of its own."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + WAIT_S
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=WAIT_S)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Server, str, dict[str, int]]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'review.db'}"

    async def setup() -> dict[str, int]:
        demo = await make_demo(url, tmp_path)
        await demo.store.dispose()
        return demo.ids

    ids = asyncio.run(setup())
    store = TranscriptStore(url=url)
    server = Server(create_app(store=store, settings=ReviewSettings(
        practice_name="Cabinet médical des Tilleuls (démo)")))
    server.start()
    yield server, url, ids
    server.stop()


def _db(url: str, call_id: int) -> Any:
    async def read() -> Any:
        store = TranscriptStore(url=url)
        try:
            return await store.get_call(call_id, can_see_pii=True)
        finally:
            await store.dispose()

    return asyncio.run(read())


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
                 "--mute-audio", "--lang=fr-FR", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(*DESKTOP)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException

    # a page replaced by the next one mid-check: look again
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message=what)


def _login(driver: Any, base: str, username: str) -> None:
    driver.get(base + "/login")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _wait(driver, lambda d: d.current_url.endswith("/calls"), "login did not reach the list")


def _click(driver: Any, element: Any) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _flash(driver: Any, text: str) -> None:
    _wait(driver, lambda d: any(text in e.text for e in d.find_elements(By.CSS_SELECTOR,
                                                                          ".flash")),
          f"no confirmation {text!r}")


def _shots(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        driver.set_window_size(*size)
        driver.refresh()  # a GET page: laid out as a phone or a desktop would first show it
        _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete",
              "page not loaded")
        width = driver.execute_script("return document.documentElement.scrollWidth")
        view = driver.execute_script("return window.innerWidth")
        assert width <= view + 1, f"{name} scrolls sideways at {label} width ({width} > {view})"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
        driver.set_window_size(size[0], min(max(height, size[1]), 3000) + chrome)  # whole page
        driver.save_screenshot(str(SCREENSHOTS / f"{name}-{label}.png"))
    driver.set_window_size(*DESKTOP)


def test_reviewer_listens_corrects_redacts_labels_and_approves(site: Any, browser: Any) -> None:
    server, url, ids = site
    call_id = ids["P3-021"]
    _login(browser, server.url, "alice")
    assert "P3-021" in browser.page_source
    _shots(browser, "list")

    browser.get(f"{server.url}/calls/{call_id}")
    _wait(browser, lambda d: d.execute_script(
        "return document.getElementById('player').readyState") >= 1, "audio metadata not loaded")
    # play a turn: the audio moves and the turn is highlighted
    start = float(browser.find_element(By.ID, "turn-2").get_attribute("data-start"))
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#turn-2 button.play"))
    _wait(browser, lambda d: d.execute_script(
        "return document.getElementById('player').currentTime") > start + 0.3,
        "the audio did not play from the turn")
    _wait(browser, lambda d: "playing" in d.find_element(By.ID, "turn-2").get_attribute("class"),
          "the playing turn is not highlighted")
    # speed control
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#speed option[value='1.5']"))
    _wait(browser, lambda d: d.execute_script(
        "return document.getElementById('player').playbackRate") == 1.5, "speed not applied")
    # keyboard: k pauses, j goes to the next turn
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("k")
    _wait(browser, lambda d: d.execute_script("return document.getElementById('player').paused"),
          "k did not pause")
    body.send_keys("j")
    _wait(browser, lambda d: "playing" in d.find_element(By.ID, "turn-3").get_attribute("class"),
          "j did not move to the next turn")
    body.send_keys("k")

    # correct turn 5 (the transcript missed the caller's name at the end)
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#turn-5 details.edit summary"))
    area = browser.find_element(By.CSS_SELECTOR, "#turn-5 textarea[name=text]")
    area.clear()
    area.send_keys("Yes, yes, OK. Quinze. J'appelle maintenant, c'est Popescu.")
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#turn-5 button[value=save]"))
    _flash(browser, "Tour corrigé")
    call = _db(url, call_id)
    assert call.turns[5].text == "Yes, yes, OK. Quinze. J'appelle maintenant, c'est Popescu."

    # accept the first proposed PII span of turn 1
    first_span = call.turns[1].spans[0]
    assert first_span.status == "proposed"
    _click(browser, browser.find_element(
        By.CSS_SELECTOR, f"li[data-span-id='{first_span.id}'] button.ok"))
    _flash(browser, "Masquage mis à jour")
    assert _db(url, call_id).turns[1].spans[0].status == "accepted"

    # mark the name that the correction revealed by selecting it in the text
    browser.execute_script("""
        const seg = [...document.querySelectorAll('#turn-5 .seg')]
            .find(s => s.textContent.includes('Popescu'));
        const node = seg.firstChild, at = node.textContent.indexOf('Popescu');
        const range = document.createRange();
        range.setStart(node, at); range.setEnd(node, at + 'Popescu'.length);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        seg.closest('.turn-text').dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
    """)
    popup = _wait(browser, lambda d: d.find_element(By.ID, "missed-popup") if
                  d.find_element(By.ID, "missed-popup").is_displayed() else False,
                  "the selection popup did not open")
    assert "Popescu" in popup.text
    popup.find_element(By.CSS_SELECTOR, "select[name=type] option[value=person]").click()
    _click(browser, popup.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    _flash(browser, "Donnée personnelle masquée")
    turn5 = _db(url, call_id).turns[5]
    assert "Popescu" not in turn5.text
    assert [(s.type, s.source, s.status, s.original) for s in turn5.spans] == [
        ("person", "reviewer", "accepted", "Popescu")]

    # add an action chip to the secretary's turn 2
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#turn-2 details.chip.add summary"))
    _click(browser, browser.find_element(By.CSS_SELECTOR,
                         "#turn-2 details.chip.add option[value=give_info]"))
    browser.find_element(By.CSS_SELECTOR, "#turn-2 details.chip.add textarea").send_keys(
        "topic = samu")
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#turn-2 details.chip.add button[value=add]"))
    _flash(browser, "Actions du tour mises à jour")
    actions = _db(url, call_id).turns[2].actions
    assert actions[-1] == {"action": "give_info", "args": {"topic": "samu"}, "result": {}}
    assert actions[0]["action"] == "emergency"
    assert "give_info" in browser.find_element(By.CSS_SELECTOR, "#turn-2 .chips").text or \
        "renseigner" in browser.find_element(By.CSS_SELECTOR, "#turn-2 .chips").text

    # the other proposals were read: accept them all
    _click(browser, browser.find_element(By.CSS_SELECTOR,
                                         "form[action$='/spans/accept-all'] button"))
    _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "mark.pii-proposed"),
          "proposed spans are still shown")
    assert {s.status for t in _db(url, call_id).turns for s in t.spans} == {"accepted"}

    # rate, flag, then approve with the keyboard shortcut
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#labels-form input[name=rating][value='4']"))
    _click(browser, browser.find_element(By.CSS_SELECTOR,
                         "#labels-form input[name=flags][value=good_example]"))
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#labels-form button[type=submit]"))
    _flash(browser, "Évaluation enregistrée")
    browser.find_element(By.TAG_NAME, "body").send_keys("a")
    _flash(browser, "Appel approuvé")
    call = _db(url, call_id)
    assert call.status == "approved"
    assert call.review.rating == 4 and call.review.flags == ["good_example"]
    assert call.review.reviewer == "alice"
    assert browser.find_element(By.ID, "call-state").text == "approuvé"
    _shots(browser, "call")

    browser.get(f"{server.url}/dashboard")
    assert "Tableau de bord" in browser.page_source
    _shots(browser, "dashboard")


def test_each_role_is_refused_what_it_may_not_do(site: Any, browser: Any) -> None:
    server, _url, ids = site
    call_id = ids["P3-021"]
    # reviewer: redacted text only, no audit log, no accounts
    _login(browser, server.url, "alice")
    browser.get(f"{server.url}/calls/{call_id}")
    page = browser.page_source
    assert "[NOM_1]" in page and "Andrei" not in page
    assert not browser.find_elements(By.LINK_TEXT, "Journal")
    for path in ("/audit", "/users"):
        browser.get(server.url + path)
        assert "Action non autorisée" in browser.find_element(By.TAG_NAME, "h1").text
    browser.get(f"{server.url}/calls")
    _click(browser, browser.find_element(By.CSS_SELECTOR, "form.logout button"))
    _wait(browser, lambda d: "/login" in d.current_url, "logout did not end on the login page")

    # trainer: labels and approves, but no transcript or redaction edits, no accounts
    _login(browser, server.url, "tom")
    browser.get(f"{server.url}/calls/{call_id}")
    assert browser.find_elements(By.ID, "labels-form")
    assert not browser.find_elements(By.CSS_SELECTOR, "details.edit")
    assert not browser.find_elements(By.CSS_SELECTOR, "button.ok")
    browser.get(f"{server.url}/users")
    assert "Action non autorisée" in browser.find_element(By.TAG_NAME, "h1").text
    browser.get(f"{server.url}/audit")
    assert "Journal des modifications" in browser.page_source
    browser.delete_all_cookies()

    # admin: sees the originals behind the placeholders, manages accounts
    _login(browser, server.url, "ada")
    browser.get(f"{server.url}/calls/{call_id}")
    assert "Andrei Popescu" in browser.page_source
    browser.get(f"{server.url}/users")
    assert "Nouveau compte" in browser.page_source
    browser.get(f"{server.url}/audit")
    assert "login" in browser.page_source
