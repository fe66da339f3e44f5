"""The local mirror: tables for connections, their grants, and the books they mirror.

Every mirrored row is keyed by ``(connection_id, external_id)`` and written by upsert, so a sync
re-run after a crash converges instead of duplicating. Money columns are :class:`Money` (exact
Decimal) next to a currency code; datetimes are :class:`UTCDateTime` (aware).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from arsync.dbtypes import Money, UTCDateTime


def _money(nullable: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(Money(), nullable=nullable)


def _when(nullable: bool = True) -> Column:  # type: ignore[type-arg]
    return Column(UTCDateTime(), nullable=nullable)


class Credential(SQLModel, table=True):
    """An OAuth grant, encrypted; several Xero organisations share one."""

    __tablename__ = "credentials"

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=20)
    access_token_enc: str
    refresh_token_enc: str
    access_expires_at: datetime = Field(sa_column=_when(nullable=False))
    refresh_expires_at: datetime | None = Field(default=None, sa_column=_when())
    #: The refresh token before the last rotation, kept for Xero's 30-minute grace window.
    previous_refresh_token_enc: str | None = None
    rotated_at: datetime | None = Field(default=None, sa_column=_when())
    scope: str = ""
    #: Bumped on every refresh; lets a worker tell whether someone else refreshed meanwhile.
    version: int = 0
    #: A refresh in progress holds this lease; others wait instead of racing the provider.
    refresh_lease_until: datetime | None = Field(default=None, sa_column=_when())
    refresh_lease_owner: str | None = None
    dead_reason: str | None = None
    updated_at: datetime = Field(sa_column=_when(nullable=False))


class Connection(SQLModel, table=True):
    """One connected company: a QuickBooks realm or a Xero organisation."""

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("provider", "tenant_id"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=20)
    tenant_id: str = Field(max_length=64)
    name: str
    status: str = Field(default="active", max_length=20)  # active|needs_reconnect|disconnected
    status_reason: str | None = None
    credential_id: int | None = Field(default=None, foreign_key="credentials.id")
    timezone: str = "UTC"
    currency: str = Field(default="USD", max_length=3)
    country: str = Field(default="US", max_length=2)
    created_at: datetime = Field(sa_column=_when(nullable=False))
    last_synced_at: datetime | None = Field(default=None, sa_column=_when())
    #: Set when a sync had to stop early (rate budget spent); the scheduler retries after it.
    sync_deferred_until: datetime | None = Field(default=None, sa_column=_when())
    #: Pilot mode: planned messages wait for a person's approval before anything is sent.
    pilot_mode: bool = False
    #: The connection's own escalation policy (YAML, validated on save); None: the default.
    policy_yaml: str | None = None
    #: Where customers' replies go (Reply-To): the company's customer-facing address from the
    #: books when the provider has one (QuickBooks), else set by ``arsync reply-to``.
    reply_to: str | None = Field(default=None, max_length=254)


class SyncCursor(SQLModel, table=True):
    """How far one entity of one connection is known to be in sync."""

    __tablename__ = "sync_cursors"

    connection_id: int = Field(foreign_key="connections.id", primary_key=True)
    entity: str = Field(primary_key=True, max_length=20)
    synced_to: datetime | None = Field(default=None, sa_column=_when())
    full_sync_started_at: datetime | None = Field(default=None, sa_column=_when())
    updated_at: datetime = Field(sa_column=_when(nullable=False))


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("connection_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    external_id: str = Field(max_length=64)
    name: str
    email: str | None = None
    phone: str | None = None
    currency: str | None = Field(default=None, max_length=3)
    active: bool = True
    deleted: bool = False
    remote_updated_at: datetime | None = Field(default=None, sa_column=_when())
    seen_at: datetime = Field(sa_column=_when(nullable=False))


class Invoice(SQLModel, table=True):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("connection_id", "external_id"),
        Index("ix_invoices_open", "connection_id", "status", "due_date"),
        Index("ix_invoices_customer", "connection_id", "customer_external_id"),
        Index("ix_invoices_review", "connection_id", "status", "review_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    external_id: str = Field(max_length=64)
    number: str | None = None
    customer_external_id: str = Field(max_length=64)
    currency: str = Field(max_length=3)
    total: Decimal = Field(sa_column=_money())
    balance: Decimal = Field(sa_column=_money())
    exchange_rate: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    issue_date: date | None = None
    due_date: date | None = None
    status: str = Field(max_length=10)
    billing_email: str | None = None
    remote_version: str | None = None
    remote_updated_at: datetime | None = Field(default=None, sa_column=_when())
    seen_at: datetime = Field(sa_column=_when(nullable=False))
    #: The next local date the policy must look at this invoice's customer again; NULL means
    #: "now" (set by every sync upsert and by anything a person records about the customer).
    review_on: date | None = None
    #: The provider's online-payment link for this invoice, cached (see ``arsync.paylinks``).
    pay_url: str | None = None
    pay_url_checked_at: datetime | None = Field(default=None, sa_column=_when())


class Payment(SQLModel, table=True):
    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("connection_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    external_id: str = Field(max_length=64)
    customer_external_id: str | None = Field(default=None, max_length=64)
    currency: str = Field(max_length=3)
    amount: Decimal = Field(sa_column=_money())
    unapplied: Decimal = Field(sa_column=_money())
    paid_on: date | None = None
    status: str = Field(default="active", max_length=10)  # active|voided|deleted
    remote_updated_at: datetime | None = Field(default=None, sa_column=_when())
    seen_at: datetime = Field(sa_column=_when(nullable=False))


class Allocation(SQLModel, table=True):
    """Money a payment or credit note moved onto an invoice (or a payment onto a credit note)."""

    __tablename__ = "allocations"
    __table_args__ = (
        Index("ix_allocations_source", "connection_id", "source_type", "source_external_id"),
        Index("ix_allocations_target", "connection_id", "target_type", "target_external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    source_type: str = Field(max_length=12)  # payment|credit_note
    source_external_id: str = Field(max_length=64)
    target_type: str = Field(max_length=12)  # invoice|credit_note
    target_external_id: str = Field(max_length=64)
    amount: Decimal = Field(sa_column=_money())


class CreditNote(SQLModel, table=True):
    __tablename__ = "credit_notes"
    __table_args__ = (UniqueConstraint("connection_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    external_id: str = Field(max_length=64)
    number: str | None = None
    customer_external_id: str | None = Field(default=None, max_length=64)
    currency: str = Field(max_length=3)
    total: Decimal = Field(sa_column=_money())
    remaining: Decimal = Field(sa_column=_money())
    issue_date: date | None = None
    status: str = Field(max_length=10)
    remote_updated_at: datetime | None = Field(default=None, sa_column=_when())
    seen_at: datetime = Field(sa_column=_when(nullable=False))


# -- escalation: the action ledger and the records people keep ---------------------------------


class Action(SQLModel, table=True):
    """One planned message or task, persisted before anything is sent (the action ledger).

    ``idempotency_key`` is the connection id plus the rules' key (customer, stage, channel,
    sorted invoices, local date): the same plan inserted twice is one row. Statuses and their
    transitions are in :mod:`arsync.ledger`.
    """

    __tablename__ = "actions"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_actions_due", "status", "planned_for"),
        Index("ix_actions_customer", "connection_id", "customer_external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    idempotency_key: str = Field(max_length=100)
    customer_external_id: str = Field(max_length=64)
    #: JSON list of invoice external ids, sorted.
    invoice_ids_json: str
    stage: str = Field(max_length=64)
    channel: str = Field(max_length=20)
    kind: str = Field(max_length=10)  # message|task
    tone: str = Field(max_length=10)
    template: str = Field(max_length=128)
    task_kind: str | None = Field(default=None, max_length=10)
    recipient: str | None = None
    status: str = Field(max_length=20)
    #: Why the status is what it is (failed, cancelled, unknown, rejected), for people.
    status_reason: str | None = None
    planned_for: datetime = Field(sa_column=_when(nullable=False))
    local_date: date
    #: JSON of the rules' ``PlannedAction.covered`` (read back into history).
    covered_json: str
    #: JSON of the rules' ``reason`` (figures behind the action).
    reason_json: str
    explanation: str = ""
    #: Work items: higher first (amount overdue, days late, past lateness).
    priority: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    outcome_json: str | None = None
    message_id: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    claim_owner: str | None = Field(default=None, max_length=64)
    claim_expires_at: datetime | None = Field(default=None, sa_column=_when())
    sent_at: datetime | None = Field(default=None, sa_column=_when())
    completed_at: datetime | None = Field(default=None, sa_column=_when())
    created_at: datetime = Field(sa_column=_when(nullable=False))
    updated_at: datetime = Field(sa_column=_when(nullable=False))


class CustomerOverride(SQLModel, table=True):
    """A person's say on a customer: excluded from chasing, or paused until a date."""

    __tablename__ = "customer_overrides"

    connection_id: int = Field(foreign_key="connections.id", primary_key=True)
    customer_external_id: str = Field(primary_key=True, max_length=64)
    excluded: bool = False
    paused_until: date | None = None
    note: str | None = None
    updated_at: datetime = Field(sa_column=_when(nullable=False))


