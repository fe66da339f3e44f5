"""Applies a connector's pages to the mirror: idempotent upserts, cursors, reconciliation.

Each :class:`~arsync.domain.SyncPage` is written in its own transaction together with its
cursor, so a sync killed at any instant leaves a mirror that is correct as of the last page and
resumes from there; re-applying a page is harmless (rows are keyed by connection and external id).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from arsync.clock import Clock
from arsync.domain import (
    Entity,
    RemoteCreditNote,
    RemoteCustomer,
    RemoteInvoice,
    RemotePayment,
    SyncPage,
    SyncStats,
)
from arsync.errors import AuthError, RateLimitedError
from arsync.models import (
    Allocation,
    Connection,
    CreditNote,
    Customer,
    Invoice,
    Payment,
    SyncCursor,
)
from connectors.base import Connector

log = logging.getLogger(__name__)

TABLES: dict[Entity, Any] = {Entity.CUSTOMERS: Customer, Entity.INVOICES: Invoice,
                             Entity.PAYMENTS: Payment, Entity.CREDIT_NOTES: CreditNote}
SOURCE_TYPE = {Entity.PAYMENTS: "payment", Entity.CREDIT_NOTES: "credit_note"}


def _customer_row(r: RemoteCustomer) -> dict[str, Any]:
    return {"external_id": r.external_id, "name": r.name, "email": r.email, "phone": r.phone,
            "currency": r.currency, "active": r.active, "deleted": False,
            "remote_updated_at": r.updated_at}


def _invoice_row(r: RemoteInvoice) -> dict[str, Any]:
    return {"external_id": r.external_id, "number": r.number,
            "customer_external_id": r.customer_external_id, "currency": r.currency,
            "total": r.total, "balance": r.balance, "exchange_rate": r.exchange_rate,
            "issue_date": r.issue_date, "due_date": r.due_date, "status": r.status.value,
            "billing_email": r.billing_email, "remote_version": r.version,
            "remote_updated_at": r.updated_at,
            # Changed since the policy last looked: the next pass re-evaluates its customer
            # (on conflict only when something material changed, see _upsert).
            "review_on": None}


def _payment_row(r: RemotePayment) -> dict[str, Any]:
    return {"external_id": r.external_id, "customer_external_id": r.customer_external_id,
            "currency": r.currency, "amount": r.amount, "unapplied": r.unapplied,
            "paid_on": r.paid_on, "status": "voided" if r.voided else "active",
            "remote_updated_at": r.updated_at}


def _credit_note_row(r: RemoteCreditNote) -> dict[str, Any]:
    return {"external_id": r.external_id, "number": r.number,
            "customer_external_id": r.customer_external_id, "currency": r.currency,
            "total": r.total, "remaining": r.remaining, "issue_date": r.issue_date,
            "status": r.status, "remote_updated_at": r.updated_at}


ROW_BUILDERS: dict[Entity, Any] = {Entity.CUSTOMERS: _customer_row, Entity.INVOICES: _invoice_row,
                                   Entity.PAYMENTS: _payment_row,
                                   Entity.CREDIT_NOTES: _credit_note_row}


#: Invoice fields the policy reads. A change to anything else (QuickBooks' PrivateNote and
#: SyncToken after arsync writes a note, Xero's UpdatedDateUTC after a History note) is not a
#: reason to evaluate the customer again: without this, every note written would come back
#: through the next sync as a change, re-plan the customer and loop.
MATERIAL_INVOICE_FIELDS = ("balance", "total", "due_date", "status", "billing_email",
                           "customer_external_id", "currency")


def _review_on_conflict(table: Any, excluded: Any) -> Any:
    """``review_on``: NULL ("now") when a material field changed, else the value it had."""
    changed = or_(*(table.c[f].is_distinct_from(excluded[f]) for f in MATERIAL_INVOICE_FIELDS))
    return case((changed, None), else_=table.c.review_on)


def _upsert(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT (connection_id, external_id) DO UPDATE, in one executemany."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    stmt = insert(table)
    keys = [k for k in rows[0] if k not in ("connection_id", "external_id")]
    set_ = {k: stmt.excluded[k] for k in keys}
    if "review_on" in set_:
        set_["review_on"] = _review_on_conflict(table, stmt.excluded)
    stmt = stmt.on_conflict_do_update(index_elements=["connection_id", "external_id"], set_=set_)
    session.execute(stmt, list(rows))


def _gone(session: Session, connection_id: int, entity: Entity, where: Any) -> None:
    """Mark rows that left the books as deleted (they stay for history and analytics)."""
    model = TABLES[entity]
    base = update(model).where(model.connection_id == connection_id).where(where)
    if entity is Entity.CUSTOMERS:
        session.execute(base.where(model.deleted.is_(False)).values(deleted=True))
    else:
        session.execute(base.where(model.status != "deleted").values(status="deleted"))
    if entity in SOURCE_TYPE:  # a deleted payment no longer pays anything
        ids = select(model.external_id).where(model.connection_id == connection_id).where(
            model.status == "deleted")
        session.execute(delete(Allocation).where(Allocation.connection_id == connection_id)
                        .where(Allocation.source_type == SOURCE_TYPE[entity])
                        .where(Allocation.source_external_id.in_(ids)))


def apply_page(session: Session, connection_id: int, page: SyncPage, *, run_started: datetime,
               now: datetime) -> int:
    """Write one page (records, deletions, reconciliation, cursor); returns records upserted."""
    entity, model = page.entity, TABLES[page.entity]
    build = ROW_BUILDERS[entity]
    rows = []
    for record in page.records:
        row = build(record)
        row["connection_id"] = connection_id
        row["seen_at"] = now
        rows.append(row)
    _upsert(session, model, rows)

    if entity in SOURCE_TYPE and page.records:
        source = SOURCE_TYPE[entity]
        ids = [r.external_id for r in page.records]
        session.execute(delete(Allocation).where(Allocation.connection_id == connection_id)
                        .where(Allocation.source_type == source)
                        .where(Allocation.source_external_id.in_(ids)))
        allocations = [
            {"connection_id": connection_id, "source_type": source,
             "source_external_id": r.external_id, "target_type": a.target_type,
             "target_external_id": a.target_external_id, "amount": a.amount}
            for r in page.records for a in r.applications  # type: ignore[union-attr]
        ]
        if allocations:
            session.execute(Allocation.__table__.insert(), allocations)  # type: ignore[attr-defined]

    if page.deleted_ids:
        _gone(session, connection_id, entity, model.external_id.in_(list(page.deleted_ids)))
    if page.full_listing_done:
        _gone(session, connection_id, entity, model.seen_at < run_started)
    if page.cursor is not None:
        _save_cursor(session, connection_id, entity, page.cursor, now)
    return len(rows)


def _save_cursor(session: Session, connection_id: int, entity: Entity, synced_to: datetime,
                 now: datetime) -> None:
    cursor = session.get(SyncCursor, (connection_id, entity.value))
    if cursor is None:
        session.add(SyncCursor(connection_id=connection_id, entity=entity.value,
                               synced_to=synced_to, updated_at=now))
    else:
        cursor.synced_to = synced_to
        cursor.updated_at = now


def load_cursors(session: Session, connection_id: int) -> dict[Entity, datetime | None]:
    found = {c.entity: c.synced_to for c in session.scalars(
        select(SyncCursor).where(SyncCursor.connection_id == connection_id))}
    return {e: found.get(e.value) for e in Entity}


_DONE = object()


def prefetched(pages: Iterator[SyncPage], depth: int = 2) -> Iterator[SyncPage]:
    """Fetch the next pages in a thread while the caller writes the current one.

    The network wait and the provider's own time overlap with the database writes; pages still
    arrive in order, and an error in the fetching thread is raised here, where it would have been.
    """
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        box.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(_DONE)
        except BaseException as exc:  # handed over to the consuming thread
            box.put(exc)

    worker = threading.Thread(target=produce, name="sync-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = box.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the consumer stopped early (an error while writing): let the thread end
        worker.join(timeout=30)


def sync_connection(engine: Engine, connection_id: int, connector: Connector, clock: Clock, *,
                    full: bool = False) -> SyncStats:
    """Sync one connection; throttling defers it (keeping what was applied), auth errors mark it."""
    stats = SyncStats(full=full)
    started = clock.now()
    with Session(engine) as session:
        cursors = load_cursors(session, connection_id)
    listed: set[Entity] = set()
    calls_before = connector.api_calls
    try:
        for page in prefetched(connector.sync(cursors, full=full)):
            with Session(engine) as session, session.begin():
                n = apply_page(session, connection_id, page, run_started=started, now=clock.now())
            stats.count(page.entity, n)
            if page.full_listing_done:
                listed.add(page.entity)
    except RateLimitedError as exc:
        # No Retry-After: try again in a minute (the scheduler's next tick at the earliest).
        until = clock.now() + timedelta(seconds=exc.retry_after if exc.retry_after else 60)
        with Session(engine) as session, session.begin():
            session.execute(update(Connection).where(Connection.id == connection_id)
                            .values(sync_deferred_until=until))
        stats.deferred.append(f"rate limit ({exc.problem or 'throttled'}); resumes after "
                              f"{until.isoformat()}")
        log.warning("connection %s: sync deferred until %s (%s)", connection_id, until, exc)
        return stats
    except AuthError as exc:
        with Session(engine) as session, session.begin():
            session.execute(update(Connection).where(Connection.id == connection_id)
                            .where(Connection.status == "active")
                            .values(status="needs_reconnect", status_reason=str(exc)))
        raise
    finally:
        stats.api_calls = connector.api_calls - calls_before
        stats.full = listed == set(Entity)  # every entity was listed from scratch
    with Session(engine) as session, session.begin():
        session.execute(update(Connection).where(Connection.id == connection_id)
                        .values(last_synced_at=started, sync_deferred_until=None))
    return stats

