"""Provider webhooks: verify, parse, store once, then refresh just the records that changed.

The receiving route does as little as it can before answering (both providers want an answer
within a few seconds and retry otherwise): verify the HMAC over the raw body, parse, and insert
each event once (``webhook_events``, unique per provider and ``dedupe_key``). The work happens in
:func:`process_webhook_events` (right after the answer, and on the worker's schedule):

1. claim due events with a conditional UPDATE (a crashed worker's claim expires and is retried);
2. per connection and entity, fetch the changed records by id and apply them to the mirror with
   :func:`arsync.sync.apply_page` (the same upsert as a sync, so a replay is harmless);
3. re-check the affected customers' planned actions (``outbox.recheck_planned``), so a payment
   recorded in QuickBooks cancels that invoice's pending reminder within seconds;
4. mark the events ``done`` (throttling or an outage puts them back; a dead grant fails them,
   and the periodic sync catches up after the reconnect).

Unknown companies and record kinds arsync does not mirror are stored as ``ignored``, logged,
and acknowledged: an error answer would only make the provider retry forever.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from arsync.context import AppContext
from arsync.domain import Entity, SyncPage
from arsync.errors import (
    ArsyncError,
    AuthError,
    ConnectorError,
    InputError,
    WebhookSignatureError,
)
from arsync.models import Allocation, Connection, CreditNote, Invoice, Payment
from arsync.models_webhooks import WebhookEvent
from arsync.outbox import recheck_planned
from arsync.sync import SOURCE_TYPE, apply_page

log = logging.getLogger(__name__)

#: How long a worker may hold claimed events before another may take them over.
CLAIM = timedelta(minutes=5)
#: Events taken per claim; the rest wait for the next round.
CLAIM_BATCH = 500
#: Attempts before an event is given up (the periodic sync still brings the change in).
MAX_ATTEMPTS = 5

#: Provider record kind (lower case) -> the mirror's entity.
QUICKBOOKS_ENTITIES = {"invoice": Entity.INVOICES, "payment": Entity.PAYMENTS,
                       "customer": Entity.CUSTOMERS, "creditmemo": Entity.CREDIT_NOTES}
XERO_ENTITIES = {"invoice": Entity.INVOICES, "contact": Entity.CUSTOMERS,
                 "creditnote": Entity.CREDIT_NOTES}


@dataclass(frozen=True)
class ChangeEvent:
    """One record changed at the provider, as a webhook reported it."""

    tenant_id: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: datetime | None
    dedupe_key: str


# --- signatures ----------------------------------------------------------------------------------


def signature(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)): both providers sign this way."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(secret: str | None, body: bytes, given: str | None) -> None:
    """Raise :class:`WebhookSignatureError` unless ``given`` signs the raw ``body``.

    Constant-time comparison; no secret configured means nothing verifies (never "accept all").
    """
    if not secret:
        raise WebhookSignatureError("no webhook secret is configured; refusing the request")
    if not given or not hmac.compare_digest(signature(secret, body).encode("ascii"),
                                            given.strip().encode("ascii", "replace")):
        raise WebhookSignatureError("webhook signature does not match the body")


# --- parsing -------------------------------------------------------------------------------------


def _hash_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _when(text: Any) -> datetime | None:
    """A provider timestamp as an aware datetime (Xero's carry no zone: they are UTC)."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip().replace("Z", "+00:00")
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":":  # -0700 -> -07:00
        value = value[:-2] + ":" + value[-2:]
    head, dot, rest = value.partition(".")
    if dot:  # Python takes at most 6 fractional digits; CloudEvents send 9
        digits = "".join(c for c in rest if c.isdigit())
        value = head + "." + digits[:6] + rest[len(digits):]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"webhook body is not JSON: {exc}") from exc


