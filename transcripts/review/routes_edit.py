"""Changes made on a call's page: turn text and speaker, split and merge, PII decisions,
action chips, the call's labels and its review status. Every form carries the CSRF token
and the call's version; a change based on an old version is refused (409), never merged."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from transcripts.review.auth import CurrentUser
from transcripts.review.permissions import Permission
from transcripts.review.queries import merge_with_next, split_turn
from transcripts.review.vocab import ACTIONS, CATEGORIES, FLAGS, OUTCOMES, state_of
from transcripts.review.web import BadInput, form_int, form_str, read_form, redirect, require
from transcripts.types import CallNotFound, CallView, StaleEditError, TurnView

__all__ = ["CallLocked", "router"]

router = APIRouter()

SPEAKERS = ("secretary", "patient", "assistant", "unknown")
PII_TYPES = ("person", "spelled_name", "birth_date", "phone", "nir", "address", "email",
             "health", "other_id")


class CallLocked(Exception):
    """An approved call is read-only until it is reopened."""


async def _prepare(request: Request, call_id: int, permission: Permission, *,
                   allow_approved: bool = False) -> tuple[CurrentUser, FormData, CallView, int]:
    user = await require(request, permission)
    form = await read_form(request, csrf=user.csrf_token)
    version = form_int(form, "version")
    assert version is not None
    call = await request.app.state.store.get_call(call_id, can_see_pii=False)
    if call is None:
        raise CallNotFound(f"no call {call_id}")
    if call.version != version:
        raise StaleEditError(call_id=call_id, expected=version, actual=call.version)
    if call.status == "approved" and not allow_approved:
        raise CallLocked
    return user, form, call, version


def _turn(call: CallView, turn_id: int) -> TurnView:
    for turn in call.turns:
        if turn.id == turn_id:
            return turn
    raise CallNotFound(f"no turn {turn_id} in call {call.id}")


def _back(call_id: int, ok: str, idx: int | None = None) -> Response:
    return redirect(f"/calls/{call_id}?ok={ok}" + (f"#turn-{idx}" if idx is not None else ""))


@router.post("/calls/{call_id}/turns/{turn_id}")
async def edit_turn(request: Request, call_id: int, turn_id: int) -> Response:
    user, form, call, version = await _prepare(request, call_id, Permission.EDIT_TRANSCRIPT)
    store = request.app.state.store
    turn = _turn(call, turn_id)
    op = form_str(form, "op", max_len=10) or "save"
    if op == "merge":
        await merge_with_next(store, call_id, turn_id, actor=user.username,
                              expected_version=version)
        return _back(call_id, "merge", turn.idx)
    limit = request.app.state.settings.max_text_chars
    text = form_str(form, "text", max_len=limit, required=True).strip()
    speaker = form_str(form, "speaker", max_len=20) or turn.speaker
    if speaker not in SPEAKERS:
        raise BadInput("Locuteur inconnu.")
    if op == "split":
        if text != turn.text.strip():
            raise BadInput("Enregistrez d'abord la correction du texte, puis coupez le tour.")
        at = form_int(form, "at", required=False)
        if at is None:
            raise BadInput("Placez le curseur dans le texte, à l'endroit de la coupe, puis "
                           "cliquez sur « Couper au curseur ».")
        at += len(turn.text) - len(turn.text.lstrip())
        try:
            await split_turn(store, call_id, turn_id, at, actor=user.username,
                             expected_version=version)
        except ValueError as exc:
            raise BadInput(_french(str(exc))) from exc
        return _back(call_id, "split", turn.idx)
    if op != "save":
        raise BadInput("Opération inconnue.")
    changes: dict[str, Any] = {}
    if text != turn.text:
        changes["text"] = text
    if speaker != turn.speaker:
        changes["speaker"] = speaker
    if changes:
        await store.update_turn(turn_id, actor=user.username, expected_version=version,
                                **changes)
    return _back(call_id, "turn", turn.idx)


_MESSAGES = {
    "place the cursor inside the text, between two words":
        "Placez le curseur dans le texte, entre deux mots, puis coupez.",
    "cannot cut inside a masked piece of personal data":
        "Impossible de couper au milieu d'une donnée masquée.",
}


def _french(message: str) -> str:
    return _MESSAGES.get(message, message)


@router.post("/calls/{call_id}/spans/{span_id:int}")
async def span_status(request: Request, call_id: int, span_id: int) -> Response:
    user, form, call, version = await _prepare(request, call_id, Permission.EDIT_TRANSCRIPT)
    status = form_str(form, "status", max_len=20)
    if status not in ("accepted", "rejected", "proposed"):
        raise BadInput("Décision inconnue.")
    turn = next((t for t in call.turns if any(s.id == span_id for s in t.spans)), None)
    if turn is None:
        raise CallNotFound(f"no span {span_id} in call {call_id}")
    try:
        await request.app.state.store.set_span_status(span_id, status, actor=user.username,
                                                      expected_version=version)
    except ValueError as exc:
        raise BadInput(f"Décision impossible : {exc}") from exc
    return _back(call_id, "span", turn.idx)


@router.post("/calls/{call_id}/spans/accept-all")
async def accept_all_spans(request: Request, call_id: int) -> Response:
    """Accept every span still proposed in the call (the reviewer read them all)."""
    user, _form, call, version = await _prepare(request, call_id, Permission.EDIT_TRANSCRIPT)
    store = request.app.state.store
    for turn in call.turns:
        for span in turn.spans:
            if span.status == "proposed":
                version = await store.set_span_status(span.id, "accepted", actor=user.username,
                                                      expected_version=version)
    return _back(call_id, "span")


@router.post("/calls/{call_id}/spans")
async def add_span(request: Request, call_id: int) -> Response:
    user, form, call, version = await _prepare(request, call_id, Permission.EDIT_TRANSCRIPT)
    turn_id = form_int(form, "turn_id")
    assert turn_id is not None
    turn = _turn(call, turn_id)
    pii_type = form_str(form, "type", max_len=20)
    if pii_type not in PII_TYPES:
        raise BadInput("Type de donnée personnelle inconnu.")
    start, end = form_int(form, "start", required=False), form_int(form, "end", required=False)
    phrase = form_str(form, "phrase", max_len=200).strip()
    if start is None or end is None:
        if not phrase:
            raise BadInput("Sélectionnez le texte à masquer dans le tour, ou tapez-le.")
        start = _find_free(turn, phrase)
        if start is None:
            raise BadInput(f"« {phrase} » n'apparaît pas tel quel (hors parties déjà masquées) "
                           "dans ce tour.")
        end = start + len(phrase)
    try:
        await request.app.state.store.add_missed_span(turn_id, start, end, pii_type,
                                                      actor=user.username,
                                                      expected_version=version)
    except ValueError as exc:
        raise BadInput("Ce passage ne peut pas être masqué : il chevauche une partie déjà "
                       f"masquée ou sort du texte ({exc}).") from exc
    return _back(call_id, "missed", turn.idx)


def _find_free(turn: TurnView, phrase: str) -> int | None:
    taken = [(s.start, s.end) for s in turn.spans if s.status != "rejected"]
    at = turn.text.find(phrase)
    while at != -1:
        end = at + len(phrase)
        if all(end <= s or at >= e for s, e in taken):
            return at
        at = turn.text.find(phrase, at + 1)
    return None


def parse_args(action: str, raw: str) -> dict[str, str]:
    """``name = value`` lines into an argument dict, refusing names the action does not
    take (the corpus vocabulary)."""
    allowed = ACTIONS[action]
    args: dict[str, str] = {}
    for line in raw.replace("\r", "").split("\n"):
        if not line.strip():
            continue
        if "=" not in line:
            raise BadInput(f"Ligne « {line.strip()[:60]} » : écrivez « nom = valeur ».")
        name, value = (part.strip() for part in line.split("=", 1))
        if name not in allowed:
            raise BadInput(f"L'action {action} n'a pas d'argument « {name[:40]} » "
                           f"(possibles : {', '.join(allowed) or 'aucun'}).")
        args[name] = value
    return args


@router.post("/calls/{call_id}/turns/{turn_id}/actions")
async def edit_actions(request: Request, call_id: int, turn_id: int) -> Response:
    user, form, call, version = await _prepare(request, call_id, Permission.LABEL)
    turn = _turn(call, turn_id)
    if turn.speaker not in ("secretary", "assistant"):
        raise BadInput("Les actions se notent sur les tours de la secrétaire ou de l'assistant.")
    op = form_str(form, "op", max_len=10)
    actions = [dict(a) for a in turn.actions]
    action = form_str(form, "action", max_len=40)
    if op in ("add", "edit") and action not in ACTIONS:
        raise BadInput("Action inconnue.")
    if op == "add":
        actions.append({"action": action,
                        "args": parse_args(action, form_str(form, "args", max_len=2000)),
                        "result": {}})
    elif op in ("edit", "remove"):
        index = form_int(form, "index")
        assert index is not None
        if not 0 <= index < len(actions):
            raise BadInput("Cette action n'existe plus : rechargez la page.")
        if op == "remove":
            del actions[index]
        else:
            old = actions[index]
            actions[index] = {"action": action,
                              "args": parse_args(action, form_str(form, "args", max_len=2000)),
                              "result": old.get("result", {}) if old.get("action") == action
                              else {}}
    else:
        raise BadInput("Opération inconnue.")
    await request.app.state.store.update_turn(turn_id, actor=user.username,
                                              expected_version=version, actions=actions)
    return _back(call_id, "action", turn.idx)


@router.post("/calls/{call_id}/labels")
async def labels(request: Request, call_id: int) -> Response:
    user, form, _call, version = await _prepare(request, call_id, Permission.LABEL)
    category = form_str(form, "category", max_len=40) or None
    outcome = form_str(form, "outcome", max_len=40) or None
    if category is not None and category not in CATEGORIES:
        raise BadInput("Catégorie inconnue.")
    if outcome is not None and outcome not in OUTCOMES:
        raise BadInput("Issue inconnue.")
    rating_raw = form_str(form, "rating", max_len=2).strip()
    if rating_raw and rating_raw not in ("1", "2", "3", "4", "5"):
        raise BadInput("La note va de 1 à 5.")
    flags = form.getlist("flags")
    if any(not isinstance(f, str) or f not in FLAGS for f in flags):
        raise BadInput("Signalement inconnu.")
    comment = form_str(form, "comment", max_len=request.app.state.settings.max_text_chars)
    await request.app.state.store.set_labels(
        call_id, actor=user.username, expected_version=version, category=category,
        outcome=outcome, review_rating=int(rating_raw) if rating_raw else None,
        review_flags=sorted(set(flags), key=FLAGS.index),  # type: ignore[arg-type]
        comment=comment.strip() or None)
    return _back(call_id, "labels")


@router.post("/calls/{call_id}/status")
async def status(request: Request, call_id: int) -> Response:
    user, form, call, version = await _prepare(request, call_id, Permission.APPROVE,
                                               allow_approved=True)
    store = request.app.state.store
    target = form_str(form, "to", max_len=20)
    state = state_of(call.status)
    reviewer = call.review.reviewer if call.review else None
    if target == "corrected":
        if state != "draft":
            raise BadInput("Seul un brouillon peut être marqué corrigé.", status=409)
        version = await store.set_status(call_id, "reviewed", actor=user.username,
                                         expected_version=version)
        await store.set_labels(call_id, actor=user.username, expected_version=version,
                               reviewer=user.username)
    elif target == "approved":
        if state == "approved":
            raise BadInput("Cet appel est déjà approuvé.", status=409)
        pending = sum(1 for t in call.turns for s in t.spans if s.status == "proposed")
        if pending:
            raise BadInput(f"Il reste {pending} masquage(s) à vérifier : acceptez-les ou "
                           "refusez-les (ou « Masquer toutes les propositions ») avant "
                           "d'approuver l'appel.", status=409)
        if request.app.state.settings.second_review:
            if state != "corrected":
                raise BadInput("Ce cabinet demande deux relectures : l'appel doit d'abord être "
                               "marqué corrigé, puis approuvé par une autre personne.",
                               status=409)
            if reviewer == user.username:
                raise BadInput("Vous avez corrigé cet appel : une autre personne doit "
                               "l'approuver (seconde relecture).", status=409)
        version = await store.set_status(call_id, "approved", actor=user.username,
                                         expected_version=version)
        fields: dict[str, Any] = {"second_reviewer": user.username}
        if not reviewer:
            fields = {"reviewer": user.username}
        elif reviewer == user.username:
            fields = {}
        if fields:
            await store.set_labels(call_id, actor=user.username, expected_version=version,
                                   **fields)
    elif target == "draft":
        if state == "draft":
            raise BadInput("Cet appel est déjà un brouillon.", status=409)
        has_spans = any(t.spans for t in call.turns)
        version = await store.set_status(call_id, "redacted" if has_spans else "transcribed",
                                         actor=user.username, expected_version=version)
        await store.set_labels(call_id, actor=user.username, expected_version=version,
                               second_reviewer=None)
    else:
        raise BadInput("État demandé inconnu.")
    return _back(call_id, target)
