"""What a real Asterisk showed about the shipped deployment (issue 8), checked by parsing.

* the Asterisk version the image builds has every module the Dockerfile enables and
  the dialplan uses (``func_uuid`` first shipped in 20.12.0 / 22.2.0: a 20.10.0 build
  fails in menuselect and ``UUID()`` is then missing);
* opening hours are checked in the practice's time zone, the containers run on it;
* option names Asterisk would silently ignore (``leaveempty``), a voicemail that drops
  a message after a pause, an ``asterisk.conf`` template instead of a section;
* the dialplan never shows an empty or English reason to the secretaries.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path

import pytest
import yaml
from test_docker_configs import AST, DOCKER, ROOT, compose, dockerfile_instructions, section

# Asterisk modules (menuselect names) -> the first release of each branch that has them.
# A branch newer than every listed one has the module; an older or unlisted branch does
# not (add it here, from the Asterisk ChangeLog, before enabling a module).
MODULE_SINCE: dict[str, dict[int, tuple[int, int, int]]] = {
    "func_uuid": {20: (20, 12, 0), 22: (22, 2, 0), 23: (23, 0, 0)},
    "app_audiosocket": {18: (18, 0, 0)},
    "res_audiosocket": {18: (18, 0, 0)},
    "chan_audiosocket": {18: (18, 0, 0)},
    "app_queue": {1: (1, 0, 0)},
    "app_voicemail": {1: (1, 0, 0)},
    "CORE-SOUNDS-FR-ULAW": {1: (1, 0, 0)},
    "MOH-OPSOUND-ULAW": {1: (1, 0, 0)},
}
# Dialplan applications/functions -> the module that provides them.
PROVIDED_BY = {"UUID": "func_uuid", "AudioSocket": "app_audiosocket", "Queue": "app_queue",
               "VoiceMail": "app_voicemail", "VoiceMailMain": "app_voicemail"}


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text.strip().strip('"'))
    assert m, f"not an Asterisk release number: {text!r}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def missing_modules(version: tuple[int, int, int], modules: list[str]) -> list[str]:
    """The modules that ``version`` does not have (unknown ones count as missing)."""
    missing = []
    for mod in modules:
        since = MODULE_SINCE.get(mod)
        if since is None:
            missing.append(f"{mod} (not in MODULE_SINCE)")
            continue
        major = version[0]
        if major in since:
            ok = version >= since[major]
        else:
            ok = major > max(since)
        if not ok:
            missing.append(mod)
    return missing


def pinned_versions() -> list[tuple[int, int, int]]:
    ins = dockerfile_instructions(AST / "Dockerfile")
    args = [r for w, r in ins if w == "ARG" and r.startswith("ASTERISK_VERSION=")]
    assert len(args) == 1
    versions = [parse_version(args[0].split("=", 1)[1])]
    build_args = compose()["services"]["asterisk"]["build"].get("args", {})
    if "ASTERISK_VERSION" in build_args:  # compose overrides the Dockerfile's default
        versions.append(parse_version(str(build_args["ASTERISK_VERSION"])))
    return versions


def enabled_modules() -> list[str]:
    runs = " ".join(r for w, r in dockerfile_instructions(AST / "Dockerfile") if w == "RUN")
    return re.findall(r"--enable\s+([\w-]+)", runs)


def test_the_module_table_catches_the_version_that_broke() -> None:
    assert missing_modules((20, 10, 0), ["func_uuid"]) == ["func_uuid"]
    assert missing_modules((21, 5, 0), ["func_uuid"]) == ["func_uuid"]
    assert missing_modules((20, 12, 0), ["func_uuid"]) == []
    assert missing_modules((22, 1, 0), ["func_uuid"]) == ["func_uuid"]
    assert missing_modules((22, 10, 1), ["func_uuid", "app_audiosocket"]) == []
    assert missing_modules((22, 10, 1), ["func_mystery"]) == ["func_mystery (not in MODULE_SINCE)"]


def test_pinned_asterisk_has_every_module_the_image_enables() -> None:
    modules = enabled_modules()
    assert "func_uuid" in modules and "app_audiosocket" in modules
    versions = pinned_versions()
    assert len(set(versions)) == 1, f"Dockerfile and compose.yaml pin different versions: {versions}"
    for v in versions:
        assert missing_modules(v, modules) == [], f"Asterisk {v} lacks modules"


def test_dialplan_uses_only_what_the_image_provides() -> None:
    text = (AST / "extensions.conf").read_text()
    code = "\n".join(re.sub(r";.*$", "", line) for line in text.splitlines())
    used = set(re.findall(r"\b([A-Z]\w*)\(", code)) & set(PROVIDED_BY)
    assert {"UUID", "AudioSocket", "Queue", "VoiceMail"} <= used
    enabled = set(enabled_modules())
    for name in used:
        assert PROVIDED_BY[name] in enabled, f"{name}() needs {PROVIDED_BY[name]}"


def practice_timezone() -> str:
    from twin.serve_config import load_serve_config

    cfg = load_serve_config(DOCKER / "twin" / "serve.toml")
    profile = cfg.voice.get("profile") or ROOT / "knowledge" / "practices" / "demo.yaml"
    data = yaml.safe_load(Path(profile).read_text(encoding="utf-8"))
    return str(data["practice"]["timezone"])


def test_opening_hours_are_checked_in_the_practice_time_zone() -> None:
    tz = practice_timezone()
    zoneinfo.ZoneInfo(tz)  # a real zone name
    assert section(AST / "extensions.conf", "globals")["TWIN_TZ"] == [tz]
    text = (AST / "extensions.conf").read_text()
    calls = re.findall(r"GotoIfTime\(([^?]*)\?", text)
    assert calls, "no GotoIfTime in the dialplan"
    for args in calls:
        fields = args.split(",")
        # times, weekdays, mdays, months, timezone: without the 5th field Asterisk uses
        # the container's /etc/localtime (UTC), 1-2 h off French hours
        assert len(fields) == 5 and fields[4] == "${TWIN_TZ}", args


def test_containers_run_on_the_practice_time_zone() -> None:
    tz = practice_timezone()
    services = compose()["services"]
    for name in ("asterisk", "twin"):
        assert services[name]["environment"]["TZ"] == f"${{TZ:-{tz}}}", name
    example = dict(line.split("=", 1) for line in (DOCKER / "env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert example["TZ"] == tz
    for dockerfile in (AST / "Dockerfile", DOCKER / "Dockerfile"):
        ins = dockerfile_instructions(dockerfile)
        last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
        runtime_runs = " ".join(r for w, r in ins[last_from:] if w == "RUN")
        assert re.search(r"\btzdata\b", runtime_runs), f"{dockerfile}: zone data missing"
    env = " ".join(r for w, r in dockerfile_instructions(AST / "Dockerfile") if w == "ENV")
    assert f"TZ={tz}" in env


# queues.conf options of a queue, from Asterisk's queues.conf.sample (app_queue.c).
QUEUE_OPTIONS = {
    "musicclass", "announce", "strategy", "servicelevel", "context", "penaltymemberslimit",
    "timeout", "retry", "timeoutpriority", "weight", "wrapuptime", "autofill", "autopause",
    "autopausedelay", "autopausebusy", "autopauseunavail", "maxlen", "announce-frequency",
    "min-announce-frequency", "announce-holdtime", "announce-position",
    "announce-position-limit", "announce-position-only-up", "announce-round-seconds",
    "announce-to-first-user", "periodic-announce", "periodic-announce-frequency",
    "random-periodic-announce", "relative-periodic-announce", "queue-youarenext",
    "queue-thereare", "queue-callswaiting", "queue-holdtime", "queue-minutes",
    "queue-seconds", "queue-thankyou", "queue-reporthold", "monitor-format",
    "membermacro", "membergosub", "joinempty", "leavewhenempty", "eventwhencalled",
    "eventmemberstatus", "reportholdtime", "ringinuse", "memberdelay", "timeoutrestart",
    "defaultrule", "member", "setinterfacevar", "setqueuevar", "setqueueentryvar",
    "log-restricted-caller-id",
}
QUEUE_GENERAL = {"persistentmembers", "autofill", "monitor-type", "updatecdr",
                 "shared_lastcall", "negative_penalty_invalidates", "log_membername_as_agent",
                 "force_longest_waiting_caller"}


def test_queue_options_are_ones_asterisk_knows() -> None:
    from test_docker_configs import parse_conf

    for name, items in parse_conf(AST / "queues.conf"):
        known = QUEUE_GENERAL if name == "general" else QUEUE_OPTIONS
        for key, _value in items:
            assert key in known, f"queues.conf [{name}] {key}: Asterisk ignores this option"
    queue = section(AST / "queues.conf", "secretariat")
    # everyone logs out while callers wait: they leave the queue for the message
    assert queue["leavewhenempty"] and queue["joinempty"]


def test_voicemail_keeps_a_message_after_a_pause() -> None:
    general = section(AST / "voicemail.conf", "general")
    maxsilence = int(general["maxsilence"][0])
    minsecs = int(general["minsecs"][0])
    # Asterisk stops at maxsilence seconds of silence and drops the message when what is
    # left (minus that silence) is shorter than minsecs: a 5 s pause after the beep lost it.
    assert maxsilence >= 10
    assert minsecs <= 1
    assert int(general["maxsecs"][0]) > maxsilence


def test_asterisk_conf_directories_is_a_real_section() -> None:
    text = (AST / "asterisk.conf").read_text()
    headers = re.findall(r"^\s*\[([^\]]+)\](\([^)]*\))?", text, re.M)
    assert ("directories", "") in headers, headers  # "(!)" would make it a template
    assert section(AST / "asterisk.conf", "directories")["astspooldir"] == ["/var/spool/asterisk"]


def test_dialplan_never_shows_an_empty_or_english_reason() -> None:
    from test_docker_configs import dialplan

    dp = dialplan()
    inbound = "\n".join(v for _, v in dp["twin-inbound"])
    after = inbound[inbound.index("TryExec(AudioSocket("):]
    # the app is down/starting/busy or AMI is down: a default reason and French label
    assert "Set(TWIN_HANDOFF_REASON=assistant_unreachable)" in after
    label = re.search(r"Set\(TWIN_HANDOFF_LABEL=([^)]*)\)", after)
    assert label and label.group(1) == "Assistant indisponible"
    handoff = "\n".join(v for _, v in dp["twin-handoff"])
    name = re.search(r"Set\(CALLERID\(name\)=(.*)\)$", handoff, re.M)
    assert name and name.group(1).startswith("${TWIN_HANDOFF_LABEL}")
    assert "${TWIN_HANDOFF_REASON}" not in name.group(1)
    assert "CDR(userfield)=${TWIN_HANDOFF_LABEL}" in handoff


@pytest.mark.parametrize("conf", sorted(p.name for p in AST.glob("*.conf")))
def test_no_template_where_a_section_is_meant(conf: str) -> None:
    """Templates ``(!)`` are only useful when something inherits from them."""
    text = (AST / conf).read_text()
    for m in re.finditer(r"^\s*\[([^\]]+)\]\(!\)", text, re.M):
        assert re.search(rf"^\s*\[[^\]]+\]\([^)]*\b{re.escape(m.group(1))}\b", text, re.M), (
            f"{conf}: [{m.group(1)}](!) is a template nothing uses")
