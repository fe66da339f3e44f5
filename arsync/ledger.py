"""The action ledger: plans persisted once, and every status change a conditional UPDATE.

Statuses (the contract's, plus ``sending`` inside the outbox and the rules' ``done``/``rejected``)::

    awaiting_approval ──approve──▶ planned ──claim──▶ sending ──▶ sent
          │ reject ▶ rejected         │                 │  ├──▶ failed   (the sender refused)
          └ expire ▶ cancelled        ├ ▶ cancelled     │  ├──▶ planned  (retry / proven unsent)
                                      ├ ▶ failed        │  └──▶ unknown  (claim expired, outcome
                                      └ ▶ done (tasks)  │                 unknowable: a person)
    unknown ──person──▶ sent | failed

A change is ``UPDATE … WHERE id = ? AND status IN (allowed sources)``: zero rows means someone
else moved it first (or the move is illegal, which :func:`transition` then reports).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Date, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from arsync.dbtypes import UTCDateTime
from arsync.errors import ArsyncError, InputError
from arsync.models import Action, Invoice
from arsync.views import covered_json
from rules import PlannedAction, explain

STATUSES = ("awaiting_approval", "planned", "sending", "sent", "failed", "cancelled", "unknown",
            "done", "rejected")
#: target status -> the statuses it may be reached from.
SOURCES: dict[str, frozenset[str]] = {
    "planned": frozenset({"awaiting_approval", "sending"}),
    "sending": frozenset({"planned"}),
    "sent": frozenset({"sending", "unknown"}),
    "failed": frozenset({"planned", "sending", "unknown"}),
    "unknown": frozenset({"sending"}),
    "cancelled": frozenset({"planned", "awaiting_approval"}),
    "rejected": frozenset({"awaiting_approval"}),
    "done": frozenset({"planned"}),
}


class IllegalTransitionError(ArsyncError):
    """A status change the ledger does not allow (e.g. re-sending a sent action)."""

    def __init__(self, action_id: int, current: str, target: str) -> None:
        super().__init__(f"action {action_id} is {current}; it cannot become {target}")
        self.action_id, self.current, self.target = action_id, current, target


def ledger_key(connection_id: int, action: PlannedAction) -> str:
    """The ledger's unique key: the connection id plus the rules' idempotency key."""
    return f"{connection_id}:{action.idempotency_key()}"


def stored_reason(action: PlannedAction) -> dict[str, Any]:
    """The rules' reason as the ledger keeps it: every figure, minus the per-line ``skipped``
    map of stages that did not fire (most of its size, and not part of why the action happened)."""
    reason = dict(action.reason)
    reason["invoices"] = [_without_skipped(line) for line in reason.get("invoices", ())]
    return reason


def _without_skipped(line: dict[str, Any]) -> dict[str, Any]:
    out = dict(line)  # a C-level copy, then one deletion: keys keep their order
    out.pop("skipped", None)
    return out


#: ``json.dumps(..., separators=(",", ":"), default=str)`` with the encoder built once (``dumps``
#: with arguments builds a new encoder on every call).
_REASON_JSON = json.JSONEncoder(separators=(",", ":"), default=str)
#: orjson with the same output: dates and datetimes go through ``str`` as with ``default=str``.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def reason_text(reason: Any) -> str:
    """``reason`` as the ledger stores it: exactly ``_REASON_JSON.encode(reason)``.

    Encoding reasons was about a tenth of a full policy pass; orjson does it several times
    faster. Its text is the standard encoder's except that it does not escape non-ASCII
    characters or DEL (U+007F) and refuses integers beyond 64 bits, so those cases go through
    the standard encoder and the stored text stays byte-for-byte the same. (Non-finite floats
    would differ, but a reason holds none: money is a decimal string.)
    """
    try:
        text = orjson.dumps(reason, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return _REASON_JSON.encode(reason)
    return text if text.isascii() and "\x7f" not in text else _REASON_JSON.encode(reason)


def row_values(connection_id: int, action: PlannedAction, *, status: str, recipient: str | None,
               now: datetime, status_reason: str | None = None,
               priority: Decimal | None = None) -> dict[str, Any]:
    """The column values of a new ledger row for ``action``."""
    return {
        "connection_id": connection_id, "idempotency_key": ledger_key(connection_id, action),
        "customer_external_id": action.customer_external_id,
        "invoice_ids_json": json.dumps(sorted(action.invoice_external_ids)),
        "stage": action.stage_id, "channel": action.channel, "kind": action.kind,
        "tone": action.tone, "template": action.template, "task_kind": action.task_kind,
        "recipient": recipient, "status": status, "status_reason": status_reason,
        "planned_for": action.planned_for, "local_date": action.local_date,
        "covered_json": covered_json(action.covered),
        "reason_json": reason_text(stored_reason(action)),
        "explanation": explain(action), "priority": priority, "outcome_json": None,
        "message_id": None, "attempts": 0, "claim_owner": None, "claim_expires_at": None,
        "sent_at": None, "completed_at": None, "created_at": now, "updated_at": now,
    }


def insert_once(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert ledger rows, skipping any whose key is already there; returns how many were new."""
    return sum(insert_counts(session, rows).values())


