"""People's work: task priority from the mirror, and the outcomes a completed task records.

Priority (higher first) = amount overdue * (1 + days late / 30) * (1 + share of the customer's
paid invoices that were paid after their due date). Amounts are converted to the home currency
with the invoice's exchange rate when the books give one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session

from arsync.errors import InputError
from arsync.ledger import mark_for_review, transition
from arsync.models import Action, Allocation, Dispute, Invoice, Payment, PaymentPlan, Promise
from arsync.views import CustomerBundle

CENT = Decimal("0.01")


# Built once: a pass runs it for every connection with a task to score.
_Q_LAST_PAID = (
    select(Invoice.customer_external_id, Invoice.due_date,
           func.max(Payment.paid_on).label("paid_on"))
    .join(Allocation, and_(Allocation.connection_id == Invoice.connection_id,
                           Allocation.target_type == "invoice",
                           Allocation.target_external_id == Invoice.external_id))
    .join(Payment, and_(Payment.connection_id == Allocation.connection_id,
                        Allocation.source_type == "payment",
                        Payment.external_id == Allocation.source_external_id))
    .where(Invoice.connection_id == bindparam("cid"), Invoice.status == "paid")
    .where(Invoice.customer_external_id.in_(bindparam("ids", expanding=True)))
    .group_by(Invoice.customer_external_id, Invoice.external_id, Invoice.due_date))


def late_shares(session: Session, connection_id: int,
                customer_ids: Iterable[str]) -> dict[str, Decimal]:
    """Per customer: the share of its paid invoices whose last payment came after the due date."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    db = session.connection()
    for i in range(0, len(ids), 500):  # keep every IN list far below any driver's limit
        for customer, due, paid_on in db.execute(_Q_LAST_PAID,
                                                 {"cid": connection_id, "ids": ids[i:i + 500]}):
            counts[customer][1] += 1
            if due is not None and paid_on is not None and paid_on > due:
                counts[customer][0] += 1
    return {c: (Decimal(late) / Decimal(total)).quantize(CENT)
            for c, (late, total) in counts.items() if total}


def priority(bundle: CustomerBundle, invoice_ids: Iterable[str], today: date,
             late_share: Decimal) -> Decimal:
    """The work-queue score of a task covering ``invoice_ids`` (see the module docstring)."""
    views = {i.external_id: i for i in bundle.invoices}
    amount, days = Decimal(0), 0
    for inv_id in invoice_ids:
        inv = views.get(inv_id)
        if inv is None:
            continue
        amount += inv.balance * bundle.exchange_rates.get(inv_id, Decimal(1))
        days = max(days, (today - inv.due_date).days)
    score = amount * (1 + Decimal(max(days, 0)) / 30) * (1 + late_share)
    return score.quantize(CENT)


# -- records people keep --------------------------------------------------------------------------

def _invoice(session: Session, connection_id: int, invoice_id: str) -> Invoice:
    inv = session.scalar(select(Invoice).where(Invoice.connection_id == connection_id,
                                               Invoice.external_id == invoice_id))
    if inv is None:
        raise InputError(f"connection {connection_id} has no invoice {invoice_id!r}")
    return inv


def record_promise(session: Session, connection_id: int, invoice_id: str, *, on: date,
                   amount: Decimal | None, now: datetime, action_id: int | None = None) -> Promise:
    """A promise to pay ``invoice_id`` by ``on``; chasing holds through that date."""
    inv = _invoice(session, connection_id, invoice_id)
    if amount is not None and amount <= 0:
        raise InputError("a promised amount must be positive")
    row = Promise(connection_id=connection_id, customer_external_id=inv.customer_external_id,
                  invoice_external_id=invoice_id, promised_on=on, amount=amount,
                  action_id=action_id, recorded_at=now)
    session.add(row)
    session.flush()
    mark_for_review(session, connection_id, [inv.customer_external_id])
    return row


def open_dispute(session: Session, connection_id: int, invoice_id: str, *, reason: str,
                 now: datetime, action_id: int | None = None) -> Dispute:
    """Stop chasing ``invoice_id`` until the dispute is resolved."""
    inv = _invoice(session, connection_id, invoice_id)
    if not reason.strip():
        raise InputError("a dispute needs a reason")
    row = Dispute(connection_id=connection_id, customer_external_id=inv.customer_external_id,
                  invoice_external_id=invoice_id, reason=reason.strip(), action_id=action_id,
                  opened_at=now)
    session.add(row)
    session.flush()
    mark_for_review(session, connection_id, [inv.customer_external_id])
    return row


