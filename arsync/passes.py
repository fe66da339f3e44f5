"""One pass of the loop for one connection: freshness sync, evaluate, plan, drain.

Only customers that need it are evaluated: each open invoice carries ``review_on``, the next
local date anything can become due for its customer (from the rules' result: the next stage
date, a pause or promise ending, tomorrow after an action); a sync upsert or anything a person
records resets it to NULL ("now"). A routine pass therefore costs what is due, not the mirror's
size; ``full=True`` (``--as-of``, ``--dry-run``) ignores the marks and evaluates every customer.

What a planned action becomes in the ledger:

* a message goes to the invoice's billing email first, then the customer's email (SMS: the
  customer's phone); with no address it is recorded ``failed`` with the reason "no email
  address", visible in ``arsync actions``, never silently dropped (``failed`` counts as an
  attempt, so the rules move on to the next stage rather than retrying daily);
* in pilot mode a message waits in ``awaiting_approval``; one still waiting after its local
  day is ``cancelled`` and planned afresh if still due;
* a task (a stage on the ``task`` channel) is a person's work item: ``planned`` while open,
  ``done`` once completed, with a priority score (:mod:`arsync.work`); nothing leaves arsync,
  so pilot mode does not hold tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, exists, func, literal_column, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from arsync.context import AppContext
from arsync.errors import ArsyncError, InputError
from arsync.ledger import (
    driver_executemany,
    expire_unapproved,
    insert_counts,
    row_values,
    sqlite_stamp,
)
from arsync.models import Allocation, Connection, Invoice
from arsync.models_payer import PayerOptOut
from arsync.outbox import DrainReport, Sender, drain_outbox, is_stale
from arsync.queries import local_today
from arsync.views import (
    NEVER,
    CustomerBundle,
    DriverQuery,
    company_of,
    load_bundles,
    open_customers,
    policy_for,
    recipient_for,
)
from arsync.work import late_shares, priority
from rules import (
    BusinessCalendar,
    CoveredItem,
    Decision,
    PlannedAction,
    Policy,
    RuleInputError,
    evaluate_customer,
    explain,
    preview,
)

log = logging.getLogger(__name__)


_Q_OPEN = (select(Invoice.customer_external_id).distinct()
           .where(Invoice.connection_id == bindparam("cid"), Invoice.status == "open"))
_Q_DUE = _Q_OPEN.where((Invoice.review_on.is_(None)) | (Invoice.review_on <= bindparam("today")))
_D_OPEN, _D_DUE = DriverQuery(_Q_OPEN), DriverQuery(_Q_DUE)
_D_ALLOCATED = DriverQuery(select(exists().where(
    Allocation.connection_id == bindparam("cid"), Allocation.target_type == "invoice",
    Allocation.source_type == "payment")))


@dataclass
class PlanResult:
    """What planning one connection produced."""

    evaluated: int = 0
    new: int = 0
    actions: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def next_review(decision: Decision, policy: Policy, calendar: BusinessCalendar) -> date:
    """The next local date this customer's evaluation can come out differently by itself.

    Held invoices say when their next stage falls due (or their pause or promise ends); an
    invoice just covered by an action waits for the next more severe stage on its due-date
    ladder (anything subtler, such as a promise or instalment ladder, is looked at tomorrow).
    """
    today = decision.local_date
    after = today + timedelta(days=1)
    dates: list[date] = []
    if any(n.startswith("daily_") for n in decision.notes):
        dates.append(after)
    if decision.actions:
        memo = _review_memo(policy, calendar, today)
        for action in decision.actions:
            kind = action.kind
            for item in action.covered:
                if item.anchor != "due_date":
                    dates.append(after)
                    continue
                key = (item.anchor_date, item.stage_id, kind)
                found = memo.get(key)
                if found is None:
                    found = memo[key] = _covered_review(item, kind, policy, calendar, today)
                dates.append(found)
    for held in decision.held:
        d = held.detail
        if held.code == "nothing_due" and d.get("next_stage_on"):
            dates.append(date.fromisoformat(d["next_stage_on"]))
        elif held.code in ("invoice_paused", "customer_paused") and d.get("until"):
            dates.append(date.fromisoformat(d["until"]) + timedelta(days=1))
        elif held.code == "promise_pending" and d.get("promise_date"):
            dates.append(date.fromisoformat(d["promise_date"]) + timedelta(days=1))
        elif held.code.startswith("daily_"):
            dates.append(after)
    return max(after, min(dates, default=NEVER))


def _covered_review(item: CoveredItem, kind: str, policy: Policy, calendar: BusinessCalendar,
                    today: date) -> date:
    """The review date an item covered by an action of ``kind`` (message or task) asks for."""
    other = "task" if kind == "message" else "message"
    found = [d for d in (
        _next_stage_date(item, kind, policy, calendar, today),
        # The other track has its own ladder; the decision says nothing about it here.
        _next_stage_date(item, other, policy, calendar, today, any_severity=True))
        if d is not None]
    return min(found, default=NEVER)


def _next_stage_date(item: CoveredItem, track: str, policy: Policy,
                     calendar: BusinessCalendar, today: date, *,
                     any_severity: bool = False) -> date | None:
    """When the next more severe stage (or, ``any_severity``, any later stage) on ``track`` of
    the item's due-date ladder falls due."""
    if item.anchor != "due_date":
        return today + timedelta(days=1)
    key = ("", track) if any_severity else (item.stage_id, track)
    later = _later_due_date_stages(policy).get(key)
    if later is None:
        return today + timedelta(days=1)
    dates = [d for offset, unit in later
             if (d := calendar.shift(item.anchor_date, offset, unit)) > today]
    return min(dates, default=None)


