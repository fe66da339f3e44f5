"""The browser connect flows (authorization code) and disconnecting, independent of the web layer.

Start: a random ``state`` is stored server-side, bound to the signed-in user and to their browser
session (the hash of the session cookie), single-use and good for 10 minutes; Xero also gets
PKCE S256 (the verifier is stored encrypted). Intuit does not document PKCE for QuickBooks, so it
is not sent there (API_FACTS §1); the ``state`` and the confidential client secret protect it.

Callback: the ``state`` is consumed with a conditional UPDATE *before* anything else (a reused,
expired, forged or foreign ``state`` stops the flow with nothing stored), then the code is
exchanged and the grant stored encrypted by :func:`arsync.connect.add_connections`: QuickBooks
names the company in the callback (``realmId``); Xero's grant may reach several organisations,
each becoming a connection sharing the one credential. Each connection is then granted to the
user's organisation. A connection that needed reconnecting keeps its row (same provider and
tenant id), so its history stays attached.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlmodel import Session

from arsync import registry
from arsync.connect import add_connections
from arsync.context import AppContext
from arsync.errors import AuthError, ConnectorError, InputError
from arsync.models import Connection, Credential
from arsync.models_webhooks import OAuthState
from connectors.xero.auth import make_pkce_pair

log = logging.getLogger(__name__)

PROVIDERS = ("quickbooks", "xero")
STATE_TTL = timedelta(minutes=10)
#: Providers that take PKCE. Intuit's OAuth documentation does not offer it for QuickBooks.
PKCE_PROVIDERS = frozenset({"xero"})


class ConnectFlowError(InputError):
    """The connect flow cannot go on; the message is fit to show the person."""


def browser_key(session_cookie: str | None) -> str:
    """What binds a ``state`` to one browser session: the hash of its session cookie."""
    if not session_cookie:
        raise ConnectFlowError("sign in before connecting a company")
    return hashlib.sha256(session_cookie.encode("utf-8")).hexdigest()


def callback_uri(ctx: AppContext, provider: str) -> str:
    """The redirect URI registered with the provider app (exact match is required there)."""
    return f"{ctx.settings.public_url.rstrip('/')}/connect/{provider}/callback"


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ConnectFlowError(f"unknown provider {provider!r}")


def start_flow(ctx: AppContext, provider: str, *, user_id: int, org_id: int, browser: str,
               reconnect_connection_id: int | None = None) -> str:
    """Store a fresh ``state`` (and PKCE verifier) and return the provider's consent URL."""
    _check_provider(provider)
    oauth = registry.oauth_client(provider, ctx.settings, ctx.clock)  # ConfigError if unset
    now = ctx.clock.now()
    state = secrets.token_urlsafe(32)
    verifier = challenge = None
    if provider in PKCE_PROVIDERS:
        verifier, challenge = make_pkce_pair()
    redirect_uri = callback_uri(ctx, provider)
    with Session(ctx.engine) as s, s.begin():
        # Old, finished states are no use to anyone; keep the table small as we go.
        s.execute(OAuthState.__table__.delete().where(  # type: ignore[attr-defined]
            OAuthState.expires_at < now - STATE_TTL))
        s.add(OAuthState(state=state, provider=provider, user_id=user_id, org_id=org_id,
                         browser_hash=browser, redirect_uri=redirect_uri,
                         code_verifier_enc=ctx.vault.encrypt(verifier) if verifier else None,
                         reconnect_connection_id=reconnect_connection_id, created_at=now,
                         expires_at=now + STATE_TTL))
    return oauth.authorization_url(redirect_uri=redirect_uri, state=state,
                                   code_challenge=challenge)


def consume_state(ctx: AppContext, provider: str, state: str | None, *, user_id: int,
                  browser: str) -> OAuthState:
    """Use up ``state`` once; a clear :class:`ConnectFlowError` when it cannot be used."""
    now = ctx.clock.now()
    if not state:
        raise ConnectFlowError("the provider sent no state; start connecting again")
    with Session(ctx.engine, expire_on_commit=False) as s, s.begin():
        row = s.get(OAuthState, state)
        if row is None or row.provider != provider:
            raise ConnectFlowError("this connect link is not one arsync started; start again")
        if row.used_at is not None:
            raise ConnectFlowError("this connect link was already used; start again")
        if row.expires_at <= now:
            raise ConnectFlowError("this connect link expired (10 minutes); start again")
        if not (secrets.compare_digest(row.browser_hash, browser) and row.user_id == user_id):
            raise ConnectFlowError("this connect link was started in another session; "
                                   "start again")
        taken = s.execute(update(OAuthState).where(OAuthState.state == state)
                          .where(OAuthState.used_at.is_(None))  # type: ignore[union-attr]
                          .values(used_at=now))
        if taken.rowcount != 1:  # a concurrent callback got there first
            raise ConnectFlowError("this connect link was already used; start again")
    return row


