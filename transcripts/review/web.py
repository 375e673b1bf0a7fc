"""Shared plumbing of the review app's routes: the request's user, permission and CSRF
checks, form parsing with clear refusals, and page rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from transcripts.review.auth import CurrentUser
from transcripts.review.permissions import Permission
from transcripts.review.security import same_token
from transcripts.review.vocab import (
    ACTION_LABELS,
    CATEGORY_LABELS,
    FLAG_LABELS,
    OUTCOME_LABELS,
    PII_LABELS,
    ROLE_LABELS,
    SPAN_STATUS_LABELS,
    SPEAKER_LABELS,
    STATE_LABELS,
)

__all__ = ["SESSION_COOKIE", "BadInput", "CsrfFailed", "Forbidden", "LoginRequired",
           "form_int", "form_str", "kept_text", "make_templates", "no_content", "read_form",
           "redirect", "render", "require", "user_of"]

SESSION_COOKIE = "twin_review_session"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class LoginRequired(Exception):
    """No valid session."""


class Forbidden(Exception):
    def __init__(self, message: str = "Votre rôle ne permet pas cette action.") -> None:
        super().__init__(message)
        self.message = message


class CsrfFailed(Exception):
    """A form post without this session's CSRF token (forged, or from a stale page)."""


class BadInput(Exception):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.globals.update(
        state_labels=STATE_LABELS, category_labels=CATEGORY_LABELS, outcome_labels=OUTCOME_LABELS,
        flag_labels=FLAG_LABELS, pii_labels=PII_LABELS, speaker_labels=SPEAKER_LABELS,
        span_status_labels=SPAN_STATUS_LABELS, action_labels=ACTION_LABELS,
        role_labels=ROLE_LABELS)
    return templates


def render(request: Request, name: str, context: dict[str, Any] | None = None, *,
           status: int = 200) -> HTMLResponse:
    app_state = request.app.state
    ctx = {"settings": app_state.settings, "user": getattr(request.state, "user", None),
           "nav": None, "flash": None}
    ctx.update(context or {})
    response: HTMLResponse = app_state.templates.TemplateResponse(request, name, ctx,
                                                                  status_code=status)
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def user_of(request: Request) -> CurrentUser:
    """The signed-in user, or :class:`LoginRequired`."""
    user = getattr(request.state, "user", None)
    if user is None:
        user = await request.app.state.accounts.resolve(request.cookies.get(SESSION_COOKIE))
        if user is None:
            raise LoginRequired
        request.state.user = user
    return user  # type: ignore[no-any-return]


async def require(request: Request, permission: Permission) -> CurrentUser:
    user = await user_of(request)
    if not user.can(permission):
        raise Forbidden
    return user


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_form(request: Request, *, csrf: str | None) -> FormData:
    """The posted form; refuses anything but a form (400), files (400), and a form without
    the right CSRF token (403). ``csrf=None`` skips the token check (done by the caller)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _FORM_TYPES:
        raise BadInput("Requête refusée : seuls les formulaires de la page sont acceptés.")
    try:
        form = await request.form(max_files=0, max_fields=300, max_part_size=64 * 1024)
    except HTTPException as exc:
        raise BadInput(f"Formulaire illisible : {exc.detail}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput("Formulaire illisible.") from exc
    request.state.form = form
    if csrf is not None and not same_token(_str(form.get("csrf_token")), csrf):
        raise CsrfFailed
    return form


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def form_str(form: FormData, name: str, *, max_len: int = 4000, required: bool = False) -> str:
    value = form.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadInput(f"Le champ « {name} » doit être du texte.")
    if len(value) > max_len:
        raise BadInput(f"Le champ « {name} » dépasse {max_len} caractères : rien n'a été "
                       "enregistré.", status=413)
    if required and not value.strip():
        raise BadInput(f"Le champ « {name} » est vide.")
    return value


def form_int(form: FormData, name: str, *, required: bool = True) -> int | None:
    raw = form_str(form, name, max_len=20).strip()
    if not raw:
        if required:
            raise BadInput(f"Le champ « {name} » manque.")
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadInput(f"Le champ « {name} » doit être un nombre entier.") from None


def kept_text(request: Request) -> str | None:
    """What the user typed in a refused form (so a refusal never loses their work)."""
    form = getattr(request.state, "form", None)
    if form is None:
        return None
    parts = [form.get(k) for k in ("text", "comment", "args", "phrase")]
    texts = [p for p in parts if isinstance(p, str) and p.strip()]
    return "\n\n".join(texts) or None


def no_content() -> Response:
    return Response(status_code=204)
