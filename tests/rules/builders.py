"""Small builders for the rules tests: invoices, customers, history and clocks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from zoneinfo import ZoneInfo

from rules import (
    ActionHistory,
    ActionRecord,
    CompanyContext,
    CustomerView,
    Decision,
    InvoiceView,
    PlannedAction,
    Policy,
    default_policy,
    evaluate_customer,
    load_policy,
)

NY = "America/New_York"
LONDON = "Europe/London"
US = CompanyContext(timezone=NY, country="US")
UK = CompanyContext(timezone=LONDON, country="GB")
UTC_NO_HOLIDAYS = CompanyContext(timezone="UTC", country=None)

D = dt.date
DEFAULT_DUE = dt.date(2024, 1, 31)


def local(tz: str, y: int, m: int, d: int, h: int = 10, mi: int = 0) -> dt.datetime:
    """An aware datetime at local wall time in ``tz`` (10:00 by default: inside the window)."""
    return dt.datetime(y, m, d, h, mi, tzinfo=ZoneInfo(tz))


def ny(y: int, m: int, d: int, h: int = 10, mi: int = 0) -> dt.datetime:
    """New York local time."""
    return local(NY, y, m, d, h, mi)


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> dt.datetime:
    """UTC time."""
    return dt.datetime(y, m, d, h, mi, tzinfo=dt.UTC)


def invoice(
    external_id: str = "I1",
    *,
    due: dt.date = DEFAULT_DUE,
    issued: dt.date | None = None,
    balance: str = "100.00",
    total: str | None = None,
    currency: str = "USD",
    status: str = "open",
    **extra: object,
) -> InvoiceView:
    """An open invoice due on ``due``, issued 30 days earlier unless told otherwise."""
    return InvoiceView(
        external_id=external_id,
        number=f"N-{external_id}",
        currency=currency,
        total=Decimal(total if total is not None else balance),
        balance=Decimal(balance),
        issue_date=issued or due - dt.timedelta(days=30),
        due_date=due,
        status=status,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def customer(external_id: str = "C1", **extra: object) -> CustomerView:
    """A plain customer."""
    return CustomerView(external_id=external_id, name=f"Customer {external_id}", **extra)  # type: ignore[arg-type]


def history(*records: ActionRecord) -> ActionHistory:
    """A history made of ``records``."""
    return ActionHistory(tuple(records))


def record(
    stage_id: str,
    invoice_ids: Sequence[str],
    day: dt.date,
    status: str = "sent",
    channel: str = "email",
) -> ActionRecord:
    """A legacy-style record without per-invoice detail."""
    return ActionRecord(stage_id, channel, tuple(invoice_ids), day, status)


def evaluate(
    invoices: Iterable[InvoiceView],
    now: dt.datetime,
    *,
    past: ActionHistory | None = None,
    policy: Policy | None = None,
    company: CompanyContext = US,
    cust: CustomerView | None = None,
) -> Decision:
    """evaluate_customer with the test defaults."""
    return evaluate_customer(
        cust or customer(),
        tuple(invoices),
        past or ActionHistory(),
        policy or default_policy(),
        company,
        now=now,
    )


def feed(
    past: ActionHistory, actions: Iterable[PlannedAction], status: str = "sent"
) -> ActionHistory:
    """``past`` plus the records the ledger would hold for ``actions``."""
    return past.extended(tuple(a.to_record(status) for a in actions))


def simple_policy(stages_yaml: str, **top: str) -> Policy:
    """A policy from a stages block; extra top-level keys as raw YAML values."""
    header = "\n".join(f"{k}: {v}" for k, v in top.items())
    return load_policy(f"name: test\n{header}\nstages:\n{stages_yaml}")


def stage_ids(decision: Decision) -> list[tuple[str, str]]:
    """``(stage_id, channel)`` of each action, in order."""
    return [(a.stage_id, a.channel) for a in decision.actions]


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every date from ``first`` to ``last`` inclusive."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def run_daily(
    invoices: Sequence[InvoiceView],
    dates: Iterable[dt.date],
    *,
    past: ActionHistory | None = None,
    policy: Policy | None = None,
    company: CompanyContext = US,
    cust: CustomerView | None = None,
    hour: int = 10,
) -> tuple[list[PlannedAction], ActionHistory]:
    """Evaluate at ``hour`` local time on each date, feeding every action back as sent."""
    tz = company.timezone or "UTC"
    past = past or ActionHistory()
    out: list[PlannedAction] = []
    for day in dates:
        decision = evaluate(
            invoices,
            local(tz, day.year, day.month, day.day, hour),
            past=past,
            policy=policy,
            company=company,
            cust=cust,
        )
        out.extend(decision.actions)
        past = feed(past, decision.actions)
    return out, past


def summary(actions: Iterable[PlannedAction]) -> list[tuple[dt.date, str, str]]:
    """``(local_date, stage_id, channel)`` of each action."""
    return [(a.local_date, a.stage_id, a.channel) for a in actions]