def _review_memo(policy: Policy, calendar: BusinessCalendar,
                 today: date) -> dict[tuple[date, str, str], date]:
    """Memo of :func:`_covered_review` for one policy, calendar and local day, keyed by
    (anchor date, stage, kind): due dates repeat across customers and connections. Looked up
    once per customer; the entry holds the policy, so its ``id`` stays its own."""
    key = (id(policy), calendar, today)
    hit = _NEXT.get(key)
    if hit is not None and hit[0] is policy and len(hit[1]) < 100_000:
        return hit[1]
    if len(_NEXT) >= 1024:  # keep it small
        _NEXT.clear()
    memo: dict[tuple[date, str, str], date] = {}
    _NEXT[key] = (policy, memo)
    return memo


_NEXT: dict[tuple[Any, ...], tuple[Policy, dict[tuple[date, str, str], date]]] = {}


_LATER: dict[int, tuple[Policy, dict[tuple[str, str], list[tuple[int, str]]]]] = {}


def _later_due_date_stages(policy: Policy) -> dict[tuple[str, str], list[tuple[int, str]]]:
    """Per (stage id, track): (offset, unit) of each more severe due-date stage on that track."""
    cached = _LATER.get(id(policy))
    if cached is not None and cached[0] is policy:
        return cached[1]
    sev = {st.id: policy.severity(st.id) or 0 for st in policy.stages}
    on_track = {"message": [st for st in policy.stages if st.message_channels],
                "task": [st for st in policy.stages if st.has_task]}
    table = {(st.id, track): [(o.offset, o.offset_unit) for o in stages
                              if o.anchor == "due_date" and sev[o.id] > sev[st.id]]
             for st in policy.stages for track, stages in on_track.items()}
    for track, stages in on_track.items():  # "" stands for "any stage of the track"
        table[("", track)] = [(o.offset, o.offset_unit) for o in stages if o.anchor == "due_date"]
    _LATER[id(policy)] = (policy, table)
    return table


def _status_for(action: PlannedAction, conn: Connection,
                recipient: str | None) -> tuple[str, str | None]:
    if action.kind == "task":
        return "planned", None  # a person's work item: nothing leaves, nothing to approve
    if not recipient:
        what = "phone number" if action.channel == "sms" else "email address"
        return "failed", f"no {what}"
    return ("awaiting_approval", None) if conn.pilot_mode else ("planned", None)


def plan_connection(ctx: AppContext, conn: Connection, now: datetime, *, full: bool = False,
                    dry_run: bool = False) -> PlanResult:
    """Evaluate the customers that need it and persist their actions (once each)."""
    return plan_connections(ctx, [conn], now, full=full, dry_run=dry_run)[conn.id or 0]


#: Connections planned (in one read session) before their actions and review marks are written
#: in one transaction: one INSERT, one UPDATE executemany and one commit per batch instead of a
#: session, two statements and a commit per connection. That and loading the batch's connection
#: rows in one query cut a full pass's CPU by about a fifth (benchmarks/RESULTS.md); the price is
#: about 0.3 MB of peak memory per connection in the batch, and the batch's rows hold SQLite's
#: write lock for some tens of milliseconds.
BATCH = 100


