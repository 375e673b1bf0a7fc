"""The twin's shared format (knowledge/twin_format.py): schemas, prompt, messages, template."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from knowledge.profile import PracticeProfile, default_profile_path, load_profile
from knowledge.twin_format import (
    ACTIONS,
    KEY_ARGS,
    assistant_message,
    info_result,
    parse_reply,
    patient_message,
    render_prompt,
    secretary_turn_messages,
    system_prompt,
    to_openai_messages,
    tool_result_message,
    tool_schemas,
)

# The corpus's action vocabulary and argument names (the secretariat corpus's README).
CORPUS_ARGS = {
    "find_patient": {"name", "birth_date"},
    "create_patient": {"name", "birth_date", "phone", "guardian_of"},
    "search_slots": {"practitioner", "appointment_type", "day", "part_of_day", "after"},
    "book": {"patient_id", "practitioner", "appointment_type", "start"},
    "list_appointments": {"patient_id"},
    "cancel": {"appointment_id"},
    "move": {"appointment_id", "new_start"},
    "take_message": {"kind", "for", "patient_id", "summary"},
    "give_info": {"topic"},
    "transfer": {"to", "reason"},
    "emergency": {"number", "reason"},
    "end_call": set(),
}


@pytest.fixture(scope="module")
def profile() -> PracticeProfile:
    return load_profile(default_profile_path())


def test_schemas_cover_the_corpus_vocabulary() -> None:
    schemas = tool_schemas()
    assert list(ACTIONS) == [s["function"]["name"] for s in schemas]
    assert set(ACTIONS) == set(CORPUS_ARGS)
    for schema in schemas:
        fn = schema["function"]
        assert schema["type"] == "function"
        props = set(fn["parameters"]["properties"])
        assert props == CORPUS_ARGS[fn["name"]], fn["name"]
        assert set(fn["parameters"]["required"]) <= props
        assert set(KEY_ARGS[fn["name"]]) <= props
    by_name = {s["function"]["name"]: s["function"] for s in schemas}
    assert by_name["emergency"]["parameters"]["properties"]["number"]["enum"] == [
        "15", "112", "3114"]
    json.dumps(schemas)  # serialisable


def test_system_prompt_is_compact_and_deterministic(profile: PracticeProfile) -> None:
    now = datetime(2026, 10, 5, 8, 34, tzinfo=ZoneInfo("Europe/Paris"))
    text = system_prompt(profile, now=now)
    assert text == system_prompt(profile, now=now)
    assert text == system_prompt(profile, now=datetime(2026, 10, 5, 8, 34))
    assert profile.practice.name in text
    for p in profile.practitioners:
        assert f"{p.id} = " in text and p.specialty in text
    for t in profile.appointment_types:
        assert f"{t.code} = " in text
    assert "lundi 5 octobre 2026, 08:34 (2026-10-05T08:34)" in text
    assert "jeu 2026-10-08" in text  # the calendar resolves "jeudi"
    assert "emergency 15" in text and "3114" in text
    assert "dim fermé" in text and "lun-jeu 08:30-12:30 14:00-19:00" in text
    assert len(text) < 2000
    later = system_prompt(profile, now=datetime(2026, 10, 6, 9, 0))
    assert later != text


def test_secretary_turn_messages_actions_then_results_then_words() -> None:
    actions = [
        {"action": "find_patient", "args": {"name": "Rémi Jacquet", "birth_date": "1991-02-17"},
         "result": {"found": True, "patient_id": "pat-1104"}},
        {"action": "end_call", "args": {}, "result": {}},
    ]
    msgs = secretary_turn_messages(actions, "Au revoir.")
    assert [m["role"] for m in msgs] == ["assistant", "tool", "tool", "assistant"]
    assert [c["function"]["name"] for c in msgs[0]["tool_calls"]] == ["find_patient", "end_call"]
    assert msgs[0]["tool_calls"][0]["function"]["arguments"] == actions[0]["args"]
    assert msgs[0]["content"] == ""
    assert json.loads(msgs[1]["content"]) == {"found": True, "patient_id": "pat-1104"}
    assert msgs[3] == {"role": "assistant", "content": "Au revoir."}
    assert secretary_turn_messages([], "Bonjour.") == [assistant_message([], "Bonjour.")]
    assert tool_result_message("end_call", None)["content"] == "{}"


def test_render_matches_the_qwen_template_literally() -> None:
    tools = [{"type": "function", "function": {"name": "end_call", "description": "Hang up.",
                                               "parameters": {"type": "object",
                                                              "properties": {}}}}]
    messages = [{"role": "system", "content": "Sys."}, patient_message("Bonjour, c'est Zoé."),
                *secretary_turn_messages([{"action": "end_call", "args": {"a": "é"},
                                           "result": {"ok": True}}], "Au revoir.")]
    expected = (
        "<|im_start|>system\nSys.\n\n# Tools\n\nYou may call one or more functions to assist "
        "with the user query.\n\nYou are provided with function signatures within "
        "<tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "end_call", "description": "Hang up.", '
        '"parameters": {"type": "object", "properties": {}}}}'
        "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nBonjour, c'est Zoé.<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "end_call", "arguments": {"a": "é"}}\n'
        "</tool_call><|im_end|>\n"
        '<|im_start|>user\n<tool_response>\n{"ok": true}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\nAu revoir.<|im_end|>\n"
    )
    assert render_prompt(messages, tools=tools) == expected
    assert render_prompt(messages[:2], tools=tools, add_generation_prompt=True).endswith(
        "<|im_start|>user\nBonjour, c'est Zoé.<|im_end|>\n<|im_start|>assistant\n")
    no_tools = render_prompt([patient_message("x")])
    assert no_tools.startswith("<|im_start|>system\nYou are Qwen")


def test_parse_reply_round_trip_and_errors() -> None:
    msgs = secretary_turn_messages(
        [{"action": "search_slots", "args": {"practitioner": "morel",
                                             "appointment_type": "consultation",
                                             "day": "2026-10-08"}, "result": {"slots": []}}],
        "")
    text = render_prompt([{"role": "system", "content": "s"}, *msgs])
    generated = text.split("<|im_start|>assistant\n", 1)[1].split("<|im_start|>user", 1)[0]
    parsed = parse_reply(generated)
    assert parsed.errors == ()
    assert parsed.words == ""
    assert [(a.action, a.args) for a in parsed.actions] == [
        ("search_slots", {"practitioner": "morel", "appointment_type": "consultation",
                          "day": "2026-10-08"})]
    words = parse_reply("Je vous écoute.<|im_end|>")
    assert words.actions == () and words.words == "Je vous écoute."
    bad = parse_reply('<tool_call>\n{"name": "fly", "arguments": {}}\n</tool_call>\n'
                      "<tool_call>\n{not json\n</tool_call> D'accord.")
    assert bad.actions == () and len(bad.errors) == 2 and bad.words == "D'accord."
    truncated = parse_reply('<tool_call>\n{"name": "end_call", "arguments": {}}')
    assert [a.action for a in truncated.actions] == ["end_call"]


def test_openai_messages_have_string_arguments_and_ids() -> None:
    msgs = secretary_turn_messages(
        [{"action": "give_info", "args": {"topic": "hours"}, "result": {}}], "Voilà.")
    out = to_openai_messages(msgs)
    call = out[0]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"topic": "hours"}
    assert out[1]["tool_call_id"] == call["id"]
    assert msgs[0]["tool_calls"][0]["function"]["arguments"] == {"topic": "hours"}  # untouched


def test_info_result_comes_from_the_profile(profile: PracticeProfile) -> None:
    now = datetime(2026, 10, 5, 10, 0)
    address = info_result(profile, "address", now=now)
    assert "Tilleuls" in address["answer"]
    assert info_result(profile, "payment", now=now)["answer"]
    assert info_result(profile, "zzz-unknown", now=now) == {}


def test_parse_reply_reads_bare_json_tool_calls() -> None:
    # what the fine-tuned 0.5B twin writes when the rare <tool_call> token loses to plain
    # text (measured on the real run: the JSON is learnt, the tag token is not yet)
    parsed = parse_reply('Je\n{"name": "emergency", "arguments": {"number": "15", '
                         '"reason": "gorge qui serre"}}\n<|im_end|>')
    assert [(a.action, a.args["number"]) for a in parsed.actions] == [("emergency", "15")]
    assert parsed.words == "Je" and not parsed.errors
    # a bare call cut short is an error and never words; other JSON is left alone
    cut = parse_reply('Très bien. {"name": "book", "arguments": {"patient_id": "pat-1')
    assert not cut.actions and cut.words == "Très bien." and "unreadable" in cut.errors[0]
    assert parse_reply('{"found": false} Merci.').words == '{"found": false} Merci.'
    unknown = parse_reply('{"name": "fly", "arguments": {}} Bonjour')
    assert not unknown.actions and unknown.words == "Bonjour" and unknown.errors
