"""Finds what arsync did that has no note job yet, and queues one note per invoice concerned.

One mechanism instead of a hook on every state change: each pass (and the worker's notes job)
runs :func:`enqueue_pending`, which anti-joins the ledger tables on the jobs' ``(source_type,
source_id, event)`` and inserts the missing jobs with ``ON CONFLICT (key) DO NOTHING``. A crash
anywhere, a re-run, or two workers at once all converge on exactly one job per (source,
invoice); nothing that changes a status needs to know notes exist.

What gets a note:

* a message **sent** (``actions.status = 'sent'``);
* a **task** created (an escalation to a person), once its day has come;
* a **cancelled** action only when someone could have seen it coming: it had become due
  (``planned_for`` ≤ the cancellation) and it was not merely an unapproved pilot-mode proposal
  expiring at the end of its day (those are re-planned the next day; noting each would put a
  line on the invoice every day a person does not approve — noise, not news). In practice: the
  outbox's freshness re-check cancelling a due (approved) reminder because the invoice was paid,
  disputed or promised meanwhile, and tasks or reminders a person cancelled;
* a **promise** recorded, a **dispute** opened and resolved, a **payment plan** agreed, and a
  payment plan **requested** by the payer on their page (a request for a person to answer).

Only events from the last :data:`BACKFILL` are queued, so switching write-back on for an old
ledger does not write years of history onto the invoices.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import exists, not_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from arsync.models import Action, Connection, Dispute, Invoice, PaymentPlan, Promise
from arsync.models_notes import NoteJob
from arsync.models_payer import PayerRequest
from arsync.render import render, usable_locale
from arsync.render_context import CompanyCtx, CustomerCtx, EventCtx, InvoiceLine, MessageContext

BACKFILL = timedelta(days=30)
#: ledger.expire_unapproved's reason: an unapproved proposal lapsing at the end of its day.
EXPIRED_UNAPPROVED = "not approved on its day%"
CANCELLED_PREFIX = "cancelled before sending: "
RESOLVED_LIMIT = 250


@dataclass
class Event:
    """One thing arsync (or a person, through arsync) did, concerning some invoices."""

    source_type: str
    source_id: int
    event: str
    kind: str
    connection_id: int
    invoice_ids: list[str]
    at: datetime
    stage: str = ""
    tone: str = "friendly"
    detail: dict[str, Any] = field(default_factory=dict)

    def key(self, invoice_id: str) -> str:
        if self.source_type in ("promise", "plan"):
            return f"{self.source_type}:{self.source_id}:{invoice_id}"
        return f"{self.source_type}:{self.source_id}:{self.event}:{invoice_id}"


def _no_job(source_type: str, event: str, id_col: Any) -> Any:
    return not_(exists().where(NoteJob.source_type == source_type, NoteJob.source_id == id_col,
                               NoteJob.event == event))


def _scope(q: Any, model: Any, connection_id: int | None) -> Any:
    return q if connection_id is None else q.where(model.connection_id == connection_id)


def _action_events(s: Session, now: datetime, cid: int | None) -> list[Event]:
    since = now - BACKFILL
    sent = (select(Action).where(Action.kind == "message", Action.status == "sent",
                                 Action.updated_at >= since, _no_job("action", "sent", Action.id)))
    tasks = (select(Action).where(Action.kind == "task", Action.status.in_(("planned", "done")),
                                  Action.planned_for <= now, Action.created_at >= since,
                                  _no_job("action", "escalated", Action.id)))
    cancelled = (select(Action).where(
        Action.status == "cancelled", Action.updated_at >= since,
        Action.planned_for <= Action.updated_at,
        or_(Action.status_reason.is_(None),
            not_(Action.status_reason.like(EXPIRED_UNAPPROVED))),
        _no_job("action", "cancelled", Action.id)))
    out = []
    for event, q in (("sent", sent), ("escalated", tasks), ("cancelled", cancelled)):
        for a in s.scalars(_scope(q, Action, cid).order_by(Action.id)):
            detail: dict[str, Any] = {}
            at = a.created_at
            if event == "sent":
                at = a.sent_at or a.updated_at
                detail = {"channel": a.channel, "recipient": a.recipient}
            elif event == "cancelled":
                at = a.updated_at
                detail = {"reason": (a.status_reason or "").removeprefix(CANCELLED_PREFIX)}
            out.append(Event("action", a.id or 0, event, event, a.connection_id,
                             json.loads(a.invoice_ids_json), at, a.stage, a.tone, detail))
    return out


def _people_events(s: Session, now: datetime, cid: int | None) -> list[Event]:
    since = now - BACKFILL
    out = []
    q = select(Promise).where(Promise.recorded_at >= since, Promise.recorded_at <= now,
                              _no_job("promise", "recorded", Promise.id))
    for p in s.scalars(_scope(q, Promise, cid).order_by(Promise.id)):
        out.append(Event("promise", p.id or 0, "recorded", "promise", p.connection_id,
                         [p.invoice_external_id], p.recorded_at,
                         detail={"promise_date": p.promised_on, "amount": p.amount}))
    q = select(Dispute).where(Dispute.opened_at >= since, Dispute.opened_at <= now,
                              _no_job("dispute", "opened", Dispute.id))
    for d in s.scalars(_scope(q, Dispute, cid).order_by(Dispute.id)):
        out.append(Event("dispute", d.id or 0, "opened", "dispute", d.connection_id,
                         [d.invoice_external_id], d.opened_at, detail={"reason": d.reason}))
    q = select(Dispute).where(Dispute.resolved_at.is_not(None), Dispute.resolved_at >= since,
                              Dispute.resolved_at <= now,
                              _no_job("dispute", "resolved", Dispute.id))
    for d in s.scalars(_scope(q, Dispute, cid).order_by(Dispute.id)):
        out.append(Event("dispute", d.id or 0, "resolved", "resolved", d.connection_id,
                         [d.invoice_external_id], d.resolved_at or now,
                         detail={"reason": d.resolution}))
    q = select(PaymentPlan).where(PaymentPlan.created_at >= since, PaymentPlan.created_at <= now,
                                  _no_job("plan", "agreed", PaymentPlan.id))
    for p in s.scalars(_scope(q, PaymentPlan, cid).order_by(PaymentPlan.id)):
        instalments = json.loads(p.instalments_json)
        amounts = {Decimal(str(i["amount"])) for i in instalments}
        out.append(Event("plan", p.id or 0, "agreed", "plan", p.connection_id,
                         [p.invoice_external_id], p.created_at,
                         detail={"instalments": len(instalments),
                                 "amount": amounts.pop() if len(amounts) == 1 else None}))
    q = select(PayerRequest).where(PayerRequest.kind == "plan",
                                   PayerRequest.created_at >= since,
                                   PayerRequest.created_at <= now,
                                   _no_job("payer_request", "plan_requested", PayerRequest.id))
    for r in s.scalars(_scope(q, PayerRequest, cid).order_by(PayerRequest.id)):
        details = json.loads(r.details_json)
        out.append(Event("payer_request", r.id or 0, "plan_requested", "plan_request",
                         r.connection_id, json.loads(r.invoice_ids_json), r.created_at,
                         detail={"instalments": details.get("instalments"),
                                 "paused_until": details.get("paused_until")}))
    return out


def _lines(s: Session, events: Iterable[Event]) -> dict[tuple[int, str], Invoice]:
    wanted: dict[int, set[str]] = defaultdict(set)
    for e in events:
        wanted[e.connection_id].update(e.invoice_ids)
    found: dict[tuple[int, str], Invoice] = {}
    for cid, ids in wanted.items():
        chunk = sorted(ids)
        for start in range(0, len(chunk), 500):
            q = select(Invoice).where(Invoice.connection_id == cid,
                                      Invoice.external_id.in_(chunk[start:start + 500]))
            for inv in s.scalars(q):
                found[(cid, inv.external_id)] = inv
    return found


def note_text(event: Event, conn: Connection, invoices: list[Invoice | None],
              ids: list[str]) -> str:
    """The note for ``event``, rendered with the shipped ``templates/note`` templates."""
    tz = ZoneInfo(conn.timezone or "UTC")
    on = event.at.astimezone(tz).date()
    lines = []
    for ext, inv in zip(ids, invoices, strict=True):
        if inv is None:  # not mirrored (yet): still name it
            lines.append(InvoiceLine(ext, conn.currency, Decimal("0"), Decimal("0"), on, 0))
            continue
        due = inv.due_date or inv.issue_date or on
        lines.append(InvoiceLine(inv.number or ext, inv.currency, inv.total, inv.balance, due,
                                 (on - due).days))
    if event.kind == "plan_request":
        return _plan_request_text(event, conn, lines, on)
    if event.kind == "resolved":
        numbers = ", ".join(line.number for line in lines)
        why = f": {event.detail['reason']}" if event.detail.get("reason") else ""
        day = format_date(on, format="medium", locale=usable_locale(f"en_{conn.country or 'US'}"))
        text = f"arsync: dispute resolved on {day} for {numbers}{why}. " \
               "Reminders resume."
        text = " ".join(text.split())
        return text if len(text) <= RESOLVED_LIMIT else text[:RESOLVED_LIMIT - 1] + "…"
    d = event.detail
    ctx = MessageContext(
        company=CompanyCtx(conn.name, locale=f"en_{conn.country or 'US'}"),
        customer=CustomerCtx(""), invoices=tuple(lines), today=on, stage=event.stage,
        tone=event.tone,
        event=EventCtx(on=on, channel=d.get("channel"), recipient=d.get("recipient"),
                       promise_date=d.get("promise_date"), amount=d.get("amount"),
                       instalments=d.get("instalments"), reason=d.get("reason") or None))
    return render("note", event.kind, ctx)


def _plan_request_text(event: Event, conn: Connection, lines: list[InvoiceLine],
                       on: Any) -> str:
    """Built here rather than from a template: it is a request to a person, not a reminder."""
    locale = usable_locale(f"en_{conn.country or 'US'}")
    numbers = ", ".join(line.number for line in lines)
    n = event.detail.get("instalments")
    text = (f"arsync: the customer asked for a payment plan on "
            f"{format_date(on, format='medium', locale=locale)}"
            f"{f' ({n} instalments)' if n else ''} for {numbers}. A person should answer")
    until = event.detail.get("paused_until")
    if until:
        day = format_date(datetime.fromisoformat(until).date() if "T" in until
                          else date.fromisoformat(until), format="medium", locale=locale)
        text += f"; reminders paused until {day}"
    text = " ".join((text + ".").split())
    return text if len(text) <= RESOLVED_LIMIT else text[:RESOLVED_LIMIT - 1] + "…"


def enqueue_pending(session: Session, now: datetime, *, connection_id: int | None = None) -> int:
    """Queue a note job per (event, invoice) that has none yet; returns how many were new."""
    events = _action_events(session, now, connection_id) + _people_events(session, now,
                                                                          connection_id)
    if not events:
        return 0
    conns = {c.id: c for c in session.scalars(select(Connection).where(
        Connection.id.in_({e.connection_id for e in events})))}
    invoices = _lines(session, events)
    rows = []
    for e in events:
        ids = list(dict.fromkeys(e.invoice_ids))
        if not ids:
            continue
        conn = conns[e.connection_id]
        text = note_text(e, conn, [invoices.get((e.connection_id, i)) for i in ids], ids)
        for inv in ids:
            rows.append({"key": e.key(inv), "connection_id": e.connection_id,
                         "invoice_external_id": inv, "source_type": e.source_type,
                         "source_id": e.source_id, "event": e.event, "kind": e.kind,
                         "text": text, "event_at": e.at, "status": "pending", "attempts": 0,
                         "next_attempt_at": now, "created_at": now, "updated_at": now})
    return insert_jobs(session, rows)


def insert_jobs(session: Session, rows: list[dict[str, Any]]) -> int:
    """``INSERT … ON CONFLICT (key) DO NOTHING``; returns how many rows were new."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = NoteJob.__table__  # type: ignore[attr-defined]
    stmt = insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
    new = 0
    for start in range(0, len(rows), 500):
        new += len(session.connection().execute(stmt, rows[start:start + 500]).all())
    return new


__all__ = ["BACKFILL", "Event", "enqueue_pending", "insert_jobs", "note_text"]