def plan_connections(ctx: AppContext, conns: Sequence[Connection], now: datetime, *,
                     full: bool = False, dry_run: bool = False) -> dict[int, PlanResult]:
    """Plan several connections, then write all their actions and review marks in one commit.

    Each connection is planned on its own: one whose planning raises (a policy that no longer
    parses, a bug) gets the error in its result and writes nothing, and the others' actions are
    written all the same. A crash before the commit loses only plans, never a sent message's
    record: the next pass makes the same plans again under the same idempotency keys (the
    review marks are in the same transaction, so those customers are still due).
    """
    results = {conn.id or 0: PlanResult() for conn in conns}
    rows: list[dict[str, Any]] = []
    reviews: list[dict[str, Any]] = []
    started = ctx.clock.now()  # rows a sync touches after this keep their NULL mark
    with Session(ctx.engine) as s:
        opted_out = _opted_out(s, [conn.id or 0 for conn in conns])
        for conn in conns:
            cid = conn.id or 0
            try:
                planned, marks = _plan_connection(s, conn, now, full, results[cid],
                                                  opted_out.get(cid, frozenset()))
            except SQLAlchemyError:
                raise  # the database itself: the whole batch is retried by the next pass
            except Exception as exc:  # one connection's problem must not cost the others
                log.exception("planning connection %s failed", cid)
                results[cid] = PlanResult(errors=[f"connection {cid}: planning failed: {exc}"])
                continue
            if dry_run:  # the preview is only read by dry runs
                results[cid].actions = [_preview_json(r) for r in planned]
                continue
            rows.extend(planned)
            reviews.extend({"cid": cid, "started": started, "c": c, "d": d} for c, d in marks)
    if dry_run or not (rows or reviews):
        return results
    sqlite = ctx.engine.dialect.name == "sqlite"
    if sqlite and reviews:  # pre-converted tuples for the driver's executemany, built before
        sql, names, fixed = _sqlite_review_update(ctx.engine.dialect)  # the write lock is taken
        values = dict(fixed, started=sqlite_stamp(started))
        marks = [tuple([values[n] if n in values else r[n].isoformat() if n == "d" else r[n]
                        for n in names]) for r in reviews]
    with Session(ctx.engine) as s, s.begin():
        for cid, new in insert_counts(s, rows).items():
            results[cid].new = new
        if reviews:  # one prebuilt executemany for every customer of the batch
            db = s.connection()
            if sqlite:
                driver_executemany(db, sql, marks)
            else:
                db.execute(_review_update(db.dialect.name), reviews)
    return results


def _plan_connection(s: Session, conn: Connection, now: datetime, full: bool,
                     result: PlanResult, opted_out: frozenset[tuple[str, str]] = frozenset(),
                     ) -> tuple[list[dict[str, Any]], list[tuple[str, date]]]:
    """One connection's ledger rows and (customer, review date) marks, read in ``s``."""
    cid = conn.id or 0
    policy, company = policy_for(conn), company_of(conn)
    try:
        calendar = BusinessCalendar.for_company(policy, company)  # memoised there
    except RuleInputError as exc:
        result.errors.append(f"connection {cid}: {exc}")
        return [], []
    today = local_today(conn, now)
    db = s.connection()
    if full:
        customers = [c for c, in _D_OPEN.rows(db, {"cid": cid})]
    else:
        customers = [c for c, in _D_DUE.rows(db, {"cid": cid, "today": today})]
        if not customers:
            return [], []  # nothing changed and nothing became due: one indexed query
    bundles = load_bundles(s, conn, customers)
    rows, reviews, tasks = _plan(conn, bundles, policy, company, calendar, now, result,
                                 opted_out)
    if tasks:
        # Lateness comes from payments allocated to invoices: with none, every share is 0.
        paid = _D_ALLOCATED.rows(db, {"cid": cid})[0][0]
        shares = (late_shares(s, cid, (b.customer.external_id for _, b, _ in tasks))
                  if paid else {})
        for action, bundle, row in tasks:
            row["priority"] = priority(bundle, action.invoice_external_ids, action.local_date,
                                       shares.get(bundle.customer.external_id, 0))
    return rows, reviews


