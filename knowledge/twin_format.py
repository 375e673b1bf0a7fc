"""The digital twin's shared format: what the model sees in training and at run time.

One module, stdlib + ``knowledge`` only (the call path imports it; no torch), so that
the dataset builder (``twin_training``) and the live model policy (``voice``) render a
conversation exactly the same way:

- :data:`ACTIONS` and :func:`tool_schemas`: the secretaries' action vocabulary (the
  corpus's ``actions``), as OpenAI function-tool JSON schemas with the corpus's argument
  names.
- :func:`system_prompt`: a compact system prompt (practice essentials, rules, the date and
  time of the call), deterministic for a profile and a time.
- :func:`patient_message`, :func:`assistant_message`, :func:`tool_result_message` and
  :func:`secretary_turn_messages`: how a call's turns become chat messages. A secretary turn
  is an assistant message with native ``tool_calls`` (its actions), then one ``tool``
  message per action with the recorded result, then an assistant message with the words.
  A turn without actions is just the words.
- :func:`render_prompt`: the Qwen2.5 chat template (with ``tools=``), reimplemented in plain
  Python so the live side can send a raw prompt; the tests check it is character for
  character what ``tokenizer.apply_chat_template`` renders.
- :func:`parse_reply`: a generated assistant message back into actions and words.

Tool-call ``arguments`` are dicts (as Hugging Face chat templates expect);
:func:`to_openai_messages` turns them into JSON strings for an OpenAI-compatible server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from knowledge.profile import WEEKDAYS, PracticeProfile

__all__ = [
    "ACTIONS",
    "DEFAULT_QWEN_SYSTEM",
    "IM_END",
    "IM_START",
    "KEY_ARGS",
    "ActionCall",
    "ParsedReply",
    "assistant_message",
    "info_result",
    "parse_reply",
    "patient_message",
    "render_prompt",
    "secretary_turn_messages",
    "system_prompt",
    "to_openai_messages",
    "tool_result_message",
    "tool_schemas",
]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
DEFAULT_QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

# action -> (description, {arg: (json type, description or "", enum or None)}, required args).
# Kept short: the whole block is in every prompt (and every training sequence).
_Arg = tuple[str, str, tuple[str, ...] | None]
_DATE = "YYYY-MM-DD"
_TIME = "YYYY-MM-DDTHH:MM"
_SPEC: dict[str, tuple[str, dict[str, _Arg], tuple[str, ...]]] = {
    "find_patient": ("Find the caller's record.",
                     {"name": ("string", "", None), "birth_date": ("string", _DATE, None)},
                     ("name", "birth_date")),
    "create_patient": ("New patient record.",
                       {"name": ("string", "", None), "birth_date": ("string", _DATE, None),
                        "phone": ("string", "", None),
                        "guardian_of": ("string", "parent's patient_id", None)},
                       ("name", "birth_date", "phone")),
    "search_slots": ("Free slots.",
                     {"practitioner": ("string", "", None),
                      "appointment_type": ("string", "", None),
                      "day": ("string", _DATE, None),
                      "part_of_day": ("string", "", ("morning", "afternoon", "any")),
                      "after": ("string", _TIME, None)},
                     ("practitioner", "appointment_type")),
    "book": ("Book an offered, accepted slot.",
             {"patient_id": ("string", "", None), "practitioner": ("string", "", None),
              "appointment_type": ("string", "", None), "start": ("string", _TIME, None)},
             ("patient_id", "practitioner", "appointment_type", "start")),
    "list_appointments": ("A patient's appointments.", {"patient_id": ("string", "", None)},
                          ("patient_id",)),
    "cancel": ("Cancel an appointment.", {"appointment_id": ("string", "", None)},
               ("appointment_id",)),
    "move": ("Move an appointment.",
             {"appointment_id": ("string", "", None), "new_start": ("string", _TIME, None)},
             ("appointment_id", "new_start")),
    "take_message": ("Message for a practitioner or the secretariat.",
                     {"kind": ("string", "", ("prescription_renewal", "results", "callback",
                                              "medical_question", "admin", "other")),
                      "for": ("string", "", None), "patient_id": ("string", "", None),
                      "summary": ("string", "", None)},
                     ("kind", "for", "summary")),
    "give_info": ("The practice's answer on a practical topic.",
                  {"topic": ("string", "hours, address, access, tariffs, payment, documents, "
                             "tiers_payant, carte_vitale, home_visits, other", None)},
                  ("topic",)),
    "transfer": ("Transfer the call.", {"to": ("string", "", None),
                                        "reason": ("string", "", None)}, ("to", "reason")),
    "emergency": ("Life-threatening: caller must dial this number now.",
                  {"number": ("string", "", ("15", "112", "3114")),
                   "reason": ("string", "", None)},
                  ("number", "reason")),
    "end_call": ("Hang up after the goodbye.", {}, ()),
}

ACTIONS: tuple[str, ...] = tuple(_SPEC)

# The arguments that decide whether an action was the right one (for evaluation): free
# text (summaries, reasons, names) is compared elsewhere, if at all.
KEY_ARGS: dict[str, tuple[str, ...]] = {
    "find_patient": ("birth_date",),
    "create_patient": ("birth_date",),
    "search_slots": ("practitioner", "appointment_type", "day", "part_of_day"),
    "book": ("practitioner", "appointment_type", "start"),
    "list_appointments": (),
    "cancel": ("appointment_id",),
    "move": ("appointment_id", "new_start"),
    "take_message": ("kind", "for"),
    "give_info": ("topic",),
    "transfer": ("to",),
    "emergency": ("number",),
    "end_call": (),
}


def tool_schemas() -> list[dict[str, Any]]:
    """The actions as OpenAI function tools (``{"type": "function", "function": {...}}``)."""
    tools: list[dict[str, Any]] = []
    for name, (description, args, required) in _SPEC.items():
        properties: dict[str, Any] = {}
        for arg, (kind, arg_description, enum) in args.items():
            prop: dict[str, Any] = {"type": kind}
            if arg_description:
                prop["description"] = arg_description
            if enum is not None:
                prop["enum"] = list(enum)
            properties[arg] = prop
        tools.append({"type": "function", "function": {
            "name": name, "description": description,
            "parameters": {"type": "object", "properties": properties,
                           "required": list(required)}}})
    return tools


# --------------------------------------------------------------------------------------------
# System prompt
# --------------------------------------------------------------------------------------------

_DAYS_FR = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS_FR = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
              "septembre", "octobre", "novembre", "décembre")
_CALENDAR_DAYS = 14

_RULES_FR = (
    "Règles : phrases courtes et parlées, une question à la fois. "
    "Nom et date de naissance (find_patient) avant de lire ou changer un rendez-vous. "
    "Ne propose que des créneaux rendus par search_slots ; relis le rendez-vous avant book. "
    "Jamais d'avis médical : propose un rendez-vous ou un message au médecin. "
    "Urgence vitale : emergency {samu} tout de suite ({suicide} si idées suicidaires). "
    "Infos pratiques du cabinet : give_info, jamais de mémoire. "
    "Ne donne aucune information sur un autre patient."
)


def _hours_line(ranges: Sequence[Any]) -> str:
    return " ".join(str(r) for r in ranges) if ranges else "fermé"


def _week_line(profile: PracticeProfile) -> str:
    """``lun-jeu 08:30-12:30 14:00-19:00 ; ven ... ; dim fermé`` (equal days grouped)."""
    groups: list[tuple[int, int, str]] = []
    for i in range(len(WEEKDAYS)):
        line = _hours_line(profile.hours.ranges(i))
        if groups and groups[-1][2] == line:
            groups[-1] = (groups[-1][0], i, line)
        else:
            groups.append((i, i, line))
    return " ; ".join(
        (f"{_DAYS_FR[a][:3]}-{_DAYS_FR[b][:3]}" if a != b else _DAYS_FR[a][:3]) + f" {line}"
        for a, b, line in groups)


def system_prompt(profile: PracticeProfile, *, now: datetime) -> str:
    """The compact system prompt for a call at ``now`` (aware: converted to the practice's
    timezone; naive: taken as practice local time). Deterministic."""
    if now.tzinfo is not None:
        now = now.astimezone(profile.practice.tzinfo).replace(tzinfo=None)
    numbers = profile.policies.emergency_numbers
    practitioners = " ; ".join(
        f"{p.id} = {p.display_name} ({p.specialty})" for p in profile.practitioners)
    types = " ; ".join(
        f"{t.code} = {t.label}, {t.duration_min} min ({', '.join(t.practitioners)})"
        for t in profile.appointment_types)
    hours = _week_line(profile)
    today = now.date()
    calendar = ", ".join(
        f"{_DAYS_FR[d.weekday()][:3]} {d.isoformat()}"
        for d in (today + timedelta(days=i) for i in range(_CALENDAR_DAYS)))
    lines = [
        f"Tu es secrétaire au « {profile.practice.name} » et tu réponds au téléphone.",
        f"Praticiens : {practitioners}.",
        f"Rendez-vous : {types}.",
        f"Horaires : {hours}.",
        _RULES_FR.format(samu=numbers.samu, suicide=numbers.suicide),
        f"Maintenant : {_DAYS_FR[today.weekday()]} {today.day} {_MONTHS_FR[today.month - 1]} "
        f"{today.year}, {now:%H:%M} ({now:%Y-%m-%dT%H:%M}).",
        f"Jours : {calendar}.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def patient_message(text: str) -> dict[str, Any]:
    """What the patient said, as a ``user`` message."""
    return {"role": "user", "content": text}


def assistant_message(actions: Sequence[Mapping[str, Any]], words: str) -> dict[str, Any]:
    """One assistant message: native ``tool_calls`` for ``actions`` (each ``{action, args}``;
    a ``result`` key is ignored) and/or ``words``. A secretary turn uses two of them, the
    actions first and the words after the results (see :func:`secretary_turn_messages`)."""
    message: dict[str, Any] = {"role": "assistant", "content": words}
    if actions:
        message["tool_calls"] = [
            {"type": "function",
             "function": {"name": a["action"], "arguments": dict(a.get("args") or {})}}
            for a in actions]
    return message


def tool_result_message(action: str, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The recorded (or live) result of one action, as a ``tool`` message (compact JSON)."""
    return {"role": "tool", "name": action,
            "content": json.dumps(dict(result or {}), ensure_ascii=False)}


