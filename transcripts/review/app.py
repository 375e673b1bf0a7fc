"""The review app's FastAPI factory: ``create_app(store=..., settings=...)``.

Server-rendered pages (Jinja2), a small vanilla script for the audio player and shortcuts,
every asset served locally. Refusals are pages that say what happened and what to do:
401/303 to the login page, 403 for a role or a forged form, 409 for a stale edit, 400/413
for a malformed or oversized form; nothing typed is lost (the page shows it back).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

try:
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.staticfiles import StaticFiles
except ModuleNotFoundError as exc:  # pragma: no cover - the review extra is missing
    raise ModuleNotFoundError(
        "the review app needs FastAPI: pip install -e '.[review]'", name=exc.name) from exc

from transcripts.review.auth import Accounts
from transcripts.review.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from transcripts.review.routes_admin import router as admin_router
from transcripts.review.routes_auth import router as auth_router
from transcripts.review.routes_calls import router as calls_router
from transcripts.review.routes_edit import CallLocked
from transcripts.review.routes_edit import router as edit_router
from transcripts.review.security import LoginRateLimiter
from transcripts.review.settings import ReviewSettings
from transcripts.review.web import (
    BadInput,
    CsrfFailed,
    Forbidden,
    LoginRequired,
    kept_text,
    make_templates,
    read_form,
    redirect,
    render,
)
from transcripts.types import CallNotFound, StaleEditError

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(*, store: Any, settings: ReviewSettings | None = None) -> FastAPI:
    """The review app over ``store`` (a migrated :class:`transcripts.store.TranscriptStore`);
    no I/O happens here."""
    settings = settings or ReviewSettings()
    app = FastAPI(title="twin review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.settings = settings
    app.state.accounts = Accounts(store=store, session_ttl_s=settings.session_ttl_s)
    app.state.limiter = LoginRateLimiter(max_failures=settings.login_max_failures,
                                         window_s=settings.login_window_s)
    app.state.templates = make_templates()
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for router in (auth_router, calls_router, edit_router, admin_router):
        app.include_router(router)
    _install_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _problem(request: Request, status: int, heading: str, message: str, *,
             back: bool = True) -> Response:
    back_url = None
    call_id = request.path_params.get("call_id")
    if back and call_id is not None:
        back_url = f"/calls/{call_id}"
    return render(request, "error.html", {
        "heading": heading, "message": message, "kept_text": kept_text(request),
        "back_url": back_url, "back_label": "Revenir à l'appel (version actuelle)"},
        status=status)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect("/login?next=" + quote(target, safe=""))
        try:  # show back what was typed: the form is still unread
            await read_form(request, csrf=None)
        except Exception:
            logger.debug("unreadable form on an unauthenticated post", exc_info=True)
        return _problem(request, 401, "Session expirée",
                        "Vous n'êtes plus connecté(e) : rien n'a été enregistré. Reconnectez-"
                        "vous, puis refaites la modification.", back=False)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return _problem(request, 403, "Action non autorisée", exc.message, back=False)

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        return _problem(request, 403, "Formulaire refusé",
                        "Ce formulaire ne vient pas de votre session en cours (page trop "
                        "ancienne ou envoi falsifié) : rien n'a été enregistré. Rechargez la "
                        "page et recommencez.")

    @app.exception_handler(StaleEditError)
    async def stale(request: Request, exc: StaleEditError) -> Response:
        who = ""
        try:
            store = request.app.state.store
            last = await store.list_audit(call_id=exc.call_id, limit=1)
            if last:
                who = f" par {last[0].actor}"
            now = await store.get_call(exc.call_id, can_see_pii=False)
            if now is not None and now.status == "approved":
                who += ", qui l'a approuvé"
        except Exception:  # the refusal matters more than its details
            logger.exception("audit lookup failed")
        return _problem(request, 409, "Modifié entre-temps",
                        f"Cet appel a été modifié{who} depuis que vous avez ouvert la page "
                        f"(version {exc.expected} → {exc.actual}). Votre modification n'a pas "
                        "été enregistrée, pour ne rien écraser : revenez à l'appel pour voir la "
                        "version actuelle, puis refaites-la si elle est toujours utile.")

    @app.exception_handler(CallLocked)
    async def locked(request: Request, exc: CallLocked) -> Response:
        return _problem(request, 409, "Appel approuvé",
                        "Cet appel est approuvé : il ne peut plus être modifié. Rouvrez-le "
                        "(bouton « Rouvrir ») si une correction est nécessaire.")

    @app.exception_handler(CallNotFound)
    async def not_found(request: Request, exc: CallNotFound) -> Response:
        return _problem(request, 404, "Introuvable",
                        "Cet appel (ou cet élément de l'appel) n'existe pas ou plus.", back=False)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> Response:
        heading = {413: "Trop long", 404: "Introuvable", 409: "Impossible pour l'instant"}.get(
            exc.status, "Saisie refusée")
        return _problem(request, exc.status, heading, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _problem(request, 400, "Adresse invalide",
                        "Cette adresse ou ce formulaire est mal formé.", back=False)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return _problem(request, 404, "Page introuvable", "Cette page n'existe pas.",
                            back=False)
        if exc.status_code == 405:
            return _problem(request, 405, "Méthode refusée",
                            "Cette adresse ne s'utilise pas ainsi.", back=False)
        return _problem(request, exc.status_code, "Requête refusée", str(exc.detail),
                        back=False)
