"""Read-only pages: the call list (filters, search, paging), a call's page, its audio."""

from __future__ import annotations

import math
from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from transcripts.review.permissions import Permission
from transcripts.review.queries import ListFilters, filter_options, list_calls
from transcripts.review.views import AUDIO_TYPES, audio_file, call_page_view, local_time
from transcripts.review.vocab import (
    ACTIONS,
    CATEGORIES,
    FLAGS,
    OUTCOMES,
    STATES,
)
from transcripts.review.web import BadInput, redirect, render, require
from transcripts.types import CallNotFound

__all__ = ["FLASH", "router"]

router = APIRouter()

SPEAKERS = ("secretary", "patient", "assistant", "unknown")

# flash codes (?ok=...) -> message
FLASH = {
    "turn": "Tour corrigé.", "split": "Tour coupé en deux.", "merge": "Tours fusionnés.",
    "span": "Masquage mis à jour.", "missed": "Donnée personnelle masquée.",
    "action": "Actions du tour mises à jour.", "labels": "Évaluation enregistrée.",
    "corrected": "Appel marqué corrigé.", "approved": "Appel approuvé.",
    "draft": "Appel rouvert (brouillon).", "user": "Compte créé.",
    "disabled": "Compte désactivé.",
}


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"Date « {name} » invalide : utilisez AAAA-MM-JJ.") from None


def _choice(value: str | None, allowed: tuple[str, ...] | list[str]) -> str | None:
    return value if value in allowed else None


@router.get("/")
async def home(request: Request) -> Response:
    await require(request, Permission.VIEW_CALLS)
    return redirect("/calls")


@router.get("/calls")
async def calls(request: Request) -> Response:
    await require(request, Permission.VIEW_CALLS)
    p = request.query_params
    q = (p.get("q") or "").strip()
    if len(q) > 200:
        raise BadInput("Recherche trop longue (200 caractères au plus).")
    options = await filter_options(request.app.state.store)
    rating = p.get("rating") or None
    f = ListFilters(
        q=q or None, date_from=_date(p.get("date_from"), "du"),
        date_to=_date(p.get("date_to"), "au"), state=_choice(p.get("state"), STATES),
        category=_choice(p.get("category"), [*CATEGORIES, *options["categories"]]),
        outcome=_choice(p.get("outcome"), [*OUTCOMES, *options["outcomes"]]),
        secretary=_choice(p.get("secretary"), options["secretaries"]),
        handled_by=_choice(p.get("handled_by"), ("human", "assistant")),
        rating=rating if rating in ("none", "1", "2", "3", "4", "5") else None,
        flag=_choice(p.get("flag"), ("any", *FLAGS)))
    try:
        number = max(1, int(p.get("page") or 1))
    except ValueError:
        number = 1
    size = request.app.state.settings.page_size
    rows, total = await list_calls(request.app.state.store, f, offset=(number - 1) * size,
                                   limit=size)
    pages = max(1, math.ceil(total / size))
    query = {k: v for k, v in p.items() if k != "page" and v}

    def page_url(n: int) -> str:
        return "/calls?" + urlencode({**query, "page": n})

    for row in rows:
        row.started_local = local_time(row.started_at)  # type: ignore[attr-defined]
    return render(request, "calls.html", {
        "nav": "calls", "rows": rows, "f": f, "options": options,
        "page": {"number": number, "pages": pages, "total": total}, "page_url": page_url})


@router.get("/calls/{call_id}")
async def call_page(request: Request, call_id: int) -> Response:
    user = await require(request, Permission.VIEW_CALLS)
    store = request.app.state.store
    call = await store.get_call(call_id, can_see_pii=user.can(Permission.VIEW_PII))
    if call is None:
        raise CallNotFound(f"no call {call_id}")
    view = call_page_view(call, audio_root=request.app.state.settings.audio_root)
    if not user.can(Permission.LISTEN):
        view.audio_url = None
        view.audio_problem = "Votre rôle ne permet pas d'écouter les enregistrements."
    ok = request.query_params.get("ok")
    return render(request, "call.html", {
        "nav": "calls", "call": view, "turns": view.turns, "flash": FLASH.get(ok or ""),
        "action_vocab": ACTIONS, "category_vocab": CATEGORIES, "outcome_vocab": OUTCOMES,
        "speaker_vocab": SPEAKERS})


@router.get("/calls/{call_id}/audio")
async def call_audio(request: Request, call_id: int) -> Response:
    await require(request, Permission.LISTEN)
    call = await request.app.state.store.get_call(call_id, can_see_pii=False)
    if call is None:
        raise CallNotFound(f"no call {call_id}")
    path, problem = audio_file(call, request.app.state.settings.audio_root)
    if path is None:
        raise BadInput(problem or "Pas d'audio.", status=404)
    return FileResponse(path, media_type=AUDIO_TYPES[path.suffix.lower()],
                        headers={"Cache-Control": "private, no-store"})
