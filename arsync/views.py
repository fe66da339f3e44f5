"""Mirror rows to the rules' frozen views, a whole set of customers at a time.

Every loader here runs a fixed number of set-based queries per connection (invoices, customers,
ledger, promises, disputes, plans, overrides), never one per invoice or customer.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, select
from sqlalchemy.orm import Session

from arsync.errors import InputError
from arsync.models import (
    Action,
    Connection,
    Customer,
    CustomerOverride,
    Dispute,
    Invoice,
    InvoiceOverride,
    PaymentPlan,
    Promise,
)
from rules import (
    ActionHistory,
    ActionRecord,
    CompanyContext,
    CoveredItem,
    CustomerView,
    InstalmentView,
    InvoiceView,
    PlanView,
    Policy,
    PolicyError,
    PromiseView,
    default_policy,
    load_policy,
)

#: Ledger statuses the rules know; ``sending`` is read as ``sent`` (arsync sends at most once).
HISTORY_STATUS = {"sending": "sent"}
#: A review date meaning "nothing will become due by itself" (a sync or a person resets it).
NEVER = date(9999, 12, 31)


@dataclass
class CustomerBundle:
    """Everything the rules need about one customer, plus the addresses to write to."""

    customer: CustomerView
    invoices: list[InvoiceView] = field(default_factory=list)
    records: list[tuple[int, ActionRecord]] = field(default_factory=list)
    email: str | None = None
    phone: str | None = None
    billing_emails: dict[str, str] = field(default_factory=dict)
    exchange_rates: dict[str, Decimal] = field(default_factory=dict)

    def history(self, without: Iterable[int] = ()) -> ActionHistory:
        """The customer's ledger history, leaving out the actions ``without`` (by id)."""
        skip = set(without)
        return ActionHistory(tuple(r for i, r in self.records if i not in skip))


def company_of(conn: Connection) -> CompanyContext:
    """The rules' view of where a connection's company is."""
    return CompanyContext(timezone=conn.timezone or None, country=conn.country or None,
                          name=conn.name)


@lru_cache(maxsize=64)
def _parse_policy(text: str) -> Policy:
    return load_policy(text, source="connection policy")


def policy_for(conn: Connection) -> Policy:
    """The connection's own policy if it has one, else the default."""
    if not conn.policy_yaml:
        return default_policy()
    return _parse_policy(conn.policy_yaml)


def validate_policy_text(text: str, source: str) -> Policy:
    """Parse a policy a person supplied; a bad one is an :class:`InputError` naming the line."""
    try:
        return load_policy(text, source=source)
    except PolicyError as exc:
        where = f"{source}:{exc.line}" if exc.line else source
        first = str(exc).splitlines()[0] if str(exc) else "invalid policy"
        raise InputError(f"{where}: {first}") from None


def record_of(row: Any) -> ActionRecord:
    """A ledger row (or a row of its columns) as the rules' history record, with ``covered``."""
    covered = tuple(CoveredItem(c["invoice"], c["stage"], c["anchor"],
                                date.fromisoformat(c["anchor_date"]))
                    for c in json.loads(row.covered_json))
    return ActionRecord(stage_id=row.stage, channel=row.channel,
                        invoice_external_ids=tuple(json.loads(row.invoice_ids_json)),
                        local_date=row.local_date,
                        status=HISTORY_STATUS.get(row.status, row.status), covered=covered)


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # built once: dumps(...) builds one a call


def covered_json(items: Iterable[CoveredItem]) -> str:
    return _COMPACT_JSON.encode([{"invoice": c.invoice_external_id, "stage": c.stage_id,
                                  "anchor": c.anchor, "anchor_date": c.anchor_date.isoformat()}
                                 for c in items])


def open_customers(connection_id: int) -> Select[Any]:
    """Customers with at least one open invoice."""
    return (select(Invoice.customer_external_id).distinct()
            .where(Invoice.connection_id == connection_id, Invoice.status == "open"))


# Statements are built once: a routine pass runs them for thousands of connections, and building
# SQLAlchemy expressions costs more than SQLite takes to answer them.
_CID = bindparam("cid")
_IDS = bindparam("ids", expanding=True)
_Q_OVERRIDES = (select(CustomerOverride.customer_external_id, CustomerOverride.excluded,
                       CustomerOverride.paused_until)
                .where(CustomerOverride.connection_id == _CID,
                       CustomerOverride.customer_external_id.in_(_IDS)))
