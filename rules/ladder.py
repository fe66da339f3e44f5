"""Per-invoice escalation: which stage, if any, is due for one invoice on one local day.

An invoice climbs one or more *ladders*: the due-date ladder (joined by the promise-date stages
once a promise is broken), or, under a payment plan, one ladder per unpaid instalment. On each
ladder and track (message or task) the most severe due stage is the invoice's pick; the lesser
due stages are superseded. History keeps a *floor* per ladder, the highest severity already
covered, and nothing at or below it fires again: the rules never de-escalate and never burst.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rules.calendar import BusinessCalendar
from rules.history import HistoryIndex, LadderKey, Track
from rules.policy import Conditions, Policy, Stage
from rules.views import AnchorKind, CustomerView, InvoiceView, PromiseView


@dataclass(frozen=True, slots=True)
class Source:
    """A date stages are measured from, and the amount chased against it."""

    anchor: AnchorKind
    anchor_date: dt.date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Ladder:
    """One escalation ladder of one invoice."""

    invoice: InvoiceView
    key: LadderKey
    sources: tuple[Source, ...]
    broken_promise: PromiseView | None

    def source_for(self, anchor: AnchorKind) -> Source | None:
        """The source stages with this anchor are measured from, if the ladder has one."""
        return next((s for s in self.sources if s.anchor == anchor), None)


@dataclass(frozen=True, slots=True)
class Pick:
    """The stage an invoice ladder is due for now, and what happened to the other stages."""

    ladder: Ladder
    stage: Stage
    severity: int
    source: Source
    stage_date: dt.date
    rule: str  # "stage_due" | "broken_promise"
    superseded: tuple[str, ...]
    skipped: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a pick depends on besides the ladder."""

    policy: Policy
    calendar: BusinessCalendar
    customer: CustomerView
    history: HistoryIndex
    today: dt.date


def hold_reason(invoice: InvoiceView, today: dt.date) -> tuple[str, dict[str, Any]] | None:
    """Why this invoice must not be chased at all today, or None."""
    if invoice.status != "open":
        return str(invoice.status), {}  # str(): the mirror may pass its StrEnum
    if invoice.balance <= 0:
        return "paid", {"balance": str(invoice.balance)}
    if invoice.disputed:
        return "disputed", {}
    if invoice.paused_until is not None and invoice.paused_until >= today:
        return "invoice_paused", {"until": invoice.paused_until.isoformat()}
    if invoice.promise is not None and invoice.promise.date >= today:
        return "promise_pending", {"promise_date": invoice.promise.date.isoformat()}
    if invoice.plan is not None and not any(not i.paid for i in invoice.plan.instalments):
        return "plan_settled", {}
    return None


def ladders(invoice: InvoiceView, today: dt.date) -> tuple[Ladder, ...]:
    """The ladders a chaseable invoice climbs on ``today``."""
    promise = invoice.promise
    broken = promise if promise is not None and promise.date < today else None
    promise_source = (Source("promise_date", broken.date, invoice.balance),) if broken else ()
    if invoice.plan is None:
        due = Source("due_date", invoice.due_date, invoice.balance)
        return (Ladder(invoice, None, (due, *promise_source), broken),)
    by_date: dict[dt.date, Decimal] = defaultdict(Decimal)
    for instalment in invoice.plan.instalments:
        if not instalment.paid:
            by_date[instalment.date] += instalment.amount
    out = [
        # Never chase more than is actually open, whatever the plan says.
        Ladder(invoice, day, (Source("instalment_date", day, min(amount, invoice.balance)),), None)
        for day, amount in sorted(by_date.items())
        if amount > 0
    ]
    if broken:
        out.append(Ladder(invoice, None, promise_source, broken))
    return tuple(out)