def _review_update(dialect: str) -> Any:
    """The prebuilt review-mark UPDATE (one executemany row per customer).

    On SQLite the status test is written ``+status``: without table statistics the planner
    otherwise walks ``ix_invoices_review`` (connection, status, …), i.e. every open invoice of
    the connection once per customer, instead of the customer's own invoices.
    """
    stmt = _U_REVIEW.get(dialect)
    if stmt is None:
        is_open = (literal_column("+invoices.status") == "open" if dialect == "sqlite"
                   else Invoice.status == "open")
        stmt = _U_REVIEW[dialect] = (
            Invoice.__table__.update()  # type: ignore[attr-defined]
            .where(Invoice.connection_id == bindparam("cid"), is_open)
            .where(Invoice.customer_external_id == bindparam("c"))
            .where(Invoice.seen_at <= bindparam("started")).values(review_on=bindparam("d")))
    return stmt


_U_REVIEW: dict[str, Any] = {}


def _sqlite_review_update(dialect: Any) -> tuple[str, list[str], dict[str, Any]]:
    """The review-mark UPDATE compiled for the SQLite driver: its SQL, its parameters in order,
    and the values of those that are literals (the status)."""
    if not _SQLITE_REVIEW:
        compiled = _review_update("sqlite").compile(dialect=dialect)
        names = list(compiled.positiontup or ())
        given = {"c", "cid", "d", "started"}
        if not given <= set(names):
            raise RuntimeError(f"unexpected parameters in the review UPDATE: {names}")
        fixed = {n: v for n, v in compiled.params.items() if n not in given}
        if any(not isinstance(v, str) for v in fixed.values()):
            raise RuntimeError(f"unexpected literals in the review UPDATE: {fixed}")
        _SQLITE_REVIEW.append((str(compiled), names, fixed))
    return _SQLITE_REVIEW[0]


_SQLITE_REVIEW: list[tuple[str, list[str], dict[str, Any]]] = []


#: A payer's opt-out from a channel (on their page) covers these planned channels.
OPT_OUT_COVERS = {"email": ("email", "provider_email"), "sms": ("sms",)}


def _opted_out(s: Session, cids: Sequence[int]) -> dict[int, frozenset[tuple[str, str]]]:
    """Per connection, the (customer, planned channel) pairs its customers opted out of: never
    planned at all, so no reminder is planned and cancelled (and noted on the invoice) every
    day. One query per batch of connections."""
    found: dict[int, set[tuple[str, str]]] = {}
    for cid, customer, channel in s.execute(
            select(PayerOptOut.connection_id, PayerOptOut.customer_external_id,
                   PayerOptOut.channel).where(PayerOptOut.connection_id.in_(cids))):  # type: ignore[attr-defined]
        found.setdefault(cid, set()).update(
            (customer, planned) for planned in OPT_OUT_COVERS.get(channel, (channel,)))
    return {cid: frozenset(pairs) for cid, pairs in found.items()}


def _plan(conn: Connection, bundles: dict[str, CustomerBundle], policy: Policy,
          company: Any, calendar: BusinessCalendar, now: datetime, result: PlanResult,
          opted_out: frozenset[tuple[str, str]] = frozenset(),
          ) -> tuple[list[dict[str, Any]], list[tuple[str, date]],
                     list[tuple[PlannedAction, CustomerBundle, dict[str, Any]]]]:
    """Evaluate each bundle: ledger rows, (customer, review date) marks, and the task rows.

    Message actions on a channel the customer opted out of are dropped here (a person's tasks
    stay); the outbox checks the opt-out again right before sending, for one made meanwhile."""
    cid = conn.id or 0
    rows: list[dict[str, Any]] = []
    reviews: list[tuple[str, date]] = []
    tasks: list[tuple[PlannedAction, CustomerBundle, dict[str, Any]]] = []
    for bundle in bundles.values():
        if not bundle.invoices:
            continue
        try:
            decision = evaluate_customer(bundle.customer, bundle.invoices, bundle.history(),
                                         policy, company, now=now)
        except RuleInputError as exc:
            result.errors.append(f"customer {bundle.customer.external_id}: {exc}")
            continue
        result.evaluated += 1
        review = next_review(decision, policy, calendar)
        for action in decision.actions:
            if (bundle.customer.external_id, action.channel) in opted_out:
                continue
            recipient = recipient_for(bundle, action.invoice_external_ids, action.channel)
            status, reason = _status_for(action, conn, recipient)
            if status == "failed":  # a stage allowing more attempts may try again tomorrow
                review = decision.local_date + timedelta(days=1)
            row = row_values(cid, action, status=status, recipient=recipient, now=now,
                             status_reason=reason)
            rows.append(row)
            if action.kind == "task":
                tasks.append((action, bundle, row))
        reviews.append((bundle.customer.external_id, review))
    return rows, reviews, tasks


