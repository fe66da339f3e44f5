"""Webhooks: received events (for de-duplication) and OAuth connect state.

Tables here are registered by the import at the bottom of :mod:`arsync.models`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from arsync.models import _when


class OAuthState(SQLModel, table=True):
    """A connect flow in progress: the ``state`` sent to the provider, single-use, 10 minutes.

    ``browser_hash`` binds it to the browser that started it (a cookie only that browser holds),
    so a callback URL replayed from elsewhere, or a forged one, is refused before any exchange.
    """

    __tablename__ = "oauth_states"

    state: str = Field(primary_key=True, max_length=64)
    provider: str = Field(max_length=20)
    user_id: int
    org_id: int
    browser_hash: str = Field(max_length=64)
    redirect_uri: str
    #: The PKCE verifier (Xero), encrypted: whoever holds it can redeem an intercepted code.
    code_verifier_enc: str | None = None
    #: A ``needs_reconnect`` connection this flow re-connects (the same row is kept).
    reconnect_connection_id: int | None = None
    created_at: datetime = Field(sa_column=_when(nullable=False))
    expires_at: datetime = Field(sa_column=_when(nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=_when())


class WebhookEvent(SQLModel, table=True):
    """One change a provider told us about, stored once (``dedupe_key``) and processed once.

    ``status``: ``pending`` (a targeted refresh is due), ``processing`` (claimed until
    ``claim_until``), ``done``, ``ignored`` (unknown company or an entity arsync does not
    mirror), ``failed`` (gave up; the periodic sync still catches the change).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("provider", "dedupe_key"),
        Index("ix_webhook_events_due", "status", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=20)
    dedupe_key: str = Field(max_length=128)
    tenant_id: str = Field(max_length=64)
    connection_id: int | None = Field(default=None, foreign_key="connections.id")
    #: The provider's own name for the record kind (``Invoice``, ``INVOICE``, ``invoice``).
    entity: str = Field(max_length=40)
    entity_id: str = Field(max_length=64)
    operation: str = Field(max_length=20)
    occurred_at: datetime | None = Field(default=None, sa_column=_when())
    received_at: datetime = Field(sa_column=_when(nullable=False))
    status: str = Field(default="pending", max_length=12)
    attempts: int = 0
    claim_owner: str | None = Field(default=None, max_length=64)
    claim_until: datetime | None = Field(default=None, sa_column=_when())
    processed_at: datetime | None = Field(default=None, sa_column=_when())
    error: str | None = None