class InvoiceOverride(SQLModel, table=True):
    """A person's say on one invoice: paused until a date."""

    __tablename__ = "invoice_overrides"

    connection_id: int = Field(foreign_key="connections.id", primary_key=True)
    invoice_external_id: str = Field(primary_key=True, max_length=64)
    paused_until: date | None = None
    note: str | None = None
    updated_at: datetime = Field(sa_column=_when(nullable=False))


class Promise(SQLModel, table=True):
    """A promise to pay an invoice by a date; the newest one per invoice counts."""

    __tablename__ = "promises"
    __table_args__ = (Index("ix_promises_invoice", "connection_id", "invoice_external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    customer_external_id: str = Field(max_length=64)
    invoice_external_id: str = Field(max_length=64)
    promised_on: date
    amount: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    action_id: int | None = Field(default=None, foreign_key="actions.id")
    recorded_at: datetime = Field(sa_column=_when(nullable=False))


class Dispute(SQLModel, table=True):
    """An invoice the customer disputes; chasing it stops until resolved."""

    __tablename__ = "disputes"
    __table_args__ = (Index("ix_disputes_invoice", "connection_id", "invoice_external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    customer_external_id: str = Field(max_length=64)
    invoice_external_id: str = Field(max_length=64)
    reason: str
    action_id: int | None = Field(default=None, foreign_key="actions.id")
    opened_at: datetime = Field(sa_column=_when(nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=_when())
    resolution: str | None = None


class PaymentPlan(SQLModel, table=True):
    """Agreed instalments for an invoice; they replace its due-date stages.

    An instalment counts as paid once the invoice's balance has fallen by at least the sum of
    the instalments up to and including it (payments are matched in date order).
    """

    __tablename__ = "payment_plans"
    __table_args__ = (Index("ix_plans_invoice", "connection_id", "invoice_external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    customer_external_id: str = Field(max_length=64)
    invoice_external_id: str = Field(max_length=64)
    #: JSON list of {"date": ISO date, "amount": decimal string}, in date order.
    instalments_json: str
    balance_at_start: Decimal = Field(sa_column=_money())
    action_id: int | None = Field(default=None, foreign_key="actions.id")
    created_at: datetime = Field(sa_column=_when(nullable=False))
    cancelled_at: datetime | None = Field(default=None, sa_column=_when())


# Tables that live in their own modules (each imports helpers from here, so these come last).
from arsync import (  # noqa: E402, F401 - registers their tables on SQLModel.metadata
    models_delivery,
    models_notes,
    models_payer,
    models_sms,
    models_web,
    models_webhooks,
)