def _preview_json(row: dict[str, Any]) -> dict[str, Any]:
    import json

    return {"connection_id": row["connection_id"],
            "customer_external_id": row["customer_external_id"],
            "invoice_external_ids": json.loads(row["invoice_ids_json"]), "stage": row["stage"],
            "channel": row["channel"], "recipient": row["recipient"], "status": row["status"],
            "planned_for": row["planned_for"].isoformat(), "local_date":
            row["local_date"].isoformat(), "reason": row["status_reason"],
            "explanation": row["explanation"]}


def run_pass(ctx: AppContext, connection_id: int, now: datetime, *, dry_run: bool = False,
             full: bool = False, sender: Sender | None = None) -> dict[str, Any]:
    """Freshness sync, evaluate, plan and drain one connection (``dry_run``: plan and report only).

    A dry run writes nothing at all: no sync, no ledger rows, no review marks, nothing sent.
    """
    return run_passes(ctx, [connection_id], now, dry_run=dry_run, full=full, sender=sender)[0]


def run_passes(ctx: AppContext, connection_ids: Sequence[int], now: datetime, *,
               dry_run: bool = False, full: bool = False,
               sender: Sender | None = None) -> list[dict[str, Any]]:
    """:func:`run_pass` for several connections, their plans written in one transaction.

    Each connection is synced if stale and its unapproved actions expired first, then all are
    planned (:func:`plan_connections`), then each one's outbox is drained. The drain re-checks
    freshness against the same ``now`` as before; what batching changes is only that the other
    connections' syncs and planning happen between a connection's sync and its drain.
    """
    conns = load_connections(ctx, connection_ids)
    reports: list[dict[str, Any]] = []
    ready: list[Connection] = []
    for conn in conns:
        try:
            report, fresh = _prepare(ctx, conn, now, dry_run=dry_run)
        except ArsyncError as exc:  # one connection's trouble never holds up the batch
            log.error("connection %s: pass not run: %s", conn.id, exc)
            report, fresh = {"connection_id": conn.id, "as_of": now.isoformat(),
                             "dry_run": dry_run, "synced": False, "evaluated": 0,
                             "planned": 0, "error": str(exc)}, None
        reports.append(report)
        if fresh is not None:
            ready.append(fresh)
    plans = plan_connections(ctx, ready, now, full=full or dry_run, dry_run=dry_run)
    for report in reports:
        plan = plans.get(report["connection_id"])
        if plan is None:
            continue  # not active, or its freshness sync failed: already in the report
        report.update(evaluated=plan.evaluated,
                      planned=len(plan.actions) if dry_run else plan.new)
        if plan.errors:
            report["errors"] = plan.errors
        if dry_run:
            report["actions"] = plan.actions
            continue
        try:
            _deliver(ctx, report, now, sender)
        except ArsyncError as exc:  # its actions stay planned for the next drain
            log.error("connection %s: delivery stopped: %s", report["connection_id"], exc)
            report["error"] = f"delivery stopped: {exc}"
    return reports


def load_connections(ctx: AppContext, connection_ids: Sequence[int]) -> list[Connection]:
    """The connections, in the order given, in one query (a missing one is an InputError)."""
    with Session(ctx.engine) as s:
        found = {c.id: c for c in s.scalars(
            select(Connection).where(Connection.id.in_(connection_ids)))}  # type: ignore[union-attr]
    missing = [cid for cid in connection_ids if cid not in found]
    if missing:
        raise InputError(f"no connection with id {missing[0]}")
    return [found[cid] for cid in connection_ids]


def _prepare(ctx: AppContext, conn: Connection, now: datetime, *,
             dry_run: bool) -> tuple[dict[str, Any], Connection | None]:
    """The report, and the connection as it is after the freshness sync and the expiry of
    unapproved actions (None: not to be planned, the report says why)."""
    from arsync.syncing import sync_one

    connection_id = conn.id or 0
    report: dict[str, Any] = {"connection_id": connection_id, "as_of": now.isoformat(),
                              "dry_run": dry_run, "synced": False, "evaluated": 0, "planned": 0}
    if conn.status != "active":
        report["error"] = f"connection is {conn.status}; reconnect it"
        return report, None
    if not dry_run and is_stale(ctx, conn, now):
        sync = sync_one(ctx, conn)
        report["synced"] = True
        if sync.get("error"):
            report["error"] = f"freshness sync failed: {sync['error']}"
            return report, None
        conn = ctx.connection(connection_id)
    if not dry_run:
        with Session(ctx.engine) as s, s.begin():
            report["expired"] = expire_unapproved(s, connection_id, local_today(conn, now), now)
    return report, conn