def finish_flow(ctx: AppContext, provider: str, *, state: str | None, user_id: int,
                browser: str, code: str | None, realm_id: str | None = None,
                error: str | None = None) -> list[Connection]:
    """Verify the callback, exchange the code, store the grant and its companies.

    Raises:
        ConnectFlowError: bad/expired/reused state, the person declined, or the exchange failed;
            nothing is stored in any of these cases.
    """
    from arsync.web.accounts import grant_connection  # the web layer's tenancy rules

    _check_provider(provider)
    row = consume_state(ctx, provider, state, user_id=user_id, browser=browser)
    if error:
        reason = "you declined access" if error == "access_denied" else f"error {error!r}"
        raise ConnectFlowError(f"{_label(provider)} did not connect: {reason}")
    if not code:
        raise ConnectFlowError(f"{_label(provider)} sent no authorization code")
    if provider == "quickbooks" and not realm_id:
        raise ConnectFlowError("QuickBooks did not say which company was connected (realmId)")
    verifier = ctx.vault.decrypt(row.code_verifier_enc) if row.code_verifier_enc else None
    oauth = registry.oauth_client(provider, ctx.settings, ctx.clock)
    try:
        tokens = oauth.exchange_code(code=code, redirect_uri=row.redirect_uri,
                                     code_verifier=verifier)
    except ConnectorError as exc:
        log.warning("%s code exchange failed: %s", provider, exc)
        raise ConnectFlowError(f"{_label(provider)} refused the authorization code; "
                               "start connecting again") from exc
    try:
        conns = add_connections(ctx, provider, tokens,
                                tenant_id=realm_id if provider == "quickbooks" else None)
    except (ConnectorError, InputError) as exc:
        raise ConnectFlowError(f"{_label(provider)} connected, but reading the company failed: "
                               f"{exc}") from exc
    now = ctx.clock.now()
    with Session(ctx.engine) as s, s.begin():
        for conn in conns:
            grant_connection(s, row.org_id, conn.id or 0, now=now)
    log.info("user %s connected %s companies %s", user_id, provider,
             [c.tenant_id for c in conns])
    return conns


def _label(provider: str) -> str:
    return {"quickbooks": "QuickBooks", "xero": "Xero"}.get(provider, provider)


def _mark_disconnected(ctx: AppContext, conn: Connection, reason: str, *,
                       grant_revoked: bool) -> None:
    with Session(ctx.engine) as s, s.begin():
        s.execute(update(Connection).where(Connection.id == conn.id)
                  .values(status="disconnected", status_reason=reason))
        if grant_revoked and conn.credential_id is not None:
            s.execute(update(Credential)
                      .where(Credential.id == conn.credential_id)  # type: ignore[arg-type]
                      .values(dead_reason=reason, updated_at=ctx.clock.now()))


def disconnect(ctx: AppContext, connection_id: int, *,
               reason: str = "disconnected in arsync") -> None:
    """Revoke at the provider, then mark the connection ``disconnected``.

    QuickBooks: the grant covers one company, so it is revoked. Xero: the organisation's
    connection is deleted (``DELETE /connections/{id}``), and the grant is revoked when no other
    organisation still uses it. A grant the provider already considers dead is simply marked.

    Raises:
        TransientError: the provider could not be reached; nothing was marked, try again.
    """
    conn = ctx.connection(connection_id)
    if conn.status == "disconnected":
        return
    if conn.credential_id is None:
        _mark_disconnected(ctx, conn, reason, grant_revoked=False)
        return
    with Session(ctx.engine) as s:
        others = s.scalar(select(func.count()).select_from(Connection)
                          .where(Connection.credential_id == conn.credential_id)
                          .where(Connection.id != conn.id)
                          .where(Connection.status != "disconnected")) or 0
    oauth = registry.oauth_client(conn.provider, ctx.settings, ctx.clock)
    revoke = conn.provider == "quickbooks" or others == 0
    try:
        if conn.provider == "xero":
            access = ctx.tokens_for(conn).access_token()
            oauth.remove_connection(access, conn.tenant_id)  # type: ignore[attr-defined]
        if revoke:
            oauth.revoke(_refresh_token(ctx, conn.credential_id))
    except AuthError as exc:  # the grant is already dead at the provider: nothing to revoke
        log.info("connection %s: grant already dead (%s); marking it disconnected",
                 connection_id, exc)
        revoke = True
    _mark_disconnected(ctx, conn, reason, grant_revoked=revoke)


def _refresh_token(ctx: AppContext, credential_id: int) -> str:
    with Session(ctx.engine) as s:
        cred = s.get(Credential, credential_id)
    if cred is None:
        raise InputError(f"credential {credential_id} is gone")
    return ctx.vault.decrypt(cred.refresh_token_enc)


def confirm_disconnected(ctx: AppContext, provider: str, tenant_id: str | None) -> bool:
    """The provider says a person disconnected the app on their side: check, then mark.

    The landing URL can be opened by anyone, so it is not taken on trust: the grant is tried
    (one API call); only when the provider refuses it is the connection marked ``disconnected``.
    """
    if not tenant_id:
        return False
    with Session(ctx.engine) as s:
        conn = s.scalars(select(Connection).where(Connection.provider == provider)
                         .where(Connection.tenant_id == tenant_id)).first()
    if conn is None or conn.status == "disconnected":
        return conn is not None
    try:
        ctx.connector_for(conn).fetch_company()
    except (AuthError, InputError) as exc:
        _mark_disconnected(ctx, conn, f"disconnected in {_label(provider)}: {exc}",
                           grant_revoked=True)
        return True
    except ConnectorError as exc:
        log.warning("could not confirm the disconnect of %s %s: %s", provider, tenant_id, exc)
        return False
    return False


def purge_states(ctx: AppContext, now: datetime) -> int:
    """Delete states that expired more than a TTL ago (housekeeping)."""
    with Session(ctx.engine) as s, s.begin():
        result = s.execute(OAuthState.__table__.delete().where(  # type: ignore[attr-defined]
            OAuthState.expires_at < now - STATE_TTL))
    return int(result.rowcount or 0)
