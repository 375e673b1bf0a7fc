"""Deployment configs, checked as far as possible without a Docker engine or Asterisk.

* ``docker-compose config`` (Debian's docker-compose 1.29, installed by
  ``scripts/services.sh``) validates ``docker/compose.yaml`` against the Compose schema;
* every file the compose file mounts or builds from exists;
* both Dockerfiles are parsed: known instructions, FROM first, COPY sources exist in
  the build context and are not excluded by the .dockerignore, JSON exec forms;
* the Asterisk configs are parsed (sections, ``key = value`` / ``key => value``) and
  cross-checked: dialplan targets exist, AudioSocket runs after Answer with the UUID
  variable the app maps, the app's serve.toml matches the ports, hosts, AMI user and
  secret, the queue and mailbox exist, RTP range equals the published ports, and the
  AMI user may read the events and send the actions the app uses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
AST = DOCKER / "asterisk"
ENV = {"TWIN_AMI_SECRET": "test-secret", "POSTGRES_PASSWORD": "test-pg"}


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def parse_conf(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """Asterisk config: [(section, [(key, value)])]; templates/inheritance kept in the name."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = re.sub(r"(?<!\\);.*$", "", raw).strip()
        if not line:
            continue
        m = re.fullmatch(r"\[([^\]]+)\](\([^)]*\))?", line)
        if m:
            sections.append((m.group(1), []))
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*=>?\s*(.*)", line)
        if not m or not sections:
            # `same => n,...` continuation lines
            m2 = re.fullmatch(r"same\s*=>\s*(.*)", line)
            assert m2 and sections, f"{path.name}:{n}: cannot parse {raw!r}"
            sections[-1][1].append(("same", m2.group(1)))
            continue
        sections[-1][1].append((m.group(1), m.group(2).strip()))
    return sections


