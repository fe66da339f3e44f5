"""Sign-up, sign-in, sign-out, the organisation switcher and the health check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import text
from sqlmodel import Session

from arsync.errors import InputError
from arsync.models_web import Membership, Organisation, WebSession
from arsync.web import accounts, auth
from arsync.web.deps import (
    CurrentUser,
    current_user,
    get_ctx,
    render,
    safe_next,
    set_cookie,
    verify_csrf,
)

router = APIRouter()


def _signed_in(request: Request, *, user_id: int, org_id: int, target: str) -> Response:
    ctx = get_ctx(request)
    with Session(ctx.engine) as db:
        raw = auth.start_session(db, user_id=user_id, org_id=org_id, settings=ctx.settings,
                                 now=ctx.clock.now(),
                                 replaces=request.cookies.get(auth.SESSION_COOKIE))
    response = RedirectResponse(safe_next(target), status_code=303)
    set_cookie(response, request, auth.SESSION_COOKIE, raw,
               max_age=ctx.settings.web_session_max_hours * 3600)
    return response


@router.get("/healthz")
def healthz(request: Request) -> Response:
    """Liveness plus a database round trip (a load balancer should not route to a broken DB)."""
    try:
        with get_ctx(request).engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception:  # any database failure means "not healthy"
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", next=safe_next(next), error=None, email="")


@router.post("/login", dependencies=[Depends(verify_csrf)])
def login(request: Request, email: Annotated[str, Form()], password: Annotated[str, Form()],
          next: Annotated[str, Form()] = "/") -> Response:
    ctx = get_ctx(request)
    ip = request.client.host if request.client else None
    with Session(ctx.engine) as db:
        try:
            user = accounts.authenticate(db, email, password, ip=ip, settings=ctx.settings,
                                         now=ctx.clock.now())
        except accounts.LoginThrottledError as exc:
            response = render(request, "login.html", status_code=429, next=safe_next(next),
                              error=str(exc), email=email)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except accounts.BadCredentialsError as exc:
            return render(request, "login.html", status_code=401, next=safe_next(next),
                          error=str(exc), email=email)
        orgs = accounts.memberships(db, user.id or 0)
        user_id = user.id or 0
    if not orgs:
        return render(request, "login.html", status_code=403, next="/", email=email,
                      error="this account belongs to no organisation; ask its owner")
    return _signed_in(request, user_id=user_id, org_id=orgs[0][0].id or 0, target=next)


@router.get("/signup")
def signup_page(request: Request) -> Response:
    if not get_ctx(request).settings.web_signup_enabled:
        raise HTTPException(status_code=404)
    return render(request, "signup.html", error=None, email="", org_name="")


@router.post("/signup", dependencies=[Depends(verify_csrf)])
def signup(request: Request, email: Annotated[str, Form()], password: Annotated[str, Form()],
           org_name: Annotated[str, Form()]) -> Response:
    """A new organisation with its first user as owner."""
    ctx = get_ctx(request)
    if not ctx.settings.web_signup_enabled:
        raise HTTPException(status_code=404)
    now = ctx.clock.now()
    try:
        if not org_name.strip():
            raise InputError("the organisation needs a name")
        with Session(ctx.engine) as db, db.begin():
            # Always a new organisation: signing up must never join an existing one by name.
            org = Organisation(name=org_name.strip(), created_at=now)
            db.add(org)
            db.flush()
            user = accounts.new_user(db, email, password, now=now)
            accounts.add_membership(db, user.id or 0, org.id or 0, "owner", now=now)
            user_id, org_id = user.id or 0, org.id or 0
    except InputError as exc:
        return render(request, "signup.html", status_code=400, error=str(exc), email=email,
                      org_name=org_name)
    return _signed_in(request, user_id=user_id, org_id=org_id, target="/")


@router.post("/logout", dependencies=[Depends(verify_csrf)])
def logout(request: Request) -> Response:
    with Session(get_ctx(request).engine) as db:
        auth.end_session(db, request.cookies.get(auth.SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


@router.post("/org", dependencies=[Depends(verify_csrf)])
def switch_org(request: Request, user: Annotated[CurrentUser, Depends(current_user)],
               org_id: Annotated[int, Form()]) -> Response:
    """Look at another organisation the user belongs to (accountants); 404 for any other."""
    ctx = get_ctx(request)
    with Session(ctx.engine) as db, db.begin():
        if db.get(Membership, (user.user_id, org_id)) is None:
            raise HTTPException(status_code=404)
        row = db.get(WebSession, auth.hash_session_id(request.cookies[auth.SESSION_COOKIE]))
        if row is None:
            raise HTTPException(status_code=404)
        row.org_id = org_id
    return RedirectResponse("/", status_code=303)
