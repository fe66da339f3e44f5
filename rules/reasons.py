"""Machine-readable reasons for actions, and the one-sentence explanation the dashboard shows.

``reason`` keys (all JSON-safe; money as decimal strings, dates as ISO strings):

* ``rule``: ``stage_due`` or ``broken_promise`` (for the lead invoice); ``catch_up``: True when
  lesser due stages were superseded instead of sent in a burst;
* ``stage``, ``severity``, ``tone``, ``track``, ``offset``, ``offset_unit``, ``local_date``;
* ``anchor``, ``anchor_date``, ``days_offset`` (local date minus anchor date), ``stage_date``:
  for the *lead* invoice, the longest-waiting one among those at the action's stage;
* ``consolidated`` (invoice count), ``totals`` (currency -> amount chased);
* ``invoices``: one entry per invoice line with its own stage, figures, ``superseded`` stages and
  ``skipped`` stages (stage id -> why: not_due with due_on, condition, max_attempts,
  already_covered (sent, or tried max_attempts times), superseded_earlier, before_issue_date).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rules.actions import PlannedAction
from rules.ladder import Pick


def lead_pick(picks: Sequence[Pick]) -> Pick:
    """The pick at the most severe stage that has waited longest (ties: invoice id)."""
    top = max(p.severity for p in picks)
    return min(
        (p for p in picks if p.severity == top),
        key=lambda p: (p.stage_date, p.ladder.invoice.external_id),
    )


def build_reason(picks: Sequence[Pick], today: dt.date, track: str) -> dict[str, Any]:
    """The ``reason`` dict of a consolidated action built from ``picks``."""
    lead = lead_pick(picks)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    lines = []
    for p in sorted(picks, key=lambda p: (p.ladder.invoice.external_id, p.source.anchor_date)):
        inv, promise = p.ladder.invoice, p.ladder.broken_promise
        totals[inv.currency] += p.source.amount
        lines.append(
            {
                "invoice": inv.external_id,
                "number": inv.number,
                "currency": inv.currency,
                "balance": str(inv.balance),
                "total": str(inv.total),
                "amount": str(p.source.amount),
                "due_date": inv.due_date.isoformat(),
                "days_overdue": (today - inv.due_date).days,
                "stage": p.stage.id,
                "rule": p.rule,
                "anchor": p.source.anchor,
                "anchor_date": p.source.anchor_date.isoformat(),
                "days_offset": (today - p.source.anchor_date).days,
                "stage_date": p.stage_date.isoformat(),
                "promise_date": promise.date.isoformat() if promise else None,
                "promise_recorded_at": promise.recorded_at.isoformat() if promise else None,
                "superseded": list(p.superseded),
                "skipped": p.skipped,
            }
        )
    ids = {p.ladder.invoice.external_id for p in picks}
    return {
        "rule": lead.rule,
        "catch_up": any(p.superseded for p in picks),
        "stage": lead.stage.id,
        "severity": lead.severity,
        "tone": lead.stage.tone,
        "track": track,
        "offset": lead.stage.offset,
        "offset_unit": lead.stage.offset_unit,
        "local_date": today.isoformat(),
        "anchor": lead.source.anchor,
        "anchor_date": lead.source.anchor_date.isoformat(),
        "days_offset": (today - lead.source.anchor_date).days,
        "stage_date": lead.stage_date.isoformat(),
        "lead_invoice": lead.ladder.invoice.external_id,
        "consolidated": len(ids),
        "totals": {cur: str(amount) for cur, amount in sorted(totals.items())},
        "invoices": lines,
    }


_CHANNEL_WORDS = {"email": "Email", "sms": "SMS", "provider_email": "Invoice email"}
_TASK_WORDS = {"call": "Call task", "letter": "Letter task", "agency": "Collections hand-off task"}


def explain(action: PlannedAction) -> str:
    """One sentence saying why ``action`` happens, built from its ``reason``."""
    r: Mapping[str, Any] = action.reason
    if action.kind == "task":
        what = _TASK_WORDS.get(str(action.task_kind), "Task")
    else:
        what = _CHANNEL_WORDS.get(action.channel, action.channel)
    count = int(r["consolidated"])
    money = ", ".join(f"{cur} {Decimal(amt):,.2f}" for cur, amt in r["totals"].items())
    subject = f"{count} invoice{'s' if count != 1 else ''} ({money})"
    lead = next(line for line in r["invoices"] if line["invoice"] == r["lead_invoice"])
    sentence = (
        f"{what} at stage {r['stage']} ({r['tone']}) on {r['local_date']} for {subject} "
        f"because {_why(r, lead)}"
    )
    superseded = sum(len(line["superseded"]) for line in r["invoices"])
    if superseded:
        sentence += (
            f"; {superseded} lesser due stage{'s' if superseded != 1 else ''} superseded, not sent"
        )
    if count > 1:
        sentence += f"; one {'task' if action.kind == 'task' else 'message'} covers all {count}"
    return sentence + "."


def _why(r: Mapping[str, Any], lead: Mapping[str, Any]) -> str:
    number = lead["number"]
    days = int(r["days_offset"])
    if r["rule"] == "broken_promise" or r["anchor"] == "promise_date":
        return f"the promise to pay invoice {number} by {lead['promise_date']} was broken"
    if r["anchor"] == "instalment_date":
        amount = f"{lead['currency']} {Decimal(lead['amount']):,.2f}"
        what = f"the instalment of {amount} on invoice {number}"
        return f"{what} {_timing(days, 'due', r['anchor_date'])}"
    return f"invoice {number} {_timing(days, 'due', r['anchor_date'])}"


def _timing(days: int, word: str, anchor_date: str) -> str:
    if days > 0:
        return f"is {days} day{'s' if days != 1 else ''} past its {word} date {anchor_date}"
    if days < 0:
        return f"is {word} in {-days} day{'s' if days != -1 else ''} ({anchor_date})"
    return f"is {word} today ({anchor_date})"