def _deliver(ctx: AppContext, report: dict[str, Any], now: datetime,
             sender: Sender | None) -> None:
    """Drain one planned connection's outbox into ``report``."""
    connection_id = report["connection_id"]
    drained = drain_outbox(ctx, now, sender=sender, connection_id=connection_id)
    if drained.cancelled:
        # Cancelled on the freshness re-check: plan what is still due, then send that.
        again = plan_connection(ctx, ctx.connection(connection_id), now)
        report["planned"] += again.new
        more = drain_outbox(ctx, now, sender=sender, connection_id=connection_id)
        drained = _merge(drained, more)
    report["outbox"] = drained.as_json()
    from arsync.notes_queue import drain_notes  # write-back: a note per action, per invoice

    report["notes"] = drain_notes(ctx, now, connection_id).as_json()


def _merge(a: DrainReport, b: DrainReport) -> DrainReport:
    for name, values in b.__dict__.items():
        getattr(a, name).extend(values)
    return a


def due_connections(ctx: AppContext, now: datetime) -> list[int]:
    """Active connections with an open invoice changed or due for review, in one query.

    ``review_on`` is a local date, so each connection's earliest mark is compared with that
    connection's own today.
    """
    earliest = func.min(func.coalesce(Invoice.review_on, date.min))
    with Session(ctx.engine) as s:
        q = (select(Invoice.connection_id, Connection.timezone, earliest)
             .join(Connection, Connection.id == Invoice.connection_id)
             .where(Connection.status == "active", Invoice.status == "open")
             .group_by(Invoice.connection_id, Connection.timezone))
        rows = list(s.execute(q))
    todays: dict[str, date] = {}
    out = []
    for cid, tz, first in rows:
        if isinstance(first, str):  # SQLite hands back MIN() of a date column as text
            first = date.fromisoformat(first)
        if tz not in todays:
            todays[tz] = now.astimezone(ZoneInfo(tz or "UTC")).date()
        if first <= todays[tz]:
            out.append(cid)
    return sorted(out)


def run_all(ctx: AppContext, now: datetime, *, connection_id: int | None = None,
            dry_run: bool = False, full: bool = False,
            sender: Sender | None = None) -> list[dict[str, Any]]:
    """One pass over the named connection, or over every active one (:data:`BATCH` at a time)."""
    if connection_id is not None:
        ids = [ctx.connection(connection_id).id or 0]
    else:
        with Session(ctx.engine) as s:
            ids = list(s.scalars(select(Connection.id).where(Connection.status == "active")
                                 .order_by(Connection.id)))
    return [report for i in range(0, len(ids), BATCH)
            for report in run_passes(ctx, ids[i:i + BATCH], now, dry_run=dry_run, full=full,
                                     sender=sender)]


def preview_connection(ctx: AppContext, connection_id: int, now: datetime,
                       days: int) -> list[dict[str, Any]]:
    """What would go out over the next ``days`` local days if nothing changed (no writes)."""
    conn = ctx.connection(connection_id)
    policy, company = policy_for(conn), company_of(conn)
    with Session(ctx.engine) as s:
        bundles = load_bundles(s, conn, s.scalars(open_customers(connection_id)))
    out = []
    for bundle in bundles.values():
        if not bundle.invoices:
            continue
        for a in preview(bundle.customer, bundle.invoices, bundle.history(), policy, company,
                         now=now, horizon_days=days):
            out.append({"connection_id": connection_id,
                        "customer_external_id": a.customer_external_id,
                        "invoice_external_ids": list(a.invoice_external_ids),
                        "stage": a.stage_id, "channel": a.channel,
                        "recipient": recipient_for(bundle, a.invoice_external_ids, a.channel),
                        "planned_for": a.planned_for.isoformat(),
                        "local_date": a.local_date.isoformat(), "explanation": explain(a)})
    return sorted(out, key=lambda r: (r["planned_for"], r["customer_external_id"], r["channel"]))