def insert_counts(session: Session, rows: list[dict[str, Any]]) -> Counter[int]:
    """Insert ledger rows (of any connections), skipping any whose key is already there; returns
    how many were new per connection id.

    One ``INSERT … ON CONFLICT (idempotency_key) DO NOTHING RETURNING connection_id`` sent as
    multi-row VALUES batches: a skipped row returns nothing, so what comes back is exactly the
    new rows (no counting queries before and after).
    """
    if not rows:
        return Counter()
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return _insert_counts_sqlite(session, rows)
    stmt = _INSERT_ONCE.get(dialect)
    if stmt is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = Action.__table__  # type: ignore[attr-defined]
        stmt = _INSERT_ONCE[dialect] = insert(table).on_conflict_do_nothing(
            index_elements=["idempotency_key"]).returning(table.c.connection_id)
    return Counter(session.connection().execute(stmt, rows).scalars())


_INSERT_ONCE: dict[str, Any] = {}


def _insert_counts_sqlite(session: Session, rows: list[dict[str, Any]]) -> Counter[int]:
    """:func:`insert_counts` on SQLite: the driver's ``executemany`` of pre-converted tuples.

    SQLAlchemy's per-value type processing and multi-row statement building were about a tenth
    of a full policy pass. The values stored are the same as SQLAlchemy's: each column goes
    through its own bind processor, except dates and aware datetimes, converted here the way
    ``UTCDateTime`` and SQLite's ``DATETIME``/``DATE`` do (UTC, naive, microseconds always
    written). One ``executemany`` per run of rows of one connection: the driver's row count
    (rows skipped by ``ON CONFLICT DO NOTHING`` count 0) is that connection's new rows.
    """
    db = session.connection()
    sql, converters = _sqlite_insert(db.dialect)
    memo: dict[Any, Any] = {}  # created_at, updated_at and planned_for repeat across rows
    runs: list[tuple[int, list[tuple[Any, ...]]]] = []
    start = 0
    while start < len(rows):
        cid = rows[start]["connection_id"]
        end = start + 1
        while end < len(rows) and rows[end]["connection_id"] == cid:
            end += 1
        runs.append((cid, [
            tuple([row[n] if conv is None else conv(row[n], memo) for n, conv in converters])
            for row in rows[start:end]]))
        start = end
    # Converted before the first write: SQLite's write lock is held from there to the commit.
    counts: Counter[int] = Counter()
    for cid, params in runs:
        counts[cid] += driver_executemany(db, sql, params)
    return +counts


def driver_executemany(db: Connection, sql: str, params: list[tuple[Any, ...]]) -> int:
    """``executemany`` on the driver's own cursor, in ``db``'s transaction; returns the driver's
    row count. A driver error is raised as SQLAlchemy's (``IntegrityError``, ...), as through
    ``db.execute``, so callers that catch :class:`~sqlalchemy.exc.SQLAlchemyError` still do."""
    cursor = db.connection.cursor()
    try:
        cursor.executemany(sql, params)
        return max(cursor.rowcount, 0)
    except db.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, params[:10], exc, db.dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()


def _sqlite_insert(dialect: Any) -> tuple[str, list[tuple[str, Any]]]:
    """The ledger INSERT for the SQLite driver and, per column, its value converter."""
    if _SQLITE_INSERT:
        return _SQLITE_INSERT[0]
    table = Action.__table__  # type: ignore[attr-defined]
    converters: list[tuple[str, Any]] = []
    for col in table.columns:
        if col.name == "id":
            continue
        if isinstance(col.type, UTCDateTime):
            conv: Any = _sqlite_datetime
        elif isinstance(col.type, Date):
            conv = _sqlite_date
        else:
            proc = col.type._cached_bind_processor(dialect)
            conv = None if proc is None else (lambda v, _memo, proc=proc: proc(v))
        converters.append((col.name, conv))
    names = [n for n, _ in converters]
    compiled = sqlite.insert(table).on_conflict_do_nothing(
        index_elements=["idempotency_key"]).compile(dialect=dialect, column_keys=names)
    if list(compiled.positiontup or ()) != names:  # the tuples are built in this order
        raise RuntimeError("unexpected parameter order in the compiled ledger INSERT")
    sql = str(compiled)
    _SQLITE_INSERT.append((sql, converters))
    return sql, converters


