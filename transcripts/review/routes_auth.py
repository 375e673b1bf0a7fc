"""Login (rate limited, CSRF double-submit cookie) and logout."""

from __future__ import annotations

import logging
import math

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from transcripts.review.security import new_token, same_token
from transcripts.review.web import (
    SESSION_COOKIE,
    BadInput,
    CsrfFailed,
    form_str,
    read_form,
    redirect,
    render,
    user_of,
)

__all__ = ["LOGIN_CSRF_COOKIE", "router"]

logger = logging.getLogger(__name__)

router = APIRouter()

LOGIN_CSRF_COOKIE = "twin_review_login"


def _secure(request: Request) -> bool:
    return bool(request.app.state.settings.secure_cookies or request.url.scheme == "https")


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/calls"


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _login_page(request: Request, *, error: str | None = None, username: str | None = None,
                next_url: str = "/calls", status: int = 200) -> Response:
    token = new_token()
    response = render(request, "login.html", {"login_csrf": token, "error": error,
                                              "username": username, "next_url": next_url},
                      status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=_secure(request), path="/login", max_age=3600)
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_url=_safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request, csrf=None)
    if not same_token(form_str(form, "csrf_token", max_len=200),
                      request.cookies.get(LOGIN_CSRF_COOKIE)):
        raise CsrfFailed
    username = form_str(form, "username", max_len=200).strip()
    password = form_str(form, "password", max_len=500)
    next_url = _safe_next(form_str(form, "next", max_len=500))
    if not username or not password:
        raise BadInput("Identifiant et mot de passe sont nécessaires.")
    state = request.app.state
    limiter = state.limiter
    wait = limiter.retry_after(_client(request), username)
    if wait is not None:
        minutes = max(1, math.ceil(wait / 60))
        response = _login_page(
            request, username=username, next_url=next_url, status=429,
            error=f"Trop d'essais de connexion. Réessayez dans {minutes} minute(s).")
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    user = await state.accounts.authenticate(username, password)
    if user is None:
        limiter.record_failure(_client(request), username)
        await state.store.audit(actor=username[:200], action="login.failed", entity="user",
                                after={"client": _client(request)})
        return _login_page(request, username=username, next_url=next_url, status=401,
                           error="Identifiant ou mot de passe incorrect.")
    limiter.reset(_client(request), username)
    token, _current = await state.accounts.open_session(user)
    await state.store.audit(actor=user.username, action="login", entity="user",
                            entity_id=user.id)
    response = redirect(next_url)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=_secure(request), path="/",
                        max_age=state.settings.session_ttl_s)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    user = await user_of(request)
    await read_form(request, csrf=user.csrf_token)
    await request.app.state.accounts.close_session(user.session_id)
    await request.app.state.store.audit(actor=user.username, action="logout", entity="user",
                                        entity_id=user.id)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
