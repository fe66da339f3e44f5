"""The FastAPI application: one factory, so tests and ``arsync web`` build the same app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from arsync.context import AppContext
from arsync.web import connect, dashboard, payer, sessions, webhooks
from arsync.web.deps import STATIC_DIR, NotSignedInError, login_redirect_target


def create_app(ctx: AppContext) -> FastAPI:
    """The web app over ``ctx`` (kept on ``app.state.ctx`` for every request)."""
    app = FastAPI(title="arsync", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (sessions, dashboard, connect, webhooks, payer):
        app.include_router(module.router)

    @app.exception_handler(NotSignedInError)
    async def _to_login(request: Request, exc: NotSignedInError) -> Response:
        # Browsers go to the sign-in page and come back; scripts get a plain 401.
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(login_redirect_target(exc.next_path), status_code=303)
        return JSONResponse({"detail": "sign in first"}, status_code=401)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # No page may be framed (clickjacking on the approve buttons).
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response

    return app
