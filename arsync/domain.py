"""Provider-neutral value types that cross the connector boundary.

Connectors turn SDK objects and JSON into these and nothing else; the mirror, the rules and the
web app never see a provider's own shapes. Money is always ``Decimal`` with its currency, and
every datetime is timezone-aware.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal("0")


class InvoiceStatus(StrEnum):
    """An invoice's state in the mirror (``overdue`` is derived: open and past due)."""

    DRAFT = "draft"  # Xero DRAFT/SUBMITTED: not yet a receivable, never chased
    OPEN = "open"
    PAID = "paid"
    VOIDED = "voided"
    DELETED = "deleted"


class Entity(StrEnum):
    """The record kinds a connector syncs; also the sync-cursor keys."""

    CUSTOMERS = "customers"
    INVOICES = "invoices"
    PAYMENTS = "payments"
    CREDIT_NOTES = "credit_notes"


def require_aware(value: datetime, what: str) -> datetime:
    """Return ``value`` if it carries a UTC offset, else raise (naive datetimes are bugs)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class TokenSet:
    """An OAuth grant as the provider last returned it."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None
    scope: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require_aware(self.access_expires_at, "access_expires_at")

    def __repr__(self) -> str:  # tokens must never reach a log line
        return f"TokenSet(access_expires_at={self.access_expires_at.isoformat()}, <redacted>)"


@dataclass(frozen=True, slots=True)
class Tenant:
    """One company behind a grant: a QuickBooks realm or a Xero organisation."""

    tenant_id: str
    name: str
    tenant_type: str = "ORGANISATION"


@dataclass(frozen=True, slots=True)
class CompanyInfo:
    """What the rules need to know about the company itself."""

    name: str
    currency: str
    country: str
    timezone: str
    #: The address the company talks to its customers from (None: the provider has none).
    email: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteCustomer:
    external_id: str
    name: str
    email: str | None
    phone: str | None
    currency: str | None
    active: bool
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Application:
    """Money moved from a payment or credit note onto a document."""

    target_type: str  # "invoice" or "credit_note"
    target_external_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class RemoteInvoice:
    external_id: str
    number: str | None
    customer_external_id: str
    customer_name: str | None
    currency: str
    total: Decimal
    balance: Decimal
    issue_date: date | None
    due_date: date | None
    status: InvoiceStatus
    updated_at: datetime | None
    billing_email: str | None = None
    exchange_rate: Decimal | None = None
    version: str | None = None  # QuickBooks SyncToken; None for Xero


@dataclass(frozen=True, slots=True)
class RemotePayment:
    external_id: str
    customer_external_id: str | None
    currency: str
    amount: Decimal
    unapplied: Decimal
    paid_on: date | None
    voided: bool
    updated_at: datetime | None
    applications: tuple[Application, ...] = ()


@dataclass(frozen=True, slots=True)
class RemoteCreditNote:
    external_id: str
    number: str | None
    customer_external_id: str | None
    currency: str
    total: Decimal
    remaining: Decimal
    issue_date: date | None
    status: str  # "open", "applied", "voided", "draft", "deleted"
    updated_at: datetime | None
    applications: tuple[Application, ...] = ()


Record = RemoteCustomer | RemoteInvoice | RemotePayment | RemoteCreditNote


@dataclass(frozen=True, slots=True)
class SyncPage:
    """One unit of sync work, applied to the mirror in one transaction.

    ``cursor``, when set, is stored with the page: the entity is then known to be in sync up to
    that instant, so a sync killed after this page resumes from there. ``full_listing_done`` ends a
    full listing: every live record of the entity was in the pages before it, so any record of
    that entity not seen since the listing began has gone from the books.
    """

    entity: Entity
    records: Sequence[Record] = ()
    deleted_ids: Sequence[str] = ()
    cursor: datetime | None = None
    full_listing_done: bool = False


@dataclass
class SyncStats:
    """What one connection's sync did (the contract's ``sync --json`` fields)."""

    customers: int = 0
    invoices: int = 0
    payments: int = 0
    credit_notes: int = 0
    api_calls: int = 0
    full: bool = False
    deferred: list[str] = field(default_factory=list)

    def count(self, entity: Entity, n: int) -> None:
        setattr(self, entity.value, getattr(self, entity.value) + n)
