"""The AMI client against a real TCP server replaying recorded AMI transcripts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from ami_replay import AmiReplayServer, load_script
from telephony_testkit import RawCaller, Recorder

from telephony.ami import (
    AmiActionError,
    AmiClient,
    AmiConfig,
    AmiNotConnected,
    encode_action,
    parse_message,
)
from telephony.audiosocket import Kind
from telephony.control import AmiCallControl
from telephony.session import CallSession

CALL = "0b3e6a4c-2f1d-4c59-9a7e-1d2c3b4a5f60"


@pytest.fixture
async def replay() -> AsyncIterator[list[AmiReplayServer]]:
    servers: list[AmiReplayServer] = []
    yield servers
    for s in servers:
        await s.stop()


async def start_replay(holder: list[AmiReplayServer], *names: str) -> AmiReplayServer:
    srv = AmiReplayServer(scripts=[load_script(n) for n in names])
    await srv.start()
    holder.append(srv)
    return srv


def client_for(srv: AmiReplayServer, **kw: object) -> AmiClient:
    cfg = AmiConfig(host="127.0.0.1", port=srv.port, username="twin", secret="s3cret",
                    ping_interval_s=0, reconnect_initial_s=0.05, reconnect_max_s=0.2,
                    action_timeout_s=2.0, **kw)  # type: ignore[arg-type]
    return AmiClient(config=cfg)


def test_encode_action_is_byte_exact_and_refuses_line_breaks() -> None:
    assert encode_action("Setvar", {"ActionID": "7", "Channel": "PJSIP/a-1",
                                    "Variable": "X", "Value": "a b"}) == (
        b"Action: Setvar\r\nActionID: 7\r\nChannel: PJSIP/a-1\r\nVariable: X\r\nValue: a b\r\n\r\n")
    with pytest.raises(ValueError, match="line break"):
        encode_action("Setvar", {"Value": "two\r\nAction: Hangup"})


def test_parse_message_keeps_order_duplicates_and_empty_values() -> None:
    m = parse_message(["Event: VarSet", "AccountCode: ", "ChanVariable: A=1",
                       "ChanVariable: B=2", "Value: x: y", "not a pair"])
    assert m.event == "VarSet" and m["accountcode"] == ""
    assert m.get_all("ChanVariable") == ["A=1", "B=2"]
    assert m["Value"] == "x: y"
    assert m.raw_lines == ["not a pair"]


async def test_login_is_byte_exact_and_waits_for_authentication(replay) -> None:
    srv = await start_replay(replay, "login_ok.yaml")
    client = client_for(srv)
    await client.start()
    assert await client.wait_connected(3)
    assert client.banner == "Asterisk Call Manager/9.0.0"
    sent = srv.received[0].decode()
    aid = sent.split("ActionID: ")[1].split("\r\n")[0]
    assert sent == (f"Action: Login\r\nActionID: {aid}\r\nUsername: twin\r\n"
                    "Secret: s3cret\r\nEvents: on\r\n\r\n")
    await client.stop()
    assert srv.failures == []


async def test_uuid_maps_to_channel_and_handoff_sets_variables(replay) -> None:
    srv = await start_replay(replay, "incoming_call_handoff.yaml")
    client = client_for(srv)
    events: list[str] = []

    async def collect() -> None:
        async for ev in client.events():
            events.append(ev.event or "")
            if ev.event == "Hangup":
                return

    collector = asyncio.create_task(collect())
    await client.start()
    chan = await client.wait_call_channel(CALL, 3)
    assert chan is not None
    assert (chan.channel, chan.caller_number, chan.uniqueid) == (
        "PJSIP/trunk-00000007", "0612345678", "1732800000.14")
    ok = await client.set_call_variables(CALL, {
        "TWIN_OUTCOME": "handoff", "TWIN_HANDOFF_REASON": "emergency",
        "TWIN_HANDOFF_LABEL": "URGENCE", "TWIN_HANDOFF_SUMMARY": "douleur\r\nthoracique"})
    assert ok
    await asyncio.wait_for(collector, 3)
    assert events == ["FullyBooted", "Newchannel", "VarSet", "Hangup"]
    assert client.call_channel(CALL) is None  # forgotten after the Hangup event
    assert "Value: douleur thoracique\r\n" in srv.received[0].decode()
    assert srv.failures == []
    await client.stop()


async def test_actions_getvar_redirect_hangup_originate_and_lists(replay) -> None:
    srv = await start_replay(replay, "actions.yaml")
    client = client_for(srv)
    await client.start()
    assert await client.wait_connected(3)
    assert await client.getvar("PJSIP/trunk-00000007", "CALL_UUID") == CALL
    await client.redirect("PJSIP/trunk-00000007", context="twin-handoff", exten="s")
    await client.hangup("PJSIP/trunk-00000007")
    with pytest.raises(AmiActionError, match="AMI Setvar failed: No such channel"):
        await client.setvar("PJSIP/gone-00000001", "X", "1")
    ev = await client.originate(channel="PJSIP/secretariat", context="twin-callback", exten="s",
                                timeout_s=5)
    assert ev.event == "OriginateResponse" and ev["Channel"] == "PJSIP/secretariat-00000009"
    chans = await client.action_list("CoreShowChannels")
    assert [c["Application"] for c in chans] == ["AudioSocket"]
    assert client.connected  # the error answer did not break the connection
    assert srv.failures == []
    await client.stop()


async def test_failed_login_is_logged_and_retried(replay, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="telephony.ami")
    srv = await start_replay(replay, "login_failed.yaml", "login_failed.yaml", "login_ok.yaml")
    client = client_for(srv)
    await client.start()
    assert await client.wait_connected(5)
    assert srv.connections == 3
    assert "AMI Login failed: Authentication failed" in caplog.text
    await client.stop()


async def test_not_an_ami_server(replay, caplog) -> None:
    srv = await start_replay(replay, "not_ami.yaml", "login_ok.yaml")
    client = client_for(srv)
    await client.start()
    assert await client.wait_connected(5)
    assert "not an AMI server: first line was 'HTTP/1.1 400 Bad Request'" in caplog.text
    await client.stop()


async def test_connection_dropped_mid_action_fails_it_and_reconnects(replay) -> None:
    srv = await start_replay(replay, "drop_mid_action.yaml", "login_ok.yaml")
    client = client_for(srv)
    await client.start()
    assert await client.wait_connected(3)
    with pytest.raises(AmiNotConnected, match="Setvar"):
        await client.setvar("PJSIP/x-1", "A", "1")
    assert await client.wait_connected(5)
    assert srv.connections == 2 and client.connects == 2
    await client.stop()


async def test_garbage_is_logged_and_skipped(replay, caplog) -> None:
    srv = await start_replay(replay, "garbage.yaml")
    client = client_for(srv)
    await client.start()
    assert await client.wait_connected(3)
    resp = await client.action("Ping")
    assert resp["Ping"] == "Pong"
    assert "neither Response nor Event" in caplog.text
    assert "unknown ActionID 'nobody-sent-this'" in caplog.text
    await client.stop()


async def test_no_server_at_all_never_raises_out_of_start(caplog) -> None:
    client = AmiClient(config=AmiConfig(port=1, reconnect_initial_s=0.05, ping_interval_s=0))
    await client.start()
    assert not await client.wait_connected(0.3)
    with pytest.raises(AmiNotConnected, match="not connected"):
        await client.setvar("PJSIP/x", "A", "1")
    assert client.errors >= 1
    await client.stop()


async def test_audiosocket_handoff_through_ami(replay, server_factory) -> None:
    """The full path: a call on the AudioSocket port hands off; the AMI client finds the
    channel from the VarSet event and sets the variables the dialplan reads."""
    srv = await start_replay(replay, "incoming_call_handoff.yaml")
    ami = client_for(srv)
    await ami.start()
    assert await ami.wait_connected(3)

    async def hand(session: CallSession) -> None:
        async for _ in session.events():
            await session.handoff(reason="emergency", summary="chest pain for one hour")
            break

    rec = Recorder(body=hand)
    server = await server_factory(rec, control=AmiCallControl(ami=ami))
    caller = await RawCaller.connect(server.port, call_id=CALL)
    await caller.send_audio(bytes(320))
    assert (await caller.read_to_eof())[-1].kind is Kind.HANGUP
    session = rec.sessions[CALL]
    assert (session.channel, session.caller_number) == ("PJSIP/trunk-00000007", "0612345678")
    req = session.handoff_request
    assert req is not None and req.variables_set
    assert srv.failures == []
    assert "Value: chest pain for one hour" in srv.received[0].decode()
    await caller.close()
    await ami.stop()


async def test_an_endless_line_drops_the_link_and_reconnects(replay, caplog) -> None:
    flood = [{"banner": "Asterisk Call Manager/9.0.0"},
             {"expect": {"Action": "Login"}},
             {"send": "Response: Success\nActionID: {ActionID}\nMessage: Authentication accepted"},
             {"raw": "Event: Junk\r\nData: " + "x" * 70000}]
    srv = AmiReplayServer(scripts=[flood, load_script("login_ok.yaml")])
    await srv.start()
    replay.append(srv)
    client = client_for(srv)
    await client.start()
    for _ in range(200):
        if srv.connections == 2 and client.connected:
            break
        await asyncio.sleep(0.02)
    assert srv.connections == 2 and client.connected
    assert "AMI line longer than 65536 bytes" in caplog.text
    await client.stop()


async def test_logoff_is_answered_without_a_spurious_warning(replay, caplog) -> None:
    srv = await start_replay(replay, "logoff.yaml")
    client = client_for(srv)
    await client.start()
    assert await client.wait_connected(3)
    await client.stop()
    assert srv.failures == []
    assert b"Action: Logoff\r\nActionID: " in srv.received[0]
    assert "unknown ActionID" not in caplog.text
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