_Q_CUSTOMERS = (select(Customer.external_id, Customer.name, Customer.email, Customer.phone)
                .where(Customer.connection_id == _CID, Customer.external_id.in_(_IDS)))
_Q_INVOICES = (select(Invoice.external_id, Invoice.number, Invoice.customer_external_id,
                      Invoice.currency, Invoice.total, Invoice.balance, Invoice.issue_date,
                      Invoice.due_date, Invoice.billing_email, Invoice.exchange_rate)
               .where(Invoice.connection_id == _CID, Invoice.status == "open",
                      Invoice.customer_external_id.in_(_IDS)))
_Q_HISTORY = (select(Action.id, Action.customer_external_id, Action.stage, Action.channel,
                     Action.invoice_ids_json, Action.local_date, Action.status,
                     Action.covered_json)
              .where(Action.connection_id == _CID, Action.customer_external_id.in_(_IDS))
              .where(Action.status != "cancelled"))  # cancelled rows mean nothing to the rules
_Q_PROMISES = (select(Promise.invoice_external_id, Promise.promised_on, Promise.amount,
                      Promise.recorded_at)
               .where(Promise.connection_id == _CID, Promise.customer_external_id.in_(_IDS))
               .order_by(Promise.recorded_at, Promise.id))
_Q_DISPUTES = (select(Dispute.invoice_external_id)
               .where(Dispute.connection_id == _CID, Dispute.resolved_at.is_(None),  # type: ignore[union-attr]
                      Dispute.customer_external_id.in_(_IDS)))
_Q_PLANS = (select(PaymentPlan.invoice_external_id, PaymentPlan.instalments_json,
                   PaymentPlan.balance_at_start)
            .where(PaymentPlan.connection_id == _CID, PaymentPlan.cancelled_at.is_(None),  # type: ignore[union-attr]
                   PaymentPlan.customer_external_id.in_(_IDS))
            .order_by(PaymentPlan.created_at, PaymentPlan.id))
_Q_PAUSES = (select(InvoiceOverride.invoice_external_id, InvoiceOverride.paused_until)
             .join(Invoice, and_(Invoice.connection_id == InvoiceOverride.connection_id,
                                 Invoice.external_id == InvoiceOverride.invoice_external_id))
             .where(InvoiceOverride.connection_id == _CID,
                    Invoice.customer_external_id.in_(_IDS)))
#: Which of the per-connection tables hold anything for this connection, in one query: most
#: connections have no promise, dispute, plan, pause or override, and a first pass no ledger
#: history, so the queries for those are skipped (each costs more to issue than to answer).
_Q_PRESENT = select(
    exists().where(CustomerOverride.connection_id == _CID).label("overrides"),
    exists().where(Promise.connection_id == _CID).label("promises"),
    exists().where(Dispute.connection_id == _CID,
                   Dispute.resolved_at.is_(None)).label("disputes"),  # type: ignore[union-attr]
    exists().where(PaymentPlan.connection_id == _CID,
                   PaymentPlan.cancelled_at.is_(None)).label("plans"),  # type: ignore[union-attr]
    exists().where(InvoiceOverride.connection_id == _CID).label("pauses"),
    exists().where(Action.connection_id == _CID).label("history"))
#: Customers per batch of queries (keeps every IN list far below any driver's limit).
CHUNK = 500


def load_bundles(session: Session, conn: Connection,
                 customers: Iterable[str]) -> dict[str, CustomerBundle]:
    """Bundles for the given customers (external ids), open invoices only.

    Only open invoices are loaded: the rules chase nothing else, and history records name the
    invoices they covered, so closed invoices need no view. Runs a fixed number of queries per
    :data:`CHUNK` customers.
    """
    ids = sorted(set(customers))
    bundles: dict[str, CustomerBundle] = {}
    if not ids:
        return bundles
    cid = conn.id or 0
    present = session.connection().execute(_Q_PRESENT, {"cid": cid}).one()
    for i in range(0, len(ids), CHUNK):
        bundles.update(_load_chunk(session, cid, ids[i:i + CHUNK], present))
    return bundles


