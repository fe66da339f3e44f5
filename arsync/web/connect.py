"""The OAuth connect flows (QuickBooks, Xero): authorize, callback, disconnect, launch.

The logic lives in :mod:`arsync.oauth_flow`; these routes only translate HTTP to it: who is
signed in, which browser session (the ``state`` is bound to it), and which page to show.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from arsync import oauth_flow
from arsync.errors import ConfigError, ConnectorError
from arsync.web import auth
from arsync.web.deps import (
    CurrentUser,
    NotSignedInError,
    connection_for,
    current_user,
    get_ctx,
    login_redirect_target,
    render,
    verify_csrf,
)

router = APIRouter()

LABELS = {"quickbooks": "QuickBooks", "xero": "Xero"}
#: Roles that may connect and disconnect companies (staff work the queue; they don't rewire it).
MANAGERS = frozenset({"owner", "accountant"})


def _provider(provider: str) -> str:
    if provider not in LABELS:
        raise HTTPException(status_code=404)
    return provider


def _error_page(request: Request, provider: str, message: str, status: int = 400) -> Response:
    return render(request, "connect_error.html", status_code=status, provider=provider,
                  provider_label=LABELS.get(provider, provider), message=message)


def _require_manager(user: CurrentUser) -> None:
    if user.role not in MANAGERS:
        raise HTTPException(status_code=403, detail="only an owner or accountant may do this")


@router.get("/connect/{provider}")
def connect_start(request: Request, provider: str,
                  user: Annotated[CurrentUser, Depends(current_user)],
                  reconnect: int | None = None) -> Response:
    """Send the browser to the provider's consent page (``?reconnect=<id>`` for a dead grant)."""
    provider = _provider(provider)
    _require_manager(user)
    if reconnect is not None:
        conn = connection_for(request, user, reconnect)  # 404 unless the org may see it
        if conn.provider != provider:
            raise HTTPException(status_code=404)
    ctx = get_ctx(request)
    try:
        url = oauth_flow.start_flow(
            ctx, provider, user_id=user.user_id, org_id=user.org_id,
            browser=oauth_flow.browser_key(request.cookies.get(auth.SESSION_COOKIE)),
            reconnect_connection_id=reconnect)
    except ConfigError as exc:
        return _error_page(request, provider, f"{LABELS[provider]} is not set up on this "
                                              f"server: {exc}", 503)
    return RedirectResponse(url, status_code=303)


@router.get("/connect/{provider}/callback")
def connect_callback(request: Request, provider: str,
                     user: Annotated[CurrentUser, Depends(current_user)],
                     state: str | None = None, code: str | None = None,
                     realmId: str | None = None,
                     error: str | None = None) -> Response:
    """The provider sends the browser back here, with a code or an error."""
    provider = _provider(provider)
    ctx = get_ctx(request)
    try:
        oauth_flow.finish_flow(
            ctx, provider, state=state, user_id=user.user_id,
            browser=oauth_flow.browser_key(request.cookies.get(auth.SESSION_COOKIE)),
            code=code, realm_id=realmId, error=error)
    except oauth_flow.ConnectFlowError as exc:
        return _error_page(request, provider, str(exc))
    except ConfigError as exc:
        return _error_page(request, provider, str(exc), 503)
    return RedirectResponse("/", status_code=303)


@router.post("/connections/{connection_id}/disconnect", dependencies=[Depends(verify_csrf)])
def connection_disconnect(request: Request, connection_id: int,
                          user: Annotated[CurrentUser, Depends(current_user)]) -> Response:
    """Revoke the grant at the provider and stop working with the company."""
    conn = connection_for(request, user, connection_id)
    _require_manager(user)
    try:
        oauth_flow.disconnect(get_ctx(request), conn.id or 0,
                              reason=f"disconnected by {user.email}")
    except ConnectorError as exc:
        return _error_page(request, conn.provider, f"{LABELS.get(conn.provider)} could not be "
                                                   f"reached to revoke access ({exc}); nothing "
                                                   "changed, try again", 502)
    return RedirectResponse("/", status_code=303)


@router.get("/launch/{provider}")
def launch(request: Request, provider: str) -> Response:
    """The marketplace's "Get app"/"Connect" button lands here: sign in first, then connect."""
    provider = _provider(provider)
    target = f"/connect/{provider}"
    try:
        current_user(request)
    except NotSignedInError:
        return RedirectResponse(login_redirect_target(target), status_code=303)
    return RedirectResponse(target, status_code=303)


@router.get("/disconnected/{provider}")
def disconnected(request: Request, provider: str,
                 realmId: str | None = None,
                 tenantId: str | None = None) -> Response:
    """The provider's disconnect URL: the person removed arsync on the provider's side."""
    provider = _provider(provider)
    confirmed = oauth_flow.confirm_disconnected(get_ctx(request), provider, realmId or tenantId)
    return render(request, "connect_disconnected.html", provider=provider,
                  provider_label=LABELS[provider], confirmed=confirmed)
