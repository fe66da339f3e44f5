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
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Select, and_, bindparam, exists, select
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from arsync.dbtypes import Money
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


class _Present(NamedTuple):
    """Which per-connection tables hold anything for a connection (see ``_Q_PRESENT``)."""

    overrides: bool
    promises: bool
    disputes: bool
    plans: bool
    pauses: bool
    history: bool


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
    return _record(row.stage, row.channel, row.invoice_ids_json, row.local_date, row.status,
                   row.covered_json)


def _record(stage: str, channel: str, invoice_ids_json: str, local_date: date, status: str,
            covered_json: str) -> ActionRecord:
    covered = tuple(CoveredItem(c["invoice"], c["stage"], c["anchor"],
                                date.fromisoformat(c["anchor_date"]))
                    for c in json.loads(covered_json))
    return ActionRecord(stage_id=stage, channel=channel,
                        invoice_external_ids=tuple(json.loads(invoice_ids_json)),
                        local_date=local_date, status=HISTORY_STATUS.get(status, status),
                        covered=covered)


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # built once: dumps(...) builds one a call


def covered_json(items: Iterable[CoveredItem]) -> str:
    """``covered`` as the ledger stores it: exactly ``_COMPACT_JSON.encode(...)`` of its items.

    orjson writes the same compact text several times faster, except that it leaves non-ASCII
    characters and DEL unescaped: such text goes through the standard encoder.
    """
    value = [{"invoice": c.invoice_external_id, "stage": c.stage_id, "anchor": c.anchor,
              "anchor_date": c.anchor_date.isoformat()} for c in items]
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # not a str subclass orjson knows: the standard encoder decides
        return _COMPACT_JSON.encode(value)
    return text if text.isascii() and "\x7f" not in text else _COMPACT_JSON.encode(value)


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


class DriverQuery:
    """A prebuilt Core SELECT that, on SQLite, runs on the driver's own cursor.

    A policy pass runs a handful of small queries per connection; through ``Connection.execute``
    the execution context, the per-row ``Row`` objects and the per-value type processors cost
    more than SQLite takes to answer. Here the statement is compiled once, an expanding ``IN``
    is spelled out per call, literal and typed parameters go through their bind processors, and
    each result column through its type's result processor, a column at a time, except money,
    converted here as ``Money`` does (an exact ``Decimal`` from the stored text, never float).
    Driver errors are raised as SQLAlchemy's. Other databases run the statement as usual. Rows
    come back as plain tuples, in column order.
    """

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt
        self._prepared: Any = None

    def rows(self, db: DbConnection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if db.dialect.name != "sqlite":
            return [tuple(r) for r in db.execute(self.stmt, params)]
        sql, names, fixed, binds, expanding, convs = self._prepare(db.dialect)
        args: list[Any] = []
        for name in names:
            value = params[name] if name in params else fixed[name]
            if name == expanding:
                args.extend(value)
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * len(value)) or
                                  "NULL")
            else:
                proc = binds.get(name)
                args.append(value if proc is None else proc(value))
        cursor = db.connection.cursor()
        try:
            cursor.execute(sql, args)
            rows = cursor.fetchall()
        except db.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, args, exc, db.dialect.loaded_dbapi.Error) from exc
        finally:
            cursor.close()
        if not rows or not any(convs):
            return rows
        cols: list[Any] = list(zip(*rows, strict=True))  # converted a column at a time, in C
        for i, conv in enumerate(convs):
            if conv is not None:
                col = cols[i]
                cols[i] = ([None if v is None else conv(v) for v in col] if None in col
                           else map(conv, col))
        return list(zip(*cols, strict=True))

    def _prepare(self, dialect: Any) -> Any:
        if self._prepared is None:
            compiled = self.stmt.compile(dialect=dialect)
            names = list(compiled.positiontup or ())
            expanding = [b.key for b in compiled.binds.values() if b.expanding]
            if len(expanding) > 1:
                raise RuntimeError("DriverQuery handles one expanding IN at most")
            binds = {}
            for name in names:
                proc = compiled.binds[name].type._cached_bind_processor(dialect)
                if proc is not None:
                    binds[name] = proc
            fixed = {n: compiled.binds[n].value for n in names
                     if not compiled.binds[n].required and n not in expanding}
            convs = [_fast_result(c.type, dialect) for c in self.stmt.selected_columns]
            self._prepared = (str(compiled), names, fixed, binds,
                              expanding[0] if expanding else None, convs)
        return self._prepared


def _fast_result(type_: Any, dialect: Any) -> Any:
    """The result converter of a column type on SQLite (None: the value as the driver gives it)."""
    if isinstance(type_, Money):
        return _money
    return type_._cached_result_processor(dialect, None)


def _money(value: Any) -> Decimal:
    # As Money.process_result_value: text (or a number SQLite chose to store) to an exact Decimal.
    return Decimal(value) if type(value) is str else Decimal(str(value))


_D_PRESENT = DriverQuery(_Q_PRESENT)
_D_CUSTOMERS = DriverQuery(_Q_CUSTOMERS)
_D_INVOICES = DriverQuery(_Q_INVOICES)
_D_HISTORY = DriverQuery(_Q_HISTORY)


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
    db = session.connection()
    (overrides, promises, disputes, plans, pauses, history), = _D_PRESENT.rows(db, {"cid": cid})
    present = _Present(overrides, promises, disputes, plans, pauses, history)
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
    for ext, name, email, phone in _D_CUSTOMERS.rows(db, params):
        o = overrides.get(ext)
        view = CustomerView(external_id=ext, name=name, excluded=bool(o and o.excluded),
                            paused_until=o.paused_until if o else None)
        bundles[ext] = CustomerBundle(view, email=email, phone=phone)

    inv_rows = _D_INVOICES.rows(db, params)
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

    for (action_id, customer, stage, channel, invoice_ids_json, local_date, status,
         covered) in (_D_HISTORY.rows(db, params) if present.history else ()):
        bundle = bundles.get(customer)
        if bundle is not None:
            bundle.records.append((action_id, _record(stage, channel, invoice_ids_json,
                                                      local_date, status, covered)))
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
