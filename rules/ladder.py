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
from operator import itemgetter
from typing import Any

from rules._tables import Tables
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
    tables: Tables


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
    invoice, history, today = ladder.invoice, ctx.history, ctx.today
    inv_id = invoice.external_id
    floor = history.floor(inv_id, track, ladder.key)
    tried = history.has_attempts(inv_id, track)
    sources = ladder.sources
    due: list[tuple[int, Stage, Source, dt.date, str]] = []
    waiting: list[tuple[int, Stage, Source, dt.date]] = []
    # (stage id, why, detail): turned into the ``skipped`` dict only if something is picked.
    skips: list[tuple[str, str, Any]] = []
    next_due: dt.date | None = None
    rows = ctx.tables.message if track == "message" else ctx.tables.task
    for stage, sid, severity, anchor, offset, unit, delta, check_issue, cond, max_att in rows:
        for source in sources:
            if source.anchor == anchor:
                break
        else:
            continue
        if floor is not None and severity <= floor:
            # Attempts only matter for the reason: counted if something is picked.
            skips.append((sid, "covered", source.anchor_date if tried else None))
            continue
        attempts = history.attempts(inv_id, track, sid, source.anchor_date) if tried else 0
        if delta is not None:
            stage_date = source.anchor_date + delta
        else:
            stage_date = ctx.calendar.shift(source.anchor_date, offset, unit)  # type: ignore[arg-type]
        if check_issue and stage_date <= invoice.issue_date:
            # A "due soon" note on the day the invoice itself went out would just be noise.
            skips.append((sid, "before_issue_date", None))
            continue
        if cond is not None:
            failed = failed_condition(cond, invoice.currency, source.amount, ctx.customer)
            if failed is not None:
                skips.append((sid, "condition", failed))
                continue
        if attempts >= max_att:
            skips.append((sid, "max_attempts", attempts))
            continue
        if stage_date > today:
            skips.append((sid, "not_due", stage_date))
            waiting.append((severity, stage, source, stage_date))
            if next_due is None or stage_date < next_due:
                next_due = stage_date
            continue
        due.append((severity, stage, source, stage_date, "stage_due"))
    # "At least the next stage up": anything already due is that or firmer.
    promoted = None
    if not due and ladder.broken_promise is not None:
        promoted = _promotion(ladder, track, ctx, waiting)
    if promoted is not None:
        due.append(promoted)
        next_due = min((w[3] for w in waiting if w[1] is not promoted[1]), default=None)
    if not due:
        return None, next_due
    skipped: dict[str, dict[str, Any]] = {}
    for sid, why, detail in skips:
        if why == "not_due":
            skipped[sid] = {"why": "not_due", "due_on": detail.isoformat()}
        elif why == "covered":
            attempts = 0 if detail is None else history.attempts(inv_id, track, sid, detail)
            skipped[sid] = {
                "why": "already_covered" if attempts else "superseded_earlier",
                "attempts": attempts,
            }
        elif why == "condition":
            skipped[sid] = {"why": "condition", "condition": detail}
        elif why == "max_attempts":
            skipped[sid] = {"why": "max_attempts", "attempts": detail}
        else:
            skipped[sid] = {"why": why}
    if promoted is not None:
        skipped.pop(promoted[1].id, None)
    if len(due) > 1:
        due.sort(key=_first)  # severities are unique within a policy
    severity, stage, source, stage_date, rule = due[-1]
    superseded = tuple(d[1].id for d in due[:-1])
    for stage_id in superseded:
        skipped[stage_id] = {"why": "superseded", "by": stage.id}
    return Pick(ladder, stage, severity, source, stage_date, rule, superseded, skipped), next_due


_first = itemgetter(0)


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
