"""The dashboard, the audit log (trainer, admin) and the accounts page (admin)."""

from __future__ import annotations

import json

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from transcripts.review.auth import AccountError
from transcripts.review.permissions import ROLES, Permission
from transcripts.review.queries import audit_page, dashboard
from transcripts.review.routes_calls import FLASH
from transcripts.review.views import local_time, read_contributions
from transcripts.review.web import BadInput, form_str, read_form, redirect, render, require

__all__ = ["router"]

router = APIRouter()


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{round(100 * x)} %"


@router.get("/dashboard")
async def dashboard_page(request: Request) -> Response:
    await require(request, Permission.VIEW_DASHBOARD)
    settings = request.app.state.settings
    label, contributions = read_contributions(settings.twin_model_dir)
    d = await dashboard(request.app.state.store, contributions=contributions, twin_label=label)
    approved = dict(d.progress).get("approved", 0)
    view = {
        "total_calls": d.total_calls, "per_day": d.per_day,
        "max_per_day": max((n for _, n in d.per_day), default=1),
        "assistant_share_label": _pct(d.assistant_share) if d.assistant_calls else "—",
        "median_latency_label": (f"{d.median_latency_s:.2f} s".replace(".", ",")
                                 if d.median_latency_s is not None else "—"),
        "latency_samples": d.latency_samples, "handoffs": d.handoffs, "progress": d.progress,
        "approved_share_label": _pct(approved / d.total_calls if d.total_calls else None),
        "twin_label": d.twin_label,
        "secretaries": [{"secretary_id": s.secretary_id, "calls": s.calls,
                         "reviewed": s.reviewed, "contributed": s.contributed,
                         "mean_rating_label": (f"{s.mean_rating:.1f}".replace(".", ",")
                                               if s.mean_rating is not None else "—")}
                        for s in d.secretaries],
    }
    return render(request, "dashboard.html", {"nav": "dashboard", "d": view})


def _short(value: object) -> str:
    if value in (None, {}, []):
        return ""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 300 else text[:300] + "…"


@router.get("/audit")
async def audit(request: Request, page: int = 1) -> Response:
    await require(request, Permission.VIEW_AUDIT)
    page = max(1, page)
    rows, more = await audit_page(request.app.state.store, page=page)
    entries = [{"at_local": local_time(r.at), "actor": r.actor, "action": r.action,
                "call_id": r.call_id, "before": _short(r.before), "after": _short(r.after)}
               for r in rows]
    return render(request, "audit.html", {"nav": "audit", "entries": entries, "page": page,
                                          "more": more})


@router.get("/users")
async def users(request: Request) -> Response:
    await require(request, Permission.MANAGE_USERS)
    listing = await request.app.state.accounts.list_users()
    ok = request.query_params.get("ok")
    return render(request, "users.html", {"nav": "users", "users": listing, "roles": ROLES,
                                          "flash": FLASH.get(ok or "")})


@router.post("/users")
async def add_user(request: Request) -> Response:
    user = await require(request, Permission.MANAGE_USERS)
    form = await read_form(request, csrf=user.csrf_token)
    try:
        await request.app.state.accounts.add_user(
            form_str(form, "username", max_len=200), form_str(form, "password", max_len=500),
            form_str(form, "role", max_len=20), actor=user.username)
    except AccountError as exc:
        raise BadInput(f"Compte non créé : {exc}") from exc
    return redirect("/users?ok=user")


@router.post("/users/{user_id}/disable")
async def disable_user(request: Request, user_id: int) -> Response:
    user = await require(request, Permission.MANAGE_USERS)
    await read_form(request, csrf=user.csrf_token)
    if user_id == user.id:
        raise BadInput("Vous ne pouvez pas désactiver votre propre compte.")
    try:
        await request.app.state.accounts.disable_user(user_id, actor=user.username)
    except AccountError as exc:
        raise BadInput(str(exc), status=404) from exc
    return redirect("/users?ok=disabled")


