"""The typed context every message and note template is rendered against.

Templates see exactly the names in :data:`CONTEXT_KEYS` (documented in ``templates/README.md``);
anything else is an unknown variable, rejected when a company saves an override.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Protocol


def _require_decimal(what: str, value: object) -> None:
    # Money is Decimal end to end: a float here would already have lost cents.
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")


@dataclass(frozen=True)
class CompanyCtx:
    """The creditor: who the message is from and how to reach them."""

    name: str
    email: str | None = None
    phone: str | None = None
    locale: str = "en_US"


@dataclass(frozen=True)
class CustomerCtx:
    """The payer; ``locale`` None means "use the company's"."""

    name: str
    locale: str | None = None


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice concerned; ``days_overdue`` is negative while it is not yet due."""

    number: str
    currency: str
    amount: Decimal
    balance: Decimal
    due_date: date
    days_overdue: int
    pay_url: str | None = None

    def __post_init__(self) -> None:
        _require_decimal(f"invoice {self.number} amount", self.amount)
        _require_decimal(f"invoice {self.number} balance", self.balance)

    @property
    def partly_paid(self) -> bool:
        return self.balance < self.amount


class InvoiceLike(Protocol):
    """What :func:`line_from` reads (``rules.InvoiceView`` has it)."""

    @property
    def number(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def total(self) -> Decimal: ...
    @property
    def balance(self) -> Decimal: ...
    @property
    def due_date(self) -> date: ...


def line_from(invoice: InvoiceLike, *, today: date, pay_url: str | None = None) -> InvoiceLine:
    """An :class:`InvoiceLine` from a mirror/rules invoice, days counted to ``today``."""
    return InvoiceLine(invoice.number, invoice.currency, invoice.total, invoice.balance,
                       invoice.due_date, (today - invoice.due_date).days, pay_url)


@dataclass(frozen=True)
class Total:
    """What the customer owes in one currency, over the invoices concerned."""

    currency: str
    amount: Decimal
    count: int


@dataclass(frozen=True)
class EventCtx:
    """What happened, for a write-back note (None in customer messages)."""

    on: date
    channel: str | None = None
    recipient: str | None = None
    promise_date: date | None = None
    amount: Decimal | None = None
    currency: str | None = None
    instalments: int | None = None
    reason: str | None = None
    by: str | None = None


@dataclass(frozen=True)
class MessageContext:
    """Everything a template may use; build one per rendered message."""

    company: CompanyCtx
    customer: CustomerCtx
    invoices: tuple[InvoiceLine, ...]
    today: date
    stage: str = ""
    tone: str = "friendly"
    pay_portal_url: str | None = None
    signature: str | None = None
    unsubscribe_url: str | None = None
    event: EventCtx | None = None

    def __post_init__(self) -> None:
        # Oldest first: the most overdue invoice is the one the reader must see.
        ordered = tuple(sorted(self.invoices, key=lambda i: (i.due_date, i.number)))
        object.__setattr__(self, "invoices", ordered)

    @property
    def totals(self) -> tuple[Total, ...]:
        """One total per currency (sorted by code); currencies are never added together."""
        sums: dict[str, Decimal] = defaultdict(Decimal)
        counts: dict[str, int] = defaultdict(int)
        for inv in self.invoices:
            sums[inv.currency] += inv.balance
            counts[inv.currency] += 1
        return tuple(Total(c, sums[c], counts[c]) for c in sorted(sums))

    def locale_for(self, kind: str) -> str:
        """Notes are read by the company's staff; messages by the customer."""
        if kind == "note":
            return self.company.locale
        return self.customer.locale or self.company.locale

    def as_template_vars(self, kind: str) -> dict[str, Any]:
        """The names a template sees (keep in step with CONTEXT_KEYS and the README)."""
        return {
            "company": self.company,
            "customer": self.customer,
            "invoices": self.invoices,
            "totals": self.totals,
            "count": len(self.invoices),
            "max_days_overdue": max((i.days_overdue for i in self.invoices), default=0),
            "today": self.today,
            "stage": self.stage,
            "tone": self.tone,
            "pay_portal_url": self.pay_portal_url,
            "signature": self.signature or self.company.name,
            "unsubscribe_url": self.unsubscribe_url,
            "event": self.event,
            "locale": self.locale_for(kind),
        }


CONTEXT_KEYS: frozenset[str] = frozenset({
    "company", "customer", "invoices", "totals", "count", "max_days_overdue", "today", "stage",
    "tone", "pay_portal_url", "signature", "unsubscribe_url", "event", "locale"})


def sample_contexts(kind: str) -> list[MessageContext]:
    """Representative contexts an override must render against: rich, bare and huge."""
    today = date(2026, 3, 16)
    event = EventCtx(on=today, channel="email", recipient="accounts.payable@example.com",
                     promise_date=today + timedelta(days=10), amount=Decimal("1250.00"),
                     currency="USD", instalments=3, reason="Goods arrived damaged", by="Alice")
    rich = MessageContext(
        company=CompanyCtx("Acme Supplies Ltd", "billing@acme.example", "+1 555 0100", "en_US"),
        customer=CustomerCtx("Globex Corporation", "en_GB"),
        invoices=(
            InvoiceLine("INV-1001", "USD", Decimal("1250.00"), Decimal("1250.00"),
                        today - timedelta(days=14), 14, "https://pay.example/inv-1001"),
            InvoiceLine("INV-1002", "USD", Decimal("800.00"), Decimal("300.50"),
                        today - timedelta(days=3), 3, None),
            InvoiceLine("INV-1003", "EUR", Decimal("99.99"), Decimal("99.99"),
                        today + timedelta(days=3), -3, "https://pay.example/inv-1003"),
        ),
        today=today, stage="overdue_14", tone="firm",
        pay_portal_url="https://arsync.example/p/abc123", signature="Alice, Accounts",
        unsubscribe_url="https://arsync.example/unsubscribe/tok",
        event=event if kind == "note" else None)
    bare = MessageContext(
        company=CompanyCtx("Acme"), customer=CustomerCtx("Bob"),
        invoices=(InvoiceLine("1", "USD", Decimal("0.01"), Decimal("0.01"), today, 0),),
        today=today, event=EventCtx(on=today) if kind == "note" else None)
    huge = MessageContext(
        company=CompanyCtx("A" * 120, "x" * 60 + "@example.com", "+44 20 7946 0000", "en_GB"),
        customer=CustomerCtx("C" * 120, "de_DE"),
        invoices=tuple(InvoiceLine(f"INV-{n:06d}", "EUR" if n % 2 else "GBP",
                                   Decimal("123456.78"), Decimal("123456.78"),
                                   today - timedelta(days=n), n, None) for n in range(1, 51)),
        today=today, stage="final_90", tone="final",
        event=EventCtx(on=today, channel="email", recipient="r" * 200 + "@example.com",
                       promise_date=today, amount=Decimal("9999999.99"), currency="EUR",
                       instalments=12, reason="R" * 500, by="B" * 100)
        if kind == "note" else None)
    return [rich, bare, huge]


__all__ = ["CONTEXT_KEYS", "CompanyCtx", "CustomerCtx", "EventCtx", "InvoiceLike",
           "InvoiceLine", "MessageContext", "Total", "line_from", "sample_contexts"]
