"""What every page needs: the context, the signed-in user, tenancy checks, CSRF, templates.

Tenancy is enforced here and nowhere else: pages ask :func:`connection_for` (404 unless the
user's current organisation was granted the connection) or filter by
:func:`visible_connection_ids`. A missing object and another organisation's object look the same
(404), so ids reveal nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlmodel import Session

from arsync.context import AppContext
from arsync.models import Connection
from arsync.models_web import Membership, Organisation, OrgConnection, User
from arsync.web import auth

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True))


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user as seen by one request, in the organisation they are looking at."""

    user_id: int
    email: str
    org_id: int
    role: str
    org_name: str = ""
    #: How many organisations the user belongs to (the switcher shows when more than one).
    org_count: int = 1


class NotSignedInError(Exception):
    """Raised by :func:`current_user`; the app turns it into a redirect to /login (or 401)."""

    def __init__(self, next_path: str) -> None:
        super().__init__("not signed in")
        self.next_path = next_path


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def _session_row(request: Request) -> Any:
    """The live session for this request's cookie (cached on the request), or None."""
    if not hasattr(request.state, "web_session"):
        ctx = get_ctx(request)
        with Session(ctx.engine, expire_on_commit=False) as db:
            request.state.web_session = auth.load_session(
                db, request.cookies.get(auth.SESSION_COOKIE), settings=ctx.settings,
                now=ctx.clock.now())
    return request.state.web_session


def current_user(request: Request) -> CurrentUser:
    """The signed-in user; otherwise :class:`NotSignedInError` (→ 303 to /login?next=…)."""
    cached = getattr(request.state, "user", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    row = _session_row(request)
    if row is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedInError(path)
    with Session(get_ctx(request).engine) as db:
        user = db.get(User, row.user_id)
        member = db.get(Membership, (row.user_id, row.org_id))
        org = db.get(Organisation, row.org_id)
        count = len(list(db.scalars(select(Membership.org_id)
                                    .where(Membership.user_id == row.user_id))))
    if user is None or member is None or org is None:
        raise NotSignedInError(request.url.path)
    request.state.user = CurrentUser(user_id=row.user_id, email=user.email, org_id=row.org_id,
                                     role=member.role, org_name=org.name, org_count=count)
    return request.state.user  # type: ignore[no-any-return]


def visible_connection_ids(session: Session, user: CurrentUser) -> set[int]:
    """Every connection the user's current organisation may see."""
    return set(session.scalars(select(OrgConnection.connection_id)
                               .where(OrgConnection.org_id == user.org_id)))


def connection_for(request: Request, user: CurrentUser, connection_id: int) -> Connection:
    """The connection, if the user's organisation may see it; 404 otherwise (also when absent)."""
    with Session(get_ctx(request).engine, expire_on_commit=False) as db:
        if db.get(OrgConnection, (user.org_id, connection_id)) is None:
            raise HTTPException(status_code=404)
        conn = db.get(Connection, connection_id)
    if conn is None:
        raise HTTPException(status_code=404)
    return conn


# -- CSRF ------------------------------------------------------------------------------------

def _csrf_basis(request: Request) -> str | None:
    row = _session_row(request)
    raw = request.cookies.get(auth.SESSION_COOKIE)
    if row is not None and raw:
        return f"session:{raw}"
    anon = request.cookies.get(auth.CSRF_COOKIE) or getattr(request.state, "new_csrf_cookie", None)
    return f"anon:{anon}" if anon else None


def csrf_token_for(request: Request) -> str:
    """The token forms on this page must carry (sets up the anonymous cookie if needed)."""
    basis = _csrf_basis(request)
    if basis is None:
        request.state.new_csrf_cookie = secrets.token_urlsafe(32)
        basis = f"anon:{request.state.new_csrf_cookie}"
    return auth.csrf_token(get_ctx(request).settings, basis)


async def verify_csrf(request: Request) -> None:
    """Dependency for every state-changing form POST: 403 unless the form's ``csrf_token`` (or
    an ``X-CSRF-Token`` header) is the token of this browser's session."""
    token = request.headers.get("x-csrf-token")
    if token is None:
        form = await request.form()
        value = form.get("csrf_token")
        token = value if isinstance(value, str) else None
    if not auth.csrf_matches(get_ctx(request).settings, _csrf_basis(request), token):
        raise HTTPException(status_code=403, detail="the form has expired; reload and retry")


def set_cookie(response: Any, request: Request, name: str, value: str, *,
               max_age: int | None = None) -> None:
    """Set a cookie with arsync's flags: HttpOnly, SameSite=Lax, Secure over https."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=auth.cookie_secure(get_ctx(request).settings))


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with ``request``, ``user`` (None when signed out) and ``csrf_token``."""
    user = context.setdefault("user", getattr(request.state, "user", None))
    if isinstance(user, CurrentUser) and user.org_count > 1 and "orgs" not in context:
        from arsync.web.accounts import memberships  # accounts imports nothing from here

        with Session(get_ctx(request).engine) as db:
            context["orgs"] = memberships(db, user.user_id)
    context["csrf_token"] = csrf_token_for(request)
    context["request"] = request
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    new = getattr(request.state, "new_csrf_cookie", None)
    if new and not request.cookies.get(auth.CSRF_COOKIE):
        set_cookie(response, request, auth.CSRF_COOKIE, new)
    return response


def login_redirect_target(next_path: str) -> str:
    return f"/login?next={quote(next_path, safe='/')}"


def safe_next(target: str | None) -> str:
    """Only same-site paths: ``//evil.example`` or ``https://…`` would be an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
