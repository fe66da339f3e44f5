"""The signed-in pages: dashboard, a connection's invoices, the action ledger, approvals.

Every query is filtered by the connections the user's current organisation may see
(:func:`~arsync.web.deps.visible_connection_ids`); a single object is fetched only through a
check that yields 404 for anyone else's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import and_, or_, select
from sqlmodel import Session

from arsync import analytics
from arsync.ledger import IllegalTransitionError, transition
from arsync.models import Action, Connection, Customer, Invoice
from arsync.queries import local_today
from arsync.web.deps import (
    CurrentUser,
    connection_for,
    current_user,
    get_ctx,
    render,
    safe_next,
    verify_csrf,
    visible_connection_ids,
)

router = APIRouter()
User = Annotated[CurrentUser, Depends(current_user)]
#: Statuses still ahead of us (``sending`` reads as planned, in flight).
PENDING = ("awaiting_approval", "planned", "sending")
RECENT = 20
#: The dashboard shows the first of each queue; the ledger page has the rest.
QUEUE = 50


def _figures(db: Session, conns: list[Connection], now: Any) -> dict[str, Any]:
    """Aging and DSO over the given connections, per currency, each judged on its local date."""
    aging: dict[str, dict[str, Decimal]] = {}
    owed: dict[str, Decimal] = {}
    sales: dict[str, Decimal] = {}
    for conn in conns:
        today = local_today(conn, now)
        start = today - timedelta(days=analytics.DSO_PERIOD_DAYS - 1)
        # Open invoices (aging, receivables) and the period's sales; old paid ones matter to
        # neither, and are most of a mature company's invoices.
        rows = [analytics.InvoiceFigures(*r) for r in db.execute(
            select(Invoice.currency, Invoice.total, Invoice.balance, Invoice.status,
                   Invoice.issue_date, Invoice.due_date)
            .where(Invoice.connection_id == conn.id)
            .where(or_(Invoice.status == "open",
                       and_(Invoice.status == "paid", Invoice.issue_date >= start))))]
        for cur, buckets in analytics.aging(rows, today).items():
            into = aging.setdefault(cur, dict.fromkeys(analytics.BUCKETS, analytics.ZERO))
            for name, amount in buckets.items():
                into[name] += amount
        _add(owed, analytics.receivables(rows))
        _add(sales, analytics.credit_sales(rows, start, today))
    currencies = sorted(set(aging) | set(sales))
    return {
        "aging": {c: aging.get(c, dict.fromkeys(analytics.BUCKETS, analytics.ZERO))
                  for c in currencies},
        "totals": {c: owed.get(c, analytics.ZERO) for c in currencies},
        "dso": {c: analytics.dso(owed.get(c, analytics.ZERO), sales.get(c, analytics.ZERO),
                                 analytics.DSO_PERIOD_DAYS) for c in currencies},
        "buckets": analytics.BUCKETS,
        "dso_days": analytics.DSO_PERIOD_DAYS,
    }


def _add(into: dict[str, Decimal], more: dict[str, Decimal]) -> None:
    for cur, amount in more.items():
        into[cur] = into.get(cur, analytics.ZERO) + amount


def _action_rows(db: Session, actions: Iterable[Action],
                 names: dict[int, str]) -> list[dict[str, Any]]:
    """Ledger rows for a template, with the customer's and connection's names."""
    actions = list(actions)
    keys = {(a.connection_id, a.customer_external_id) for a in actions}
    customers: dict[tuple[int, str], str] = {}
    for cid in {k[0] for k in keys}:
        ext = [k[1] for k in keys if k[0] == cid]
        for ext_id, name in db.execute(select(Customer.external_id, Customer.name).where(
                Customer.connection_id == cid, Customer.external_id.in_(ext))):  # type: ignore[attr-defined]
            customers[(cid, ext_id)] = name
    # People know invoices by number (Xero's ids are GUIDs); the id stays when there is none.
    numbers: dict[tuple[int, str], str] = {}
    wanted: dict[int, set[str]] = {}
    for a in actions:
        wanted.setdefault(a.connection_id, set()).update(json.loads(a.invoice_ids_json))
    for cid, inv_ids in wanted.items():
        for ext_id, number in db.execute(select(Invoice.external_id, Invoice.number).where(
                Invoice.connection_id == cid, Invoice.external_id.in_(sorted(inv_ids)))):  # type: ignore[attr-defined]
            if number:
                numbers[(cid, ext_id)] = number
    return [{
        "id": a.id, "connection": names.get(a.connection_id, ""),
        "connection_id": a.connection_id,
        "customer": customers.get((a.connection_id, a.customer_external_id),
                                  a.customer_external_id),
        "invoices": [numbers.get((a.connection_id, i), i) for i in json.loads(a.invoice_ids_json)],
        "stage": a.stage, "channel": a.channel,
        "kind": a.kind, "task_kind": a.task_kind,
        "status": "planned" if a.status == "sending" else a.status,
        "planned_for": a.planned_for, "sent_at": a.sent_at, "reason": a.status_reason,
        "explanation": a.explanation, "recipient": a.recipient,
    } for a in actions]


def _visible(db: Session, user: CurrentUser) -> list[Connection]:
    ids = visible_connection_ids(db, user)
    return list(db.scalars(select(Connection).where(Connection.id.in_(ids))  # type: ignore[union-attr]
                           .order_by(Connection.name, Connection.id)))


@router.get("/")
def dashboard(request: Request, user: User) -> Response:
    ctx = get_ctx(request)
    now = ctx.clock.now()
    with Session(ctx.engine) as db:
        conns = _visible(db, user)
        ids = [c.id for c in conns]
        names = {c.id or 0: c.name for c in conns}
        base = select(Action).where(Action.connection_id.in_(ids))  # type: ignore[attr-defined]
        recent = _action_rows(db, db.scalars(
            base.order_by(Action.updated_at.desc(), Action.id.desc()).limit(RECENT)), names)  # type: ignore[attr-defined]
        approvals = _action_rows(db, db.scalars(
            base.where(Action.status == "awaiting_approval")
            .order_by(Action.planned_for, Action.id).limit(QUEUE)), names)
        tasks = _action_rows(db, db.scalars(
            base.where(Action.kind == "task", Action.status.in_(("planned", "sending")))  # type: ignore[attr-defined]
            .order_by(Action.priority.desc(), Action.planned_for, Action.id)  # type: ignore[union-attr]
            .limit(QUEUE)), names)
        figures = _figures(db, conns, now)
    return render(request, "dashboard.html", connections=conns, recent=recent,
                  approvals=approvals, tasks=tasks, queue=QUEUE, **figures)


@router.get("/connections/{connection_id}")
def connection_page(request: Request, user: User, connection_id: int,
                    status: str = "open") -> Response:
    """A connection's invoices (open by default) with each one's next planned action."""
    conn = connection_for(request, user, connection_id)
    ctx = get_ctx(request)
    if status not in ("open", "paid", "all"):
        status = "open"
    with Session(ctx.engine) as db:
        q = (select(Invoice, Customer.name)
             .outerjoin(Customer, and_(Customer.connection_id == Invoice.connection_id,
                                       Customer.external_id == Invoice.customer_external_id))
             .where(Invoice.connection_id == connection_id)
             .order_by(Invoice.due_date, Invoice.id))
        if status != "all":
            q = q.where(Invoice.status == status)
        rows = db.execute(q).all()
        upcoming = db.scalars(select(Action).where(Action.connection_id == connection_id)
                              .where(Action.status.in_(PENDING))  # type: ignore[attr-defined]
                              .order_by(Action.planned_for, Action.id)).all()
    following: dict[str, Action] = {}
    for act in upcoming:  # earliest first, so the first seen per invoice is the next one
        for ext in json.loads(act.invoice_ids_json):
            following.setdefault(ext, act)
    today = local_today(conn, ctx.clock.now())
    invoices = [{
        "number": inv.number or inv.external_id, "customer": name or inv.customer_external_id,
        "currency": inv.currency, "total": inv.total, "balance": inv.balance,
        "due_date": inv.due_date, "status": inv.status,
        "days_overdue": max(0, (today - inv.due_date).days)
        if inv.status == "open" and inv.due_date else 0,
        "next": following.get(inv.external_id),
    } for inv, name in rows]
    return render(request, "connection.html", connection=conn, invoices=invoices,
                  status=status, today=today)


@router.get("/actions")
def actions_page(request: Request, user: User, status: str | None = None) -> Response:
    """The action ledger of the organisation's connections, newest first (latest 200)."""
    ctx = get_ctx(request)
    with Session(ctx.engine) as db:
        conns = _visible(db, user)
        names = {c.id or 0: c.name for c in conns}
        q = select(Action).where(Action.connection_id.in_(list(names)))  # type: ignore[attr-defined]
        if status:
            q = q.where(Action.status.in_(PENDING[1:] if status == "planned" else (status,)))  # type: ignore[attr-defined]
        rows = _action_rows(db, db.scalars(q.order_by(Action.id.desc()).limit(200)), names)  # type: ignore[union-attr]
    return render(request, "actions.html", actions=rows, status=status or "")