_SQLITE_INSERT: list[tuple[str, list[tuple[str, Any]]]] = []


def _sqlite_datetime(value: Any, memo: dict[Any, Any]) -> str | None:
    """``UTCDateTime`` then SQLite's ``DATETIME`` storage: naive UTC, always with microseconds."""
    if value is None:
        return None
    text = memo.get(value)
    if text is None:
        text = memo[value] = sqlite_stamp(value)
    return text


def sqlite_stamp(value: datetime) -> str:
    """An aware instant as ``UTCDateTime`` stores it on SQLite (naive UTC, with microseconds)."""
    if value.tzinfo is None:  # as UTCDateTime: a naive datetime is refused
        raise ValueError(f"naive datetime {value!r} cannot be stored; attach a time zone")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_date(value: Any, _memo: dict[Any, Any]) -> str | None:
    """SQLite's ``DATE`` storage (``YYYY-MM-DD``)."""
    if value is None:
        return None
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def transition(session: Session, action_id: int, target: str, *, now: datetime,
               reason: str | None = None, expect: Iterable[str] | None = None,
               **values: Any) -> bool:
    """Move one action to ``target`` if its current status allows it.

    Returns False when the row is in a status ``expect`` excludes (someone else got there
    first); raises :class:`IllegalTransitionError` when the ledger forbids the move and
    :class:`InputError` when there is no such action.
    """
    allowed = SOURCES[target] if expect is None else SOURCES[target] & set(expect)
    changes: dict[str, Any] = {"status": target, "updated_at": now, **values}
    if reason is not None:
        changes["status_reason"] = reason
    result = session.execute(update(Action).where(Action.id == action_id)
                             .where(Action.status.in_(allowed)).values(**changes))  # type: ignore[attr-defined]
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    current = session.scalar(select(Action.status).where(Action.id == action_id))
    if current is None:
        raise InputError(f"no action with id {action_id}")
    if current not in SOURCES[target]:
        raise IllegalTransitionError(action_id, current, target)
    return False


def claim(engine: Engine, action_id: int, *, owner: str, now: datetime, lease: timedelta,
          message_id: str) -> bool:
    """``planned`` → ``sending`` for this worker, committed at once; False: not ours to send."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(Action).where(Action.id == action_id, Action.status == "planned")
            .where(Action.planned_for <= now)
            .values(status="sending", claim_owner=owner, claim_expires_at=now + lease,
                    message_id=message_id, attempts=Action.attempts + 1, updated_at=now))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(engine: Engine, action_id: int, target: str, *, owner: str, now: datetime,
           reason: str | None = None, **values: Any) -> bool:
    """Leave ``sending`` (only while this worker still holds the claim)."""
    changes: dict[str, Any] = {"status": target, "updated_at": now, "claim_owner": None,
                               "claim_expires_at": None, **values}
    if reason is not None:
        changes["status_reason"] = reason
    with Session(engine) as session, session.begin():
        result = session.execute(update(Action).where(Action.id == action_id)
                                 .where(Action.status == "sending", Action.claim_owner == owner)
                                 .values(**changes))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_for_review(session: Session, connection_id: int, customer_ids: Iterable[str]) -> None:
    """Have the next pass look at these customers again (their history or records changed)."""
    ids = sorted(set(customer_ids))
    if ids:
        session.execute(update(Invoice).where(Invoice.connection_id == connection_id)
                        .where(Invoice.customer_external_id.in_(ids))
                        .where(Invoice.status == "open").values(review_on=None))


def expire_unapproved(session: Session, connection_id: int, today: Any, now: datetime) -> int:
    """Actions still awaiting approval after their day passed are cancelled (and re-planned)."""
    stale = list(session.execute(
        select(Action.id, Action.customer_external_id)
        .where(Action.connection_id == connection_id, Action.status == "awaiting_approval")
        .where(Action.local_date < today)))
    for action_id, _ in stale:
        transition(session, action_id, "cancelled", now=now, expect={"awaiting_approval"},
                   reason="not approved on its day; planned again if still due")
    mark_for_review(session, connection_id, (c for _, c in stale))
    return len(stale)