def secretary_turn_messages(actions: Sequence[Mapping[str, Any]], words: str
                            ) -> list[dict[str, Any]]:
    """A secretary turn: [tool calls, one result per call, words] or just [words]."""
    messages: list[dict[str, Any]] = []
    if actions:
        messages.append(assistant_message(actions, ""))
        messages.extend(tool_result_message(a["action"], a.get("result")) for a in actions)
    if words or not actions:
        messages.append(assistant_message((), words))
    return messages


def info_result(profile: PracticeProfile, topic: str, *, now: datetime) -> dict[str, Any]:
    """The result of ``give_info``: the practice's own answer, from the profile.

    The corpus records ``give_info`` with an empty result (the secretary knew the answer);
    the twin must read it from the profile instead, so the dataset fills it with this
    (for topics the profile answers) and the live side returns the same."""
    from knowledge.practice_info import answer_practice_question, resolve_topic

    aliases = {"payment": "payments"}
    key = aliases.get(topic, topic)
    if resolve_topic(key) is None:
        return {}
    return {"answer": answer_practice_question(profile, key, now=now)}


def to_openai_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The same messages for an OpenAI-compatible server: tool-call ``arguments`` as JSON
    strings and ids linking each ``tool`` message to its call."""
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    counter = 0
    for m in messages:
        m2 = dict(m)
        if m2.get("tool_calls"):
            calls = []
            for call in m2["tool_calls"]:
                counter += 1
                call_id = f"call_{counter}"
                pending.append(call_id)
                fn = call["function"]
                calls.append({"id": call_id, "type": "function", "function": {
                    "name": fn["name"],
                    "arguments": json.dumps(fn["arguments"], ensure_ascii=False)}})
            m2["tool_calls"] = calls
        elif m2.get("role") == "tool" and pending:
            m2["tool_call_id"] = pending.pop(0)
        out.append(m2)
    return out


# --------------------------------------------------------------------------------------------
# The Qwen2.5 chat template, in Python
# --------------------------------------------------------------------------------------------

_TOOLS_HEADER = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user "
                 "query.\n\nYou are provided with function signatures within <tools></tools> "
                 "XML tags:\n<tools>")
_TOOLS_FOOTER = ("\n</tools>\n\nFor each function call, return a json object with function "
                 "name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
                 "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
                 "</tool_call>" + IM_END + "\n")


def _tojson(value: Any) -> str:
    # Hugging Face's ``tojson`` filter: json.dumps with ensure_ascii=False.
    return json.dumps(value, ensure_ascii=False)


def render_prompt(messages: Sequence[Mapping[str, Any]], *,
                  tools: Sequence[Mapping[str, Any]] | None = None,
                  add_generation_prompt: bool = False) -> str:
    """Render ``messages`` exactly as Qwen2.5's chat template does (``apply_chat_template(
    messages, tools=tools, tokenize=False, add_generation_prompt=...)``)."""
    out: list[str] = []
    first_is_system = bool(messages) and messages[0]["role"] == "system"
    if tools:
        out.append(IM_START + "system\n")
        out.append(messages[0]["content"] if first_is_system else DEFAULT_QWEN_SYSTEM)
        out.append(_TOOLS_HEADER)
        for tool in tools:
            out.append("\n" + _tojson(tool))
        out.append(_TOOLS_FOOTER)
    elif first_is_system:
        out.append(f"{IM_START}system\n{messages[0]['content']}{IM_END}\n")
    else:
        out.append(f"{IM_START}system\n{DEFAULT_QWEN_SYSTEM}{IM_END}\n")
    for i, m in enumerate(messages):
        role = m["role"]
        if role == "user" or (role == "system" and i > 0) or (
                role == "assistant" and not m.get("tool_calls")):
            out.append(f"{IM_START}{role}\n{m['content']}{IM_END}\n")
        elif role == "assistant":
            out.append(IM_START + role)
            if m.get("content"):
                out.append("\n" + m["content"])
            for call in m["tool_calls"]:
                fn = call.get("function", call)
                out.append('\n<tool_call>\n{"name": "' + fn["name"] + '", "arguments": '
                           + _tojson(fn["arguments"]) + "}\n</tool_call>")
            out.append(IM_END + "\n")
        elif role == "tool":
            if i == 0 or messages[i - 1]["role"] != "tool":
                out.append(IM_START + "user")
            out.append("\n<tool_response>\n" + m["content"] + "\n</tool_response>")
            if i == len(messages) - 1 or messages[i + 1]["role"] != "tool":
                out.append(IM_END + "\n")
    if add_generation_prompt:
        out.append(IM_START + "assistant\n")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Parsing a generated reply
# --------------------------------------------------------------------------------------------

_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


@dataclass(frozen=True)
class ActionCall:
    """One action the model asked for."""

    action: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedReply:
    """A generated assistant message: its actions, its words, and what could not be read
    (unknown action names, broken JSON), which the caller should treat as no action."""

    actions: tuple[ActionCall, ...]
    words: str
    errors: tuple[str, ...] = ()


_BARE_CALL_RE = re.compile(r'\{\s*"name"\s*:')


def _bare_calls(text: str) -> tuple[list[Any], str]:
    """Tool calls written as bare JSON objects (``{"name": ..., "arguments": ...}`` without
    the ``<tool_call>`` tags: a small model fine-tuned on the format learns the JSON long
    before the rare tag token), and the text without them. An object cut short (the
    generation stopped inside it) is returned as its text, to be reported unreadable."""
    found: list[Any] = []
    kept: list[str] = []
    pos = 0
    decoder = json.JSONDecoder()
    for match in _BARE_CALL_RE.finditer(text):
        if match.start() < pos:
            continue
        try:
            data, end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            found.append(text[match.start():].strip())
            kept.append(text[pos:match.start()])
            pos = len(text)
            break
        if isinstance(data, dict) and "arguments" in data:
            found.append(data)
            kept.append(text[pos:match.start()])
            pos = end
    kept.append(text[pos:])
    return found, " ".join(kept)


def parse_reply(text: str) -> ParsedReply:
    """Split a generated assistant message (after ``<|im_start|>assistant\\n``) into
    actions and words. Generation may stop at ``<|im_end|>`` or include it. Tool calls
    are read in their ``<tool_call>`` tags, or as bare ``{"name": …, "arguments": …}``
    objects; neither is ever part of the words."""
    text = text.split(IM_END, 1)[0]
    actions: list[ActionCall] = []
    errors: list[str] = []
    bodies: list[Any] = [m.group(1).strip() for m in _TOOL_CALL_RE.finditer(text)]
    bare, rest = _bare_calls(_TOOL_CALL_RE.sub(" ", text))
    for body in [*bodies, *bare]:
        if isinstance(body, dict):
            data = body
        else:
            try:
                data = json.loads(body)
            except json.JSONDecodeError:
                errors.append(f"unreadable tool call: {body[:80]!r}")
                continue
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            errors.append("tool call without a name")
            continue
        name = data["name"]
        args = data.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = None
        if not isinstance(args, dict):
            errors.append(f"{name}: arguments are not an object")
            continue
        if name not in _SPEC:
            errors.append(f"unknown action {name!r}")
            continue
        actions.append(ActionCall(action=name, args=args))
    words = " ".join(rest.split())
    return ParsedReply(actions=tuple(actions), words=words, errors=tuple(errors))
