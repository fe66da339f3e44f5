"""Several connections planned, then written in one transaction: nothing lost, nothing twice."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from arsync import passes
from arsync.ledger import _REASON_JSON, reason_text
from arsync.models import Action, Connection, Invoice
from arsync.passes import load_connections, plan_connection, plan_connections, run_all
from tests.arsync.ledger_world import NOW, RecordingSender, context_on, seed


def _keys(engine: Engine) -> list[tuple[int, str]]:
    with Session(engine) as s:
        return sorted((a.connection_id, a.idempotency_key) for a in s.scalars(select(Action)))


def _marks(engine: Engine) -> list[date | None]:
    with Session(engine) as s:
        return list(s.scalars(select(Invoice.review_on).order_by(Invoice.id)))


def test_a_batch_writes_what_planning_each_connection_alone_writes(
        engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path)
    conns = [seed(engine, customers=n) for n in (1, 2, 3)]
    results = plan_connections(ctx, conns, NOW, full=True)
    assert [(results[c.id or 0].evaluated, results[c.id or 0].new) for c in conns] == [
        (1, 1), (2, 2), (3, 3)]
    batched = _keys(engine)
    assert len(batched) == 6
    with Session(engine) as s, s.begin():  # the same plans, one connection at a time
        s.execute(text("DELETE FROM actions"))
        s.execute(update(Invoice).values(review_on=None))
    assert [plan_connection(ctx, c, NOW, full=True).new for c in conns] == [1, 2, 3]
    assert _keys(engine) == batched


def test_one_connection_failing_to_plan_costs_the_others_nothing(
        engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path)
    good, bad, other = (seed(engine, customers=2) for _ in range(3))
    with Session(engine) as s, s.begin():  # a stored policy that no longer parses
        s.execute(update(Connection).where(Connection.id == bad.id)
                  .values(policy_yaml="stages: [not, a, policy"))
    conns = load_connections(ctx, [good.id or 0, bad.id or 0, other.id or 0])
    results = plan_connections(ctx, conns, NOW)
    assert results[good.id or 0].new == results[other.id or 0].new == 2
    failed = results[bad.id or 0]
    assert (failed.new, failed.evaluated) == (0, 0)
    assert len(failed.errors) == 1
    assert failed.errors[0].startswith(f"connection {bad.id}: planning failed:")
    assert {cid for cid, _ in _keys(engine)} == {good.id, other.id}
    # The failed connection's customers are still due; the others' are marked reviewed.
    with Session(engine) as s:
        marks = {cid: set(s.scalars(select(Invoice.review_on)
                                    .where(Invoice.connection_id == cid)))
                 for cid in (good.id, bad.id)}
    assert marks[bad.id] == {None}
    assert None not in marks[good.id]

    with Session(engine) as s, s.begin():  # fixed: the re-run adds only what was missing
        s.execute(update(Connection).where(Connection.id == bad.id).values(policy_yaml=None))
    again = plan_connections(ctx, load_connections(ctx, [c.id or 0 for c in conns]), NOW)
    assert [again[c.id or 0].new for c in conns] == [0, 2, 0]
    assert [again[c.id or 0].evaluated for c in conns] == [0, 2, 0]
    assert len(_keys(engine)) == 6


def test_a_write_that_fails_midway_leaves_nothing_and_the_rerun_converges(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    """The batch is one transaction: a database error while writing the third connection's rows
    rolls back the first two connections' rows and review marks as well."""
    ctx = context_on(sqlite_engine, tmp_path)
    conns = [seed(sqlite_engine, customers=2) for _ in range(3)]
    with sqlite_engine.begin() as db:
        db.execute(text(f"CREATE TRIGGER fail_third BEFORE INSERT ON actions "
                        f"WHEN NEW.connection_id = {conns[2].id} "
                        f"BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    with pytest.raises(SQLAlchemyError, match="disk full"):
        plan_connections(ctx, conns, NOW)
    assert _keys(sqlite_engine) == []
    assert set(_marks(sqlite_engine)) == {None}

    with sqlite_engine.begin() as db:
        db.execute(text("DROP TRIGGER fail_third"))
    first = plan_connections(ctx, conns, NOW)
    assert [first[c.id or 0].new for c in conns] == [2, 2, 2]
    assert None not in _marks(sqlite_engine)
    rerun = plan_connections(ctx, conns, NOW, full=True)
    assert [rerun[c.id or 0].new for c in conns] == [0, 0, 0]
    assert len(_keys(sqlite_engine)) == 6


def test_run_all_in_batches_plans_and_sends_every_connection_once(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passes, "BATCH", 2)  # three connections: a batch of two, then one
    ctx = context_on(engine, tmp_path)
    conns = [seed(engine, customers=n) for n in (1, 2, 3)]
    sender = RecordingSender()
    reports = run_all(ctx, NOW, sender=sender)
    assert [r["connection_id"] for r in reports] == [c.id for c in conns]
    assert [(r["evaluated"], r["planned"], len(r["outbox"]["sent"])) for r in reports] == [
        (1, 1, 1), (2, 2, 2), (3, 3, 3)]
    assert len(sender.sent) == 6
    later = run_all(ctx, NOW + timedelta(minutes=5), sender=sender)
    assert [(r["evaluated"], r["planned"]) for r in later] == [(0, 0)] * 3
    assert len(sender.sent) == 6


def test_one_connection_failing_outside_planning_holds_up_no_other(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arsync.errors import ConfigError, TransientError

    ctx = context_on(engine, tmp_path)
    conns = [seed(engine, customers=n) for n in (1, 2, 3)]
    prepare, deliver = passes._prepare, passes._deliver

    def failing_prepare(ctx, conn, now, *, dry_run):  # type: ignore[no-untyped-def]
        if conn.id == conns[0].id:  # e.g. a vault key that no longer decrypts its grant
            raise ConfigError("stored tokens cannot be decrypted")
        return prepare(ctx, conn, now, dry_run=dry_run)

    def failing_deliver(ctx, report, now, sender):  # type: ignore[no-untyped-def]
        if report["connection_id"] == conns[1].id:
            raise TransientError("provider outage")
        return deliver(ctx, report, now, sender)

    monkeypatch.setattr(passes, "_prepare", failing_prepare)
    monkeypatch.setattr(passes, "_deliver", failing_deliver)
    sender = RecordingSender()
    reports = run_all(ctx, NOW, sender=sender)
    assert [r["connection_id"] for r in reports] == [c.id for c in conns]
    assert "decrypted" in reports[0]["error"]
    assert "outage" in reports[1]["error"] and reports[1]["planned"] == 2
    assert len(reports[2]["outbox"]["sent"]) == 3 and len(sender.sent) == 3
    # The failed delivery's actions wait, planned, for the next drain: nothing lost.
    monkeypatch.setattr(passes, "_deliver", deliver)
    later = run_all(ctx, NOW + timedelta(minutes=5), sender=sender)
    assert len(later[1]["outbox"]["sent"]) == 2 and len(sender.sent) == 5


def test_a_dry_run_batch_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path)
    conns = [seed(engine, customers=2) for _ in range(2)]
    results = plan_connections(ctx, conns, NOW, full=True, dry_run=True)
    assert [len(results[c.id or 0].actions) for c in conns] == [2, 2]
    assert _keys(engine) == []
    assert set(_marks(engine)) == {None}


@pytest.mark.parametrize("value", [
    {"a": [1, True, None, "x"], "b": {"c": "2026-03-10"}},
    {"name": "Müller & Söhne", "emoji": "\u2603", "quote": "a\"b\\c\n\t\x01"},
    {"delete": "a\x7fb", "line_sep": "x\u2028y"},  # characters orjson and json escape differently
    {"amount": Decimal("1234.50"), "day": date(2026, 3, 10),
     "at": datetime(2026, 3, 10, 15, 0, tzinfo=UTC), "tuple": ("x", 1)},
    {"big": 2**70, "negative": -(2**63)},
])
def test_reason_text_is_the_standard_encoders_text(value: object) -> None:
    assert reason_text(value) == _REASON_JSON.encode(value)
    assert json.loads(reason_text(value)) == json.loads(_REASON_JSON.encode(value))