def section(path: Path, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sec, items in parse_conf(path):
        if sec == name:
            for k, v in items:
                out.setdefault(k, []).append(v)
    assert out, f"{path.name}: no [{name}] section"
    return out


def test_compose_validates_with_docker_compose() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose not installed (scripts/services.sh installs it: "
                    "apt-get install docker-compose)")
    env = {**os.environ, **ENV}
    res = subprocess.run([exe, "-f", str(DOCKER / "compose.yaml"), "config"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    resolved = yaml.safe_load(res.stdout)
    assert set(resolved["services"]) == {"asterisk", "twin", "ollama", "ollama-pull", "db"}
    assert resolved["services"]["twin"]["environment"]["TWIN_AMI_SECRET"] == "test-secret"
    # a missing secret is refused with a clear message
    env.pop("TWIN_AMI_SECRET")
    res = subprocess.run([exe, "-f", str(DOCKER / "compose.yaml"), "config", "-q"], env=env,
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert res.returncode != 0 and "set TWIN_AMI_SECRET" in res.stderr


def test_every_mounted_and_built_file_exists() -> None:
    c = compose()
    checked = 0
    for name, svc in c["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith((".", "/")):
                assert (DOCKER / src).resolve().exists(), f"{name}: mounts missing {src}"
                checked += 1
        build = svc.get("build")
        if build:
            ctx = (DOCKER / build["context"]).resolve()
            assert ctx.is_dir(), f"{name}: build context {ctx} missing"
            assert (ctx / build.get("dockerfile", "Dockerfile")).is_file()
    assert checked >= 10


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = path.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        word, _, rest = s.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


KNOWN = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
         "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def ignored(patterns: list[str], rel: str) -> bool:
    import fnmatch

    return any(fnmatch.fnmatch(rel, p) or rel == p or rel.startswith(p.rstrip("/") + "/")
               for p in patterns)


@pytest.mark.parametrize(("dockerfile", "context"), [
    (DOCKER / "Dockerfile", ROOT), (AST / "Dockerfile", AST)])
def test_dockerfiles_parse_and_copy_existing_files(dockerfile: Path, context: Path) -> None:
    ins = dockerfile_instructions(dockerfile)
    assert all(w in KNOWN for w, _ in ins), [w for w, _ in ins if w not in KNOWN]
    assert next(w for w, _ in ins if w != "ARG") == "FROM"
    ign_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [p.strip() for p in ign_file.read_text().splitlines()
                if p.strip() and not p.startswith("#")] if ign_file.exists() else []
    for word, rest in ins:
        if word in ("CMD", "ENTRYPOINT") and rest.startswith("["):
            assert isinstance(json.loads(rest), list)
        if word == "COPY" and "--from=" not in rest:
            *sources, _dest = rest.split()
            for src in sources:
                assert (context / src).exists(), f"{dockerfile}: COPY source {src} missing"
                assert not ignored(patterns, src), f"{src} is excluded by {ign_file.name}"
    assert any(w in ("CMD", "ENTRYPOINT") for w, _ in ins)


def test_app_image_serves_the_ports_of_serve_toml() -> None:
    from twin.serve_config import load_serve_config

    cfg = load_serve_config(DOCKER / "twin" / "serve.toml")
    exposed = " ".join(r for w, r in dockerfile_instructions(DOCKER / "Dockerfile") if w == "EXPOSE")
    assert str(cfg.audiosocket.port) in exposed and str(cfg.metrics.port) in exposed
    twin = compose()["services"]["twin"]
    assert f"127.0.0.1:{cfg.metrics.port}:{cfg.metrics.port}" in twin["ports"]
    assert "/etc/twin/serve.toml" in " ".join(twin["command"])


def test_serve_toml_matches_asterisk_and_compose() -> None:
    from twin.serve_config import load_serve_config
    from twin.settings import Settings

    cfg = load_serve_config(DOCKER / "twin" / "serve.toml")
    Settings.from_dict(cfg.voice_settings_dict())  # the voice part is valid too
    c = compose()
    globals_ = section(AST / "extensions.conf", "globals")
    host, port = globals_["TWIN_AUDIOSOCKET"][0].split(":")
    assert host in c["services"] and port == str(cfg.audiosocket.port)
    assert cfg.ami.enabled and cfg.ami.host in c["services"]
    general = section(AST / "manager.conf", "general")
    assert general["port"] == [str(cfg.ami.port)] and general["enabled"] == ["yes"]
    user = section(AST / "manager.conf", cfg.ami.username)
    assert cfg.ami.secret_env in c["services"]["twin"]["environment"]
    example = dict(line.split("=", 1) for line in (DOCKER / "env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert example[cfg.ami.secret_env] == user["secret"][0]
    read = {p.strip() for p in user["read"][0].split(",")}
    write = {p.strip() for p in user["write"][0].split(",")}
    assert {"call", "dialplan", "system"} <= read  # Newchannel/Hangup, VarSet, FullyBooted
    assert {"call", "originate"} <= write  # Setvar/Getvar/Redirect/Hangup, Originate
    assert cfg.llm["base_url"].startswith("http://ollama:")


def dialplan() -> dict[str, list[tuple[str, str]]]:
    return {name: items for name, items in parse_conf(AST / "extensions.conf")}


def test_dialplan_answers_then_audiosocket_then_queue_or_message() -> None:
    dp = dialplan()
    steps = [v for k, v in dp["twin-inbound"] if k in ("exten", "same")]
    text = "\n".join(steps)
    i_answer = text.index("Answer()")
    i_uuid = text.index("Set(CALL_UUID=")
    # TryExec: a failed AudioSocket (app down, 2 s timeout, error frame) must not hang up
    i_as = text.index("TryExec(AudioSocket(${CALL_UUID},${TWIN_AUDIOSOCKET}))")
    assert i_answer < i_uuid < i_as  # answered before AudioSocket, UUID set (VarSet) first
    after = text[i_as:]
    assert '"${TWIN_OUTCOME}" = "done"' in after and "Goto(twin-handoff,s,1)" in after
    handoff = "\n".join(v for _, v in dp["twin-handoff"])
    assert "Queue(secretariat" in handoff and "Goto(twin-message,s,1)" in handoff
    assert "GotoIfTime(" in handoff  # closed hours -> message
    assert "VoiceMail(100@twin" in "\n".join(v for _, v in dp["twin-message"])


def test_dialplan_targets_queues_mailboxes_and_endpoints_exist() -> None:
    dp = dialplan()
    contexts = set(dp)
    text = (AST / "extensions.conf").read_text()
    for ctx in re.findall(r"Goto\(([\w-]+),[\w*#]+,\d+\)", text):
        assert ctx in contexts, f"Goto to unknown context {ctx}"
    for label in re.findall(r"\?(\w+)\)", text):
        assert re.search(rf"n\({label}\)", text), f"GotoIf label {label} undefined"
    queues = {name for name, _ in parse_conf(AST / "queues.conf")}
    for q in re.findall(r"Queue\(([\w-]+)", text):
        assert q in queues
    pjsip = parse_conf(AST / "pjsip.conf")
    endpoints = {n for n, items in pjsip if ("type", "endpoint") in items or
                 (n.startswith("secretary") and any(k == "aors" for k, _ in items))}
    for member in section(AST / "queues.conf", "secretariat")["member"]:
        assert member.split(",")[0].split("/")[1] in endpoints
    for _, items in pjsip:
        for k, v in items:
            if k == "context":
                assert v in contexts, f"pjsip context {v} missing from extensions.conf"
    boxes = section(AST / "voicemail.conf", "twin")
    for box in re.findall(r"VoiceMail(?:Main)?\((\d+)@twin", text):
        assert box in boxes


def test_rtp_range_is_published() -> None:
    rtp = section(AST / "rtp.conf", "general")
    want = f"{rtp['rtpstart'][0]}-{rtp['rtpend'][0]}:{rtp['rtpstart'][0]}-{rtp['rtpend'][0]}/udp"
    assert want in compose()["services"]["asterisk"]["ports"]


def test_workers_compose_adds_a_second_worker_on_the_same_stack() -> None:
    """``compose.workers.yaml``: a second ``twin serve`` with the first one's settings, both
    listed in Asterisk's TWIN_WORKERS, one LLM server; validated by docker-compose too."""
    from twin.serve_config import load_serve_config

    base = compose()
    over = yaml.safe_load((DOCKER / "compose.workers.yaml").read_text())
    cfg = load_serve_config(DOCKER / "twin" / "serve.toml")
    workers = over["services"]["asterisk"]["environment"]["TWIN_WORKERS"].split("&")
    assert len(workers) == 2
    services = set(base["services"]) | set(over["services"])
    for w in workers:
        host, port = w.split(":")
        assert host in services and port == str(cfg.audiosocket.port)
    first = dict(base["services"]["twin"])  # compose merges the override's environment
    first["environment"] = {**first["environment"], **over["services"]["twin"]["environment"]}
    second = over["services"]["twin-2"]
    for key in ("TWIN_AMI_SECRET", "TWIN_DATABASE_URL", "TWIN_HOME"):
        assert second["environment"][key] == first["environment"][key]  # one database
    assert second["environment"]["TWIN_LLM_URL"] == first["environment"]["TWIN_LLM_URL"]
    assert second["build"] == first["build"] and second["networks"] == first["networks"]
    assert "./twin/serve.toml:/etc/twin/serve.toml:ro" in second["volumes"]
    assert not {v.split(":")[0] for v in second["volumes"]} & \
        {v.split(":")[0] for v in first["volumes"] if not v.startswith(".")}  # own data
    assert set(second["ports"]).isdisjoint(first["ports"])  # its own health port
    # it waits for the first worker's readiness (schema and seed done once)
    assert "http://twin:9100/health" in " ".join(second["command"])
    assert over["services"]["vllm"]["profiles"] == ["vllm"]
    assert "--enable-lora" in over["services"]["vllm"]["command"]
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose not installed (scripts/services.sh installs it)")
    res = subprocess.run([exe, "-f", str(DOCKER / "compose.yaml"), "-f",
                          str(DOCKER / "compose.workers.yaml"), "config"],
                         env={**os.environ, **ENV}, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    resolved = yaml.safe_load(res.stdout)
    assert {"asterisk", "twin", "twin-2", "db", "ollama"} <= set(resolved["services"])
    assert resolved["services"]["twin-2"]["environment"]["TWIN_AMI_SECRET"] == "test-secret"


def test_dialplan_spreads_calls_over_the_workers() -> None:
    """``[twin-workers]`` (run for real against workers in tests/telephony/
    test_serve_workers.py): the structure the PBX administrator relies on."""
    from telephony.handoff_labels import HANDOFF_LABELS as LABELS

    dp = dialplan()
    inbound = "\n".join(v for _, v in dp["twin-inbound"])
    # the workers' list comes from [globals] or the container's environment; the single
    # worker's AudioSocket stays as it was when the list is empty
    assert "Set(TWIN_WORKERS=${ENV(TWIN_WORKERS)})" in inbound
    i_go = inbound.index("?twin-workers,s,1)")
    assert inbound.index("Set(CALL_UUID=") < i_go < inbound.index(
        "TryExec(AudioSocket(${CALL_UUID},${TWIN_AUDIOSOCKET}))")
    assert any(v.startswith("n(result),") for _, v in dp["twin-inbound"])
    workers = [v for _, v in dp["twin-workers"]]
    text = "\n".join(workers)
    assert "FIELDQTY(TWIN_WORKERS,&)" in text and "Set(GLOBAL(TWIN_RR)=" in text
    i_uuid = text.index("Set(CALL_UUID=${UUID()})")  # a fresh UUID per attempt
    i_as = text.index("TryExec(AudioSocket(${CALL_UUID},${TWIN_TARGET}))")
    assert i_uuid < i_as
    after = text[i_as:]
    for reason in ("assistant_starting", "over_capacity", "service_shutdown"):
        assert f'"{reason}"' in after and reason in LABELS  # codes the app really sets
    assert after.count("Goto(twin-inbound,s,result)") == 2  # answered, or nobody could
    assert "${EPOCH} - ${TWIN_T0} < ${TWIN_DECLINE_S}" in after
    globals_ = section(AST / "extensions.conf", "globals")
    assert globals_["TWIN_WORKERS"] == [""] and globals_["TWIN_RR"] == ["0"]
    assert int(globals_["TWIN_DECLINE_S"][0]) >= 3  # > app_audiosocket's 2 s connect timeout