def failed_condition(
    conditions: Conditions, currency: str, amount: Decimal, customer: CustomerView
) -> str | None:
    """The first condition that does not hold, as a short machine-readable text, or None."""
    if conditions.min_amount:
        threshold = conditions.min_amount.get(currency.upper(), conditions.min_amount.get("*"))
        if threshold is None:
            return f"min_amount: no threshold for {currency}"
        if amount < threshold:
            return f"min_amount: {currency} {amount} < {threshold}"
    if conditions.customer_tags_any and not customer.tags & conditions.customer_tags_any:
        return "customer_tags_any"
    if conditions.customer_tags_none and customer.tags & conditions.customer_tags_none:
        return "customer_tags_none"
    if conditions.segments and customer.segment not in conditions.segments:
        return "segments"
    if conditions.risk_levels and customer.risk not in conditions.risk_levels:
        return "risk_levels"
    return None


def pick(ladder: Ladder, track: Track, ctx: Context) -> tuple[Pick | None, dt.date | None]:
    """The most severe due stage of ``ladder`` on ``track``, and the next date a stage falls due."""
    invoice, policy = ladder.invoice, ctx.policy
    floor = ctx.history.floor(invoice.external_id, track, ladder.key)
    due: list[tuple[int, Stage, Source, dt.date, str]] = []
    waiting: list[tuple[int, Stage, Source, dt.date]] = []
    skipped: dict[str, dict[str, Any]] = {}
    for stage in policy.stages:
        if not (stage.has_task if track == "task" else stage.message_channels):
            continue
        source = ladder.source_for(stage.anchor)
        if source is None:
            continue
        severity = policy.severity(stage.id)
        assert severity is not None
        attempts = ctx.history.attempts(invoice.external_id, track, stage.id, source.anchor_date)
        if floor is not None and severity <= floor:
            why = "already_covered" if attempts else "superseded_earlier"
            skipped[stage.id] = {"why": why, "attempts": attempts}
            continue
        stage_date = ctx.calendar.shift(source.anchor_date, stage.offset, stage.offset_unit)
        if source.anchor == "due_date" and stage.offset <= 0 and stage_date <= invoice.issue_date:
            # A "due soon" note on the day the invoice itself went out would just be noise.
            skipped[stage.id] = {"why": "before_issue_date"}
            continue
        failed = failed_condition(stage.conditions, invoice.currency, source.amount, ctx.customer)
        if failed is not None:
            skipped[stage.id] = {"why": "condition", "condition": failed}
            continue
        if attempts >= stage.conditions.max_attempts:
            skipped[stage.id] = {"why": "max_attempts", "attempts": attempts}
            continue
        if stage_date > ctx.today:
            skipped[stage.id] = {"why": "not_due", "due_on": stage_date.isoformat()}
            waiting.append((severity, stage, source, stage_date))
            continue
        due.append((severity, stage, source, stage_date, "stage_due"))
    # "At least the next stage up": anything already due is that or firmer.
    promoted = None if due else _promotion(ladder, track, ctx, waiting)
    if promoted is not None:
        due.append(promoted)
        skipped.pop(promoted[1].id, None)
    next_due = min(
        (w[3] for w in waiting if promoted is None or w[1] is not promoted[1]), default=None
    )
    if not due:
        return None, next_due
    due.sort(key=lambda d: d[0])
    severity, stage, source, stage_date, rule = due[-1]
    superseded = tuple(d[1].id for d in due[:-1])
    for stage_id in superseded:
        skipped[stage_id] = {"why": "superseded", "by": stage.id}
    return Pick(ladder, stage, severity, source, stage_date, rule, superseded, skipped), next_due


def _promotion(
    ladder: Ladder, track: Track, ctx: Context, waiting: list[tuple[int, Stage, Source, dt.date]]
) -> tuple[int, Stage, Source, dt.date, str] | None:
    """After a broken promise with nothing due, the next stage up is due at once (only once)."""
    promise = ladder.broken_promise
    if promise is None or track != "message":
        return None
    last = ctx.history.last_message_date(ladder.invoice.external_id)
    if last is not None and last > promise.date:
        return None  # already chased since the promise broke: the ladder's own dates rule again
    candidates = [w for w in waiting if w[2].anchor == "due_date" and w[1].offset > 0]
    if not candidates:
        return None
    severity, stage, source, _ = min(candidates, key=lambda w: w[0])
    return severity, stage, source, promise.date + dt.timedelta(days=1), "broken_promise"