def _decide(request: Request, user: CurrentUser, action_id: int, target: str,
            reason: str, back: str) -> Response:
    ctx = get_ctx(request)
    with Session(ctx.engine) as db, db.begin():
        row = db.get(Action, action_id)
        if row is None or row.connection_id not in visible_connection_ids(db, user):
            raise HTTPException(status_code=404)
        try:
            moved = transition(db, action_id, target, now=ctx.clock.now(),
                               expect={"awaiting_approval"}, reason=reason)
        except IllegalTransitionError:
            moved = False
    if not moved:
        raise HTTPException(status_code=409, detail="this action is no longer awaiting approval")
    return RedirectResponse(safe_next(back), status_code=303)


@router.post("/actions/{action_id}/approve", dependencies=[Depends(verify_csrf)])
def approve(request: Request, user: User, action_id: int,
            back: Annotated[str, Form()] = "/") -> Response:
    """Pilot mode: release one action; the outbox sends it when due."""
    return _decide(request, user, action_id, "planned", f"approved by {user.email}", back)


@router.post("/actions/{action_id}/reject", dependencies=[Depends(verify_csrf)])
def reject(request: Request, user: User, action_id: int,
           reason: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "/") -> Response:
    """Pilot mode: decline one action; it is never sent nor planned again."""
    why = reason.strip()[:500] or "rejected"
    return _decide(request, user, action_id, "rejected", f"{why} ({user.email})", back)