def parse_quickbooks(body: bytes) -> list[ChangeEvent]:
    """Both QuickBooks formats: the legacy ``eventNotifications`` and the CloudEvents array."""
    doc = _json(body)
    events: list[ChangeEvent] = []
    if isinstance(doc, list):  # CloudEvents: type "qbo.<entity>.<operation>.v1"
        for ev in doc:
            if not isinstance(ev, dict) or not ev.get("id"):
                raise InputError("CloudEvents item without an id")
            parts = str(ev.get("type") or "").split(".")
            if len(parts) < 3:
                raise InputError(f"CloudEvents type {ev.get('type')!r} is not qbo.<entity>.<op>")
            events.append(ChangeEvent(
                tenant_id=str(ev.get("intuitaccountid") or ""), entity=parts[1],
                entity_id=str(ev.get("intuitentityid") or ""), operation=parts[2],
                occurred_at=_when(ev.get("time")), dedupe_key=f"ce:{ev['id']}"[:128]))
        return events
    if not isinstance(doc, dict) or not isinstance(doc.get("eventNotifications"), list):
        raise InputError("QuickBooks webhook has neither eventNotifications nor a CloudEvents "
                         "array")
    for note in doc["eventNotifications"]:
        realm = str((note or {}).get("realmId") or "")
        entities = ((note or {}).get("dataChangeEvent") or {}).get("entities") or []
        for ent in entities:
            name, rid = str(ent.get("name") or ""), str(ent.get("id") or "")
            op, when = str(ent.get("operation") or ""), str(ent.get("lastUpdated") or "")
            events.append(ChangeEvent(realm, name, rid, op, _when(when),
                                      _hash_key(realm, name, rid, op, when)))
            if ent.get("deletedId"):  # a Merge: the merged-away record is gone
                gone = str(ent["deletedId"])
                events.append(ChangeEvent(realm, name, gone, "Delete", _when(when),
                                          _hash_key(realm, name, gone, "Delete", when)))
    return events


def parse_xero(body: bytes) -> list[ChangeEvent]:
    """Xero's ``{"events": [...]}``; an intent-to-receive check is the same shape, empty."""
    doc = _json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise InputError("Xero webhook has no events list")
    events = []
    for ev in doc["events"]:
        tenant, cat = str(ev.get("tenantId") or ""), str(ev.get("eventCategory") or "")
        rid, op = str(ev.get("resourceId") or ""), str(ev.get("eventType") or "")
        when = str(ev.get("eventDateUtc") or "")
        events.append(ChangeEvent(tenant, cat, rid, op.upper(), _when(when),
                                  _hash_key(tenant, cat, rid, op.upper(), when)))
    return events


# --- storing -------------------------------------------------------------------------------------


def entity_of(provider: str, name: str) -> Entity | None:
    """The mirror entity a provider record kind maps to (None: not mirrored)."""
    table = QUICKBOOKS_ENTITIES if provider == "quickbooks" else XERO_ENTITIES
    return table.get(name.lower())


def record_events(ctx: AppContext, provider: str, events: Iterable[ChangeEvent],
                  now: datetime) -> int:
    """Store each event once; returns how many were new (pending or ignored)."""
    events = list(events)
    if not events:
        return 0
    tenants = {e.tenant_id for e in events}
    with Session(ctx.engine) as s:
        conns = {c.tenant_id: c for c in s.scalars(
            select(Connection).where(Connection.provider == provider)
            .where(Connection.tenant_id.in_(tenants)))}  # type: ignore[attr-defined]
        known = set(s.scalars(select(WebhookEvent.dedupe_key)
                              .where(WebhookEvent.provider == provider)
                              .where(WebhookEvent.dedupe_key.in_(  # type: ignore[attr-defined]
                                  [e.dedupe_key for e in events]))))
    rows = []
    for ev in events:
        if ev.dedupe_key in known:
            continue
        known.add(ev.dedupe_key)  # the same event twice in one body
        conn = conns.get(ev.tenant_id)
        status = "pending"
        if conn is None or conn.status == "disconnected":
            log.info("%s webhook for unknown company %r: acknowledged, ignored", provider,
                     ev.tenant_id)
            status = "ignored"
        elif entity_of(provider, ev.entity) is None or not ev.entity_id:
            status = "ignored"
        rows.append(dict(provider=provider, dedupe_key=ev.dedupe_key,
                         tenant_id=ev.tenant_id[:64], entity=ev.entity[:40],
                         entity_id=ev.entity_id[:64], operation=ev.operation[:20],
                         occurred_at=ev.occurred_at, received_at=now, status=status,
                         connection_id=conn.id if conn is not None else None,
                         processed_at=now if status == "ignored" else None))
    if not rows:
        return 0
    try:  # one transaction for the whole delivery: the provider is waiting for our answer
        with Session(ctx.engine) as s, s.begin():
            s.add_all([WebhookEvent(**row) for row in rows])
        return len(rows)
    except IntegrityError:
        pass  # a concurrent delivery of some of these events won: insert one by one
    new = 0
    for row in rows:
        try:
            with Session(ctx.engine) as s, s.begin():
                s.add(WebhookEvent(**row))
        except IntegrityError:
            continue
        new += 1
    return new


