"""Adding connections from a grant (CLI ``connect``, and later the web callback)."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlmodel import Session

from arsync import registry
from arsync.context import AppContext
from arsync.domain import TokenSet
from arsync.errors import AuthError, InputError
from arsync.models import Connection
from arsync.tokens import new_credential

log = logging.getLogger(__name__)


def connect_with_refresh_token(ctx: AppContext, provider: str, refresh_token: str, *,
                               tenant_id: str | None = None, name: str | None = None
                               ) -> list[Connection]:
    """Exchange ``refresh_token`` at once, store the rotated grant, and add its companies."""
    # Fail on a missing key *before* the exchange: the provider rotates the token, so a grant
    # exchanged but not storable would be lost for good.
    ctx.vault  # noqa: B018 - evaluated for its check
    oauth = registry.oauth_client(provider, ctx.settings, ctx.clock)
    try:
        tokens = oauth.refresh(refresh_token)
    except AuthError as exc:  # the token the person gave us is no good: bad input
        raise InputError(f"{provider} refused the refresh token: {exc}") from exc
    return add_connections(ctx, provider, tokens, tenant_id=tenant_id, name=name)


def add_connections(ctx: AppContext, provider: str, tokens: TokenSet, *,
                    tenant_id: str | None = None, name: str | None = None) -> list[Connection]:
    """Store a fresh grant and create (or re-activate) one connection per company it reaches."""
    now = ctx.clock.now()
    # The grant is stored before anything else can fail: the provider has already rotated it.
    with Session(ctx.engine, expire_on_commit=False) as s, s.begin():
        credential = new_credential(s, provider=provider, tokens=tokens, vault=ctx.vault, now=now)
    oauth = registry.oauth_client(provider, ctx.settings, ctx.clock)
    tenants = oauth.list_tenants(tokens.access_token, realm_id=tenant_id)
    if tenant_id is not None:
        tenants = [t for t in tenants if t.tenant_id == tenant_id]
        if not tenants:
            raise InputError(f"the grant does not reach {provider} company {tenant_id}")
    if not tenants:
        raise InputError(f"the {provider} grant reaches no company")

    connections = []
    with Session(ctx.engine, expire_on_commit=False) as s, s.begin():
        for tenant in tenants:
            conn = s.scalars(select(Connection).where(Connection.provider == provider)
                             .where(Connection.tenant_id == tenant.tenant_id)).first()
            if conn is None:
                conn = Connection(provider=provider, tenant_id=tenant.tenant_id, name=tenant.name,
                                  created_at=now)
                s.add(conn)
            conn.credential_id = credential.id
            conn.status, conn.status_reason = "active", None
            if name and len(tenants) == 1:
                conn.name = name
            connections.append(conn)
    for conn in connections:
        refresh_company(ctx, conn, keep_name=bool(name))
    return connections


def refresh_company(ctx: AppContext, conn: Connection, *, keep_name: bool = False) -> None:
    """Read the company's name, currency, country and time zone onto the connection."""
    info = ctx.connector_for(conn).fetch_company()
    with Session(ctx.engine, expire_on_commit=False) as s, s.begin():
        row = s.get(Connection, conn.id)
        assert row is not None
        if not keep_name:
            row.name = info.name
        row.currency, row.country, row.timezone = info.currency, info.country, info.timezone
        if info.email and not row.reply_to:  # a person's choice (arsync reply-to) stands
            row.reply_to = info.email
        conn.reply_to = row.reply_to
    conn.name = conn.name if keep_name else info.name
    conn.currency, conn.country, conn.timezone = info.currency, info.country, info.timezone