def resolve_dispute(session: Session, connection_id: int, invoice_id: str, *, resolution: str,
                    now: datetime) -> int:
    """Resolve every open dispute of ``invoice_id``; chasing resumes. Returns how many."""
    inv = _invoice(session, connection_id, invoice_id)
    rows = list(session.scalars(select(Dispute).where(
        Dispute.connection_id == connection_id, Dispute.invoice_external_id == invoice_id,
        Dispute.resolved_at.is_(None))))  # type: ignore[union-attr]
    if not rows:
        raise InputError(f"invoice {invoice_id} has no open dispute")
    for row in rows:
        row.resolved_at, row.resolution = now, resolution
    mark_for_review(session, connection_id, [inv.customer_external_id])
    return len(rows)


def agree_plan(session: Session, connection_id: int, invoice_id: str,
               instalments: list[tuple[date, Decimal]], *, now: datetime,
               action_id: int | None = None) -> PaymentPlan:
    """Replace the invoice's due-date chasing with instalments (earlier plans are cancelled)."""
    inv = _invoice(session, connection_id, invoice_id)
    if not instalments:
        raise InputError("a payment plan needs at least one instalment")
    if any(a <= 0 for _, a in instalments):
        raise InputError("instalment amounts must be positive")
    total = sum((a for _, a in instalments), Decimal(0))
    if total != inv.balance:
        raise InputError(f"instalments add up to {total}, but invoice {invoice_id} has "
                         f"{inv.balance} open")
    for old in session.scalars(select(PaymentPlan).where(
            PaymentPlan.connection_id == connection_id,
            PaymentPlan.invoice_external_id == invoice_id,
            PaymentPlan.cancelled_at.is_(None))):  # type: ignore[union-attr]
        old.cancelled_at = now
    row = PaymentPlan(connection_id=connection_id, customer_external_id=inv.customer_external_id,
                      invoice_external_id=invoice_id, balance_at_start=inv.balance,
                      instalments_json=json.dumps([{"date": d.isoformat(), "amount": str(a)}
                                                   for d, a in sorted(instalments)]),
                      action_id=action_id, created_at=now)
    session.add(row)
    session.flush()
    mark_for_review(session, connection_id, [inv.customer_external_id])
    return row


def complete_task(session: Session, action_id: int, *, outcome: str | None,
                  details: dict[str, Any], now: datetime) -> Action:
    """Mark a task done, recording its outcome (promise, dispute, plan) where it belongs."""
    row = session.get(Action, action_id)
    if row is None or row.kind != "task":
        raise InputError(f"no task with id {action_id}")
    invoices = json.loads(row.invoice_ids_json)
    target = details.get("invoice") or (invoices[0] if len(invoices) == 1 else None)
    if outcome in ("promise", "dispute", "plan") and target is None:
        raise InputError("the task covers several invoices: name one with --invoice")
    if target is not None and target not in invoices:
        raise InputError(f"invoice {target} is not part of task {action_id}")
    if outcome == "promise":
        record_promise(session, row.connection_id, target, on=details["date"],
                       amount=details.get("amount"), now=now, action_id=action_id)
    elif outcome == "dispute":
        open_dispute(session, row.connection_id, target, reason=details.get("reason") or "",
                     now=now, action_id=action_id)
    elif outcome == "plan":
        agree_plan(session, row.connection_id, target, details["instalments"], now=now,
                   action_id=action_id)
    elif outcome not in (None, "none", "no_answer", "other"):
        raise InputError(f"unknown outcome {outcome!r} (promise, dispute, plan, no_answer)")
    transition(session, action_id, "done", now=now, completed_at=now,
               outcome_json=json.dumps({"outcome": outcome or "none", **{
                   k: (v.isoformat() if isinstance(v, date) else
                       [[d.isoformat(), str(a)] for d, a in v] if k == "instalments" else str(v))
                   for k, v in details.items() if v is not None}}))
    mark_for_review(session, row.connection_id, [row.customer_external_id])
    return row