def receive(ctx: AppContext, provider: str, body: bytes, signature_header: str | None,
            now: datetime) -> int:
    """Verify, parse and store one delivery; returns the number of new events.

    Raises:
        WebhookSignatureError: the signature does not verify (nothing is stored).
        InputError: the body is signed but not a webhook we understand (nothing is stored).
    """
    settings = ctx.settings
    secret = (settings.quickbooks_webhook_verifier if provider == "quickbooks"
              else settings.xero_webhook_key)
    verify_signature(secret.get_secret_value() if secret else None, body, signature_header)
    events = parse_quickbooks(body) if provider == "quickbooks" else parse_xero(body)
    return record_events(ctx, provider, events, now)


# --- processing ----------------------------------------------------------------------------------


@dataclass
class ProcessReport:
    """What one round of :func:`process_webhook_events` did."""

    events: int = 0
    records: int = 0
    rechecked: int = 0
    errors: list[str] = field(default_factory=list)


def _claim(ctx: AppContext, owner: str, now: datetime) -> list[WebhookEvent]:
    due = or_(WebhookEvent.status == "pending",
              (WebhookEvent.status == "processing")
              & (WebhookEvent.claim_until < now))  # type: ignore[operator]
    with Session(ctx.engine) as s:
        ids = list(s.scalars(select(WebhookEvent.id).where(due)
                             .order_by(WebhookEvent.id).limit(CLAIM_BATCH)))
    if not ids:
        return []
    with Session(ctx.engine) as s, s.begin():
        # Conditional: an event another worker claimed meanwhile no longer matches ``due``.
        s.execute(update(WebhookEvent).where(WebhookEvent.id.in_(ids))  # type: ignore[union-attr]
                  .where(due).values(status="processing", claim_owner=owner,
                                     claim_until=now + CLAIM,
                                     attempts=WebhookEvent.attempts + 1))
    with Session(ctx.engine, expire_on_commit=False) as s:
        return list(s.scalars(select(WebhookEvent).where(WebhookEvent.claim_owner == owner)
                              .where(WebhookEvent.status == "processing")))


def _settle(ctx: AppContext, rows: list[WebhookEvent], owner: str, now: datetime,
            status: str, error: str | None = None) -> None:
    with Session(ctx.engine) as s, s.begin():
        for row in rows:
            target = status
            if status == "pending" and row.attempts >= MAX_ATTEMPTS:
                target = "failed"
            s.execute(update(WebhookEvent).where(WebhookEvent.id == row.id)
                      .where(WebhookEvent.claim_owner == owner)
                      .values(status=target, claim_owner=None, claim_until=None, error=error,
                              processed_at=now if target != "pending" else None))


def _customers_of(ctx: AppContext, connection_id: int, pages: list[SyncPage]) -> set[str]:
    """External ids of the customers whose books these pages touched (before and after)."""
    customers: set[str] = set()
    tables = {Entity.INVOICES: Invoice, Entity.PAYMENTS: Payment,
              Entity.CREDIT_NOTES: CreditNote}
    with Session(ctx.engine) as s:
        for page in pages:
            ids = [r.external_id for r in page.records] + list(page.deleted_ids)
            if page.entity is Entity.CUSTOMERS:
                customers.update(ids)
                continue
            customers.update(getattr(r, "customer_external_id", "") for r in page.records)
            model = tables[page.entity]
            if ids:  # a record that moved to another customer, or one that was deleted
                customers.update(s.scalars(
                    select(model.customer_external_id).where(model.connection_id == connection_id)
                    .where(model.external_id.in_(ids))))
    customers.discard("")
    return customers