def _load_chunk(session: Session, cid: int, ids: list[str],
                present: Any) -> dict[str, CustomerBundle]:
    params = {"cid": cid, "ids": ids}
    db = session.connection()  # Core: these are plain column reads, no ORM identity work
    bundles: dict[str, CustomerBundle] = {}
    overrides = ({r.customer_external_id: r for r in db.execute(_Q_OVERRIDES, params)}
                 if present.overrides else {})
    for row in db.execute(_Q_CUSTOMERS, params):
        o = overrides.get(row.external_id)
        view = CustomerView(external_id=row.external_id, name=row.name,
                            excluded=bool(o and o.excluded),
                            paused_until=o.paused_until if o else None)
        bundles[row.external_id] = CustomerBundle(view, email=row.email, phone=row.phone)

    inv_rows = list(db.execute(_Q_INVOICES, params))
    if not inv_rows:
        return bundles
    extras = _invoice_extras(db, params, present)
    nothing = (None, False, None, None)
    # Plain tuple unpacking: a Row's attribute access costs more than building the view.
    for (ext, number, customer, currency, total, balance, issued, due, billing_email,
         rate) in inv_rows:
        bundle = bundles.get(customer)
        if bundle is None:  # an invoice for a customer the mirror lacks: still chase it
            bundle = bundles[customer] = CustomerBundle(
                CustomerView(external_id=customer, name=customer))
        due = due or issued
        if due is None:
            continue  # no date to measure anything from
        promise, disputed, plan, paused = extras.get(ext, nothing) if extras else nothing
        bundle.invoices.append(InvoiceView(
            external_id=ext, number=number or ext, currency=currency,
            total=total, balance=balance, issue_date=issued or due, due_date=due,
            status="open", paused_until=paused, disputed=disputed, promise=promise,
            plan=_plan_view(plan, balance) if plan is not None else None))
        if billing_email:
            bundle.billing_emails[ext] = billing_email
        if rate:
            bundle.exchange_rates[ext] = rate

    for row in (db.execute(_Q_HISTORY, params) if present.history else ()):
        bundle = bundles.get(row.customer_external_id)
        if bundle is not None:
            bundle.records.append((row.id, record_of(row)))
    return bundles


def _invoice_extras(db: Any, params: dict[str, Any], present: Any,
                    ) -> dict[str, tuple[PromiseView | None, bool, Any, date | None]]:
    """Per invoice: newest promise, open dispute, live plan, pause (only invoices that have any).

    ``present`` says which of those tables hold anything for the connection (the others are not
    queried)."""
    promises = ({r.invoice_external_id: PromiseView(r.promised_on, r.amount, r.recorded_at)
                 for r in db.execute(_Q_PROMISES, params)} if present.promises else {})
    disputed = set(db.execute(_Q_DISPUTES, params).scalars()) if present.disputes else set()
    plans = ({p.invoice_external_id: p for p in db.execute(_Q_PLANS, params)}
             if present.plans else {})
    paused = ({r.invoice_external_id: r.paused_until for r in db.execute(_Q_PAUSES, params)}
              if present.pauses else {})
    out = {}
    for inv in set(promises) | disputed | set(plans) | set(paused):
        out[inv] = (promises.get(inv), inv in disputed, plans.get(inv), paused.get(inv))
    return out


def _plan_view(plan: Any, balance: Decimal) -> PlanView:
    """Instalments paid in date order by how far the balance fell since the plan was agreed."""
    paid_so_far = plan.balance_at_start - balance
    running = Decimal(0)
    instalments = []
    for item in json.loads(plan.instalments_json):
        running += Decimal(item["amount"])
        instalments.append(InstalmentView(date.fromisoformat(item["date"]),
                                          Decimal(item["amount"]), running <= paid_so_far))
    return PlanView(tuple(instalments))


def recipient_for(bundle: CustomerBundle, invoice_ids: Iterable[str], channel: str) -> str | None:
    """Where a message goes: an invoice's billing email first, then the customer's address."""
    if channel == "sms":
        return bundle.phone
    for inv in sorted(invoice_ids):
        if inv in bundle.billing_emails:
            return bundle.billing_emails[inv]
    return bundle.email


def now_iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def invoice_lookup(bundle: CustomerBundle) -> dict[str, InvoiceView]:
    return {i.external_id: i for i in bundle.invoices}


def group_by(items: Iterable[Any], key: Any) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return out
