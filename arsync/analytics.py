"""Receivables figures for the dashboard: aging buckets and DSO, per currency.

Pure functions over plain values (no database, no clock): the caller passes ``today`` in the
company's time zone. Amounts in different currencies are never added together; every result is
keyed by currency code. Money is :class:`~decimal.Decimal` throughout.

DSO (days sales outstanding) uses the standard formula::

    DSO = receivables now / credit sales over the period * days in the period

with the period the ``DSO_PERIOD_DAYS`` (90) days ending today, inclusive. "Credit sales" are the
totals of invoices *issued* in that period that are receivables (open or paid; drafts, voided and
deleted invoices are not sales). "Receivables now" is every open balance, whatever its issue
date: that is what the formula means, and why an old unpaid invoice pushes DSO up. With no
credit sales in the period, DSO is undefined (None), not zero or infinity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
DSO_PERIOD_DAYS = 90
ZERO = Decimal(0)
#: Statuses that are sales (a paid invoice was a credit sale too).
SALE_STATUSES = frozenset({"open", "paid"})


@dataclass(frozen=True)
class InvoiceFigures:
    """The few fields of an invoice the figures need."""

    currency: str
    total: Decimal
    balance: Decimal
    status: str
    issue_date: date | None
    due_date: date | None


def bucket_for(days_overdue: int) -> str:
    """``current`` when not past due (due today is not late), else the range it falls in."""
    if days_overdue <= 0:
        return "current"
    if days_overdue <= 30:
        return "1-30"
    if days_overdue <= 60:
        return "31-60"
    if days_overdue <= 90:
        return "61-90"
    return "90+"


def _is_receivable(inv: InvoiceFigures) -> bool:
    return inv.status == "open" and inv.balance > ZERO


def aging(invoices: Iterable[InvoiceFigures], today: date) -> dict[str, dict[str, Decimal]]:
    """Open balances by currency and bucket (every bucket present, zero when empty).

    An invoice without a due date is judged by its issue date (QuickBooks does the same: no
    terms means due on issue); with neither it counts as current.
    """
    out: dict[str, dict[str, Decimal]] = {}
    for inv in invoices:
        if not _is_receivable(inv):
            continue
        due = inv.due_date or inv.issue_date
        days = (today - due).days if due else 0
        row = out.setdefault(inv.currency, dict.fromkeys(BUCKETS, ZERO))
        row[bucket_for(days)] += inv.balance
    return dict(sorted(out.items()))


def receivables(invoices: Iterable[InvoiceFigures]) -> dict[str, Decimal]:
    """Total open balance per currency."""
    out: dict[str, Decimal] = {}
    for inv in invoices:
        if _is_receivable(inv):
            out[inv.currency] = out.get(inv.currency, ZERO) + inv.balance
    return dict(sorted(out.items()))


def credit_sales(invoices: Iterable[InvoiceFigures], start: date, end: date) -> dict[str, Decimal]:
    """Totals of sales invoices issued from ``start`` to ``end`` inclusive, per currency."""
    out: dict[str, Decimal] = {}
    for inv in invoices:
        if inv.status in SALE_STATUSES and inv.issue_date and start <= inv.issue_date <= end:
            out[inv.currency] = out.get(inv.currency, ZERO) + inv.total
    return dict(sorted(out.items()))


def dso(owed: Decimal, sales: Decimal, days: int) -> Decimal | None:
    """``owed / sales * days``, to one decimal place; None when there were no sales."""
    if days <= 0:
        raise ValueError("the DSO period must be at least one day long")
    if sales <= ZERO:
        return None
    return (owed / sales * days).quantize(Decimal("0.1"))


def dso_by_currency(invoices: Iterable[InvoiceFigures], today: date,
                    days: int = DSO_PERIOD_DAYS) -> dict[str, Decimal | None]:
    """DSO per currency over the ``days`` days ending ``today`` (see the module docstring)."""
    rows = list(invoices)
    start = today - timedelta(days=days - 1)
    owed = receivables(rows)
    sales = credit_sales(rows, start, today)
    return {cur: dso(owed.get(cur, ZERO), sales.get(cur, ZERO), days)
            for cur in sorted(set(owed) | set(sales))}