def _paid_before(ctx: AppContext, connection_id: int, entity: Entity,
                 ids: Iterable[str]) -> set[str]:
    """Invoices the mirror has these payments or credit notes applied to."""
    source = SOURCE_TYPE[entity]
    with Session(ctx.engine) as s:
        return set(s.scalars(
            select(Allocation.target_external_id)
            .where(Allocation.connection_id == connection_id)
            .where(Allocation.source_type == source)
            .where(Allocation.source_external_id.in_(list(ids)))  # type: ignore[attr-defined]
            .where(Allocation.target_type == "invoice")))


def _refresh_connection(ctx: AppContext, connection_id: int, rows: list[WebhookEvent],
                        now: datetime) -> tuple[int, int]:
    """Fetch, apply and re-check one connection's changed records; (records, customers)."""
    conn = ctx.connection(connection_id)
    if conn.status != "active":
        raise AuthError(f"connection {connection_id} is {conn.status}", provider=conn.provider)
    connector = ctx.connector_for(conn)
    wanted: dict[Entity, set[str]] = defaultdict(set)
    for row in rows:
        entity = entity_of(conn.provider, row.entity)
        if entity is not None:
            wanted[entity].add(row.entity_id)
    fetched: dict[Entity, SyncPage] = {}
    for entity in (Entity.PAYMENTS, Entity.CREDIT_NOTES):
        if wanted.get(entity):
            page = connector.fetch_changed(entity, sorted(wanted[entity]))  # type: ignore[attr-defined]
            fetched[entity] = page
            # A payment or credit changes the balance of the invoices it pays (now, and before
            # this change: it may have moved, been voided or deleted): read those too, whether
            # or not the provider sent their own update (QuickBooks may not).
            wanted[Entity.INVOICES].update(
                a.target_external_id for r in page.records
                for a in getattr(r, "applications", ()) if a.target_type == "invoice")
            wanted[Entity.INVOICES].update(_paid_before(ctx, connection_id, entity,
                                                        wanted[entity]))
    for entity in (Entity.CUSTOMERS, Entity.INVOICES):
        if wanted.get(entity):
            fetched[entity] = connector.fetch_changed(  # type: ignore[attr-defined]
                entity, sorted(wanted[entity]))
    # Applied customers first and payments last, as a sync does: references resolve in order.
    order = [Entity.CUSTOMERS, Entity.INVOICES, Entity.CREDIT_NOTES, Entity.PAYMENTS]
    pages = [fetched[e] for e in order if e in fetched]
    customers = _customers_of(ctx, connection_id, pages)
    records = 0
    for page in pages:
        with Session(ctx.engine) as s, s.begin():
            records += apply_page(s, connection_id, page, run_started=now, now=ctx.clock.now())
    customers |= _customers_of(ctx, connection_id, pages)
    if customers:
        recheck_planned(ctx, connection_id, sorted(customers), ctx.clock.now())
    return records, len(customers)


def process_webhook_events(ctx: AppContext, now: datetime | None = None) -> ProcessReport:
    """Do the targeted refresh for every due webhook event (see the module docstring)."""
    now = now or ctx.clock.now()
    owner = uuid.uuid4().hex
    report = ProcessReport()
    rows = _claim(ctx, owner, now)
    by_conn: dict[int, list[WebhookEvent]] = defaultdict(list)
    for row in rows:
        by_conn[row.connection_id or 0].append(row)
    for cid, batch in sorted(by_conn.items()):
        report.events += len(batch)
        try:
            records, customers = _refresh_connection(ctx, cid, batch, now)
        except (AuthError, InputError) as exc:
            log.warning("webhook refresh for connection %s dropped: %s", cid, exc)
            _settle(ctx, batch, owner, ctx.clock.now(), "failed", str(exc))
            report.errors.append(f"connection {cid}: {exc}")
            continue
        except (ConnectorError, ArsyncError) as exc:
            retry = "pending" if exc.retryable else "failed"
            log.warning("webhook refresh for connection %s: %s (%s)", cid, exc, retry)
            _settle(ctx, batch, owner, ctx.clock.now(), retry, str(exc))
            report.errors.append(f"connection {cid}: {exc}")
            continue
        _settle(ctx, batch, owner, ctx.clock.now(), "done")
        report.records += records
        report.rechecked += customers
    return report
