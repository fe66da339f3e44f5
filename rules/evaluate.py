"""Evaluate one customer at one instant: which messages and tasks are due, consolidated.

1. Find the send slot: today if the send window is still open on a send day, else the next
   window opening. Every date question below is asked for that slot's local date.
2. Drop the customer if excluded or paused, and each invoice that must not be chased.
3. For each remaining invoice ladder, pick the most severe due stage per track (rules.ladder).
4. Messages: one per customer, at the most severe picked stage, listing every invoice with a
   pick, unless the customer already had its daily number of messages on that local day.
5. Tasks: likewise, one per customer per day, at the most severe picked task stage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from rules._tables import tables
from rules.actions import Decision, HeldInvoice, PlannedAction
from rules.calendar import BusinessCalendar
from rules.history import HistoryIndex, Track
from rules.ladder import Context, Pick, hold_reason, ladders, pick
from rules.policy import Policy
from rules.reasons import build_reason, lead_pick
from rules.views import (
    ActionHistory,
    CompanyContext,
    CoveredItem,
    CustomerView,
    InvoiceView,
    RuleInputError,
    require_aware,
)

# A person's work queue gets at most one new item per customer per day, whatever the policy.
MAX_TASKS_PER_CUSTOMER_PER_DAY = 1


def evaluate_customer(
    customer: CustomerView,
    invoices: Sequence[InvoiceView],
    history: ActionHistory,
    policy: Policy,
    company: CompanyContext,
    *,
    now: dt.datetime,
) -> Decision:
    """Decide what to send (and which tasks to open) for one customer at ``now``.

    Pure: the same inputs always give the same decision. Run it as often as you like; the
    idempotency keys and the history make repeated runs on one local day produce nothing new
    once their actions are in the ledger.

    Args:
        customer: the customer, with its overrides. Its ``policy_name``, if set, must equal
            ``policy.name``: the caller resolves per-customer policies and passes the right one.
        invoices: the customer's invoices (any status; only open, unpaid, undisputed, unpaused
            ones are chased). Linear cost in their number.
        history: the customer's past actions from the ledger (see ``rules.views`` for statuses).
        policy: the escalation policy to apply.
        company: time zone and holiday country of the company.
        now: the current instant, timezone-aware.

    Returns:
        A :class:`Decision` whose actions are planned for ``Decision.send_at`` on
        ``Decision.local_date`` (possibly none), plus why each held invoice is held.

    Raises:
        RuleInputError: naive ``now``, unknown zone or holiday country, duplicate invoice ids,
            or a customer whose ``policy_name`` is not ``policy.name``.
    """
    require_aware(now, "now")
    if customer.policy_name is not None and customer.policy_name != policy.name:
        raise RuleInputError(
            f"customer {customer.external_id} uses policy {customer.policy_name!r}, "
            f"but policy {policy.name!r} was passed"
        )
    calendar = BusinessCalendar.for_company(policy, company)
    today, send_at = calendar.slot(now, policy.send_window)
    ids = [inv.external_id for inv in invoices]
    if len(set(ids)) != len(ids):
        raise RuleInputError(f"customer {customer.external_id}: duplicate invoice ids")

    def decision(
        actions: Sequence[PlannedAction], held: Sequence[HeldInvoice], notes: Sequence[str]
    ) -> Decision:
        return Decision(
            customer.external_id, now, today, send_at, tuple(actions), tuple(held), tuple(notes)
        )

    if customer.excluded:
        return decision(
            (), [HeldInvoice(i, "customer_excluded") for i in ids], ["customer_excluded"]
        )
    if customer.paused_until is not None and customer.paused_until >= today:
        until = {"until": customer.paused_until.isoformat()}
        return decision(
            (), [HeldInvoice(i, "customer_paused", until) for i in ids], ["customer_paused"]
        )

    ctx = Context(
        policy, calendar, customer, HistoryIndex(history.records, policy), today, tables(policy)
    )
    picks: dict[Track, list[Pick]] = {"message": [], "task": []}
    held: list[HeldInvoice] = []
    for invoice in invoices:
        hold = hold_reason(invoice, today)
        if hold is not None:
            held.append(HeldInvoice(invoice.external_id, hold[0], hold[1]))
            continue
        found, next_due = False, None
        for ladder in ladders(invoice, today):
            for track in ("message", "task"):
                chosen, upcoming = pick(ladder, track, ctx)
                if chosen is not None:
                    picks[track].append(chosen)
                    found = True
                if upcoming is not None and (next_due is None or upcoming < next_due):
                    next_due = upcoming
        if not found:
            detail: dict[str, str | None] = {
                "next_stage_on": next_due.isoformat() if next_due else None
            }
            held.append(HeldInvoice(invoice.external_id, "nothing_due", detail))

    actions: list[PlannedAction] = []
    notes: list[str] = []
    limits: dict[Track, int] = {
        "message": policy.max_messages_per_customer_per_day,
        "task": MAX_TASKS_PER_CUSTOMER_PER_DAY,
    }
    for track, track_picks in picks.items():
        if not track_picks:
            continue
        if ctx.history.contacts_on(track, today) >= limits[track]:
            code = f"daily_{track}_limit"
            notes.append(code)
            for invoice_id in sorted({p.ladder.invoice.external_id for p in track_picks}):
                held.append(HeldInvoice(invoice_id, code, {"local_date": today.isoformat()}))
            continue
        actions.extend(_consolidate(customer, track_picks, track, today, send_at))
    return decision(actions, held, notes)


def _consolidate(
    customer: CustomerView,
    picks: Sequence[Pick],
    track: Track,
    today: dt.date,
    send_at: dt.datetime,
) -> list[PlannedAction]:
    """One action per channel of the most severe picked stage, covering every picked invoice."""
    stage = lead_pick(picks).stage
    invoice_ids = tuple(sorted({p.ladder.invoice.external_id for p in picks}))
    covered = tuple(
        sorted(
            (
                CoveredItem(
                    p.ladder.invoice.external_id, p.stage.id, p.source.anchor, p.source.anchor_date
                )
                for p in picks
            ),
            key=lambda c: (c.invoice_external_id, c.anchor_date, c.stage_id),
        )
    )
    channels = ("task",) if track == "task" else stage.message_channels
    return [
        PlannedAction(
            customer_external_id=customer.external_id,
            invoice_external_ids=invoice_ids,
            stage_id=stage.id,
            channel=channel,
            kind=track,
            tone=stage.tone,
            template=stage.template,
            task_kind=stage.task_kind if track == "task" else None,
            planned_for=send_at,
            local_date=today,
            covered=covered,
            # Built per action: each is persisted (and may be edited) on its own.
            reason=build_reason(picks, today, track),
        )
        for channel in channels
    ]
