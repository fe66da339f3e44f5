"""The action ledger: unique plans, claims, pilot mode, freshness re-checks, crash recovery."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.compose import sender_address
from arsync.ledger import IllegalTransitionError, insert_once, transition
from arsync.mailer import EmlMailer, MailerSender, message_id_for
from arsync.message import OutgoingMessage
from arsync.models import Action, Invoice, Promise
from arsync.outbox import drain_outbox
from arsync.passes import plan_connection, run_pass
from tests.arsync.ledger_world import NOW, RecordingSender, context_on, seed
from tests.factories import make_customer, make_invoice, pay_invoice

#: Tests that move time by days, on a mirror no provider backs, keep it "fresh" throughout.
FOREVER = 10**7


def _actions(engine: Engine) -> list[Action]:
    with Session(engine) as s:
        return list(s.scalars(select(Action).order_by(Action.id)))


def test_the_same_plan_twice_is_one_row(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path)
    conn = seed(engine, customers=2)
    first = plan_connection(ctx, conn, NOW, full=True)
    second = plan_connection(ctx, conn, NOW, full=True)
    assert (first.new, second.new) == (2, 0)
    rows = _actions(engine)
    assert len(rows) == 2
    assert len({r.idempotency_key for r in rows}) == 2
    # Even a raw re-insert of an existing key is a no-op, not an error.
    with Session(engine) as s, s.begin():
        again = {c.name: getattr(rows[0], c.name) for c in Action.__table__.columns
                 if c.name != "id"}
        assert insert_once(s, [again]) == 0
    assert len(_actions(engine)) == 2


def test_one_message_per_customer_lists_all_due_invoices(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path)
    conn = seed(engine, customers=1)
    sender = RecordingSender()
    report = run_pass(ctx, conn.id or 0, NOW, sender=sender)
    assert report["outbox"]["sent"] == [1]
    [msg] = sender.sent
    assert msg.recipient == "ap1@example.com"
    assert "I1a" in msg.body
    assert "I1b" in msg.body
    assert "$40.50" in msg.body  # Babel, the company's locale (en_US)
    assert "$140.50" in msg.body  # the total
    assert msg.html is not None and "I1a" in msg.html
    [row] = _actions(engine)
    assert (row.status, row.stage, json.loads(row.invoice_ids_json)) == (
        "sent", "overdue_14", ["I1a", "I1b"])
    assert row.sent_at == NOW
    # The next pass the same day sends nothing more.
    assert run_pass(ctx, conn.id or 0, NOW + timedelta(hours=1), sender=sender)["planned"] == 0
    assert len(sender.sent) == 1


@pytest.mark.parametrize("drainers", [2, 4])
def test_concurrent_drainers_send_each_action_exactly_once(engine: Engine, tmp_path: Path,
                                                           drainers: int) -> None:
    ctx = context_on(engine, tmp_path)
    conn = seed(engine, customers=12)
    plan_connection(ctx, conn, NOW, full=True)
    sender = RecordingSender()
    barrier = threading.Barrier(drainers)
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            barrier.wait()
            drain_outbox(ctx, NOW, sender=sender)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(drainers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = [m.action_id for m in sender.sent]
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 12
    assert {r.status for r in _actions(engine)} == {"sent"}


def test_pilot_mode_holds_messages_until_approved(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, freshness_minutes=FOREVER)
    conn = seed(engine, customers=3, pilot=True)
    sender = RecordingSender()
    run_pass(ctx, conn.id or 0, NOW, sender=sender)
    assert sender.sent == []
    assert {r.status for r in _actions(engine)} == {"awaiting_approval"}
    first, second, third = _actions(engine)
    with Session(engine) as s, s.begin():
        assert transition(s, first.id or 0, "planned", now=NOW, reason="approved")
        assert transition(s, second.id or 0, "rejected", now=NOW, reason="not this one")
    run_pass(ctx, conn.id or 0, NOW, sender=sender)
    assert [m.action_id for m in sender.sent] == [first.id]
    statuses = {r.id: r.status for r in _actions(engine)}
    assert statuses == {first.id: "sent", second.id: "rejected", third.id: "awaiting_approval"}
    # Left unapproved past its day, an action is cancelled and planned again for the new day.
    tomorrow = NOW + timedelta(days=1)
    run_pass(ctx, conn.id or 0, tomorrow, sender=sender)
    rows = {r.id: r for r in _actions(engine)}
    assert rows[third.id].status == "cancelled"
    assert "not approved" in (rows[third.id].status_reason or "")
    fresh = [r for r in rows.values() if r.local_date == tomorrow.date()]
    assert [(r.customer_external_id, r.status) for r in fresh] == [("C3", "awaiting_approval")]


def test_paid_meanwhile_means_cancelled_then_replanned_for_what_is_due(
        engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path)
    conn = seed(engine, customers=1)
    plan_connection(ctx, conn, NOW, full=True)
    [planned] = _actions(engine)
    pay_invoice(engine, conn, "I1b", on=NOW.date(), when=NOW)  # the sync saw a payment
    sender = RecordingSender()
    report = run_pass(ctx, conn.id or 0, NOW, sender=sender)
    rows = {r.id: r for r in _actions(engine)}
    assert rows[planned.id].status == "cancelled"
    assert "invoice I1b" in (rows[planned.id].status_reason or "")
    [msg] = sender.sent  # re-planned: only the invoice still due
    assert "I1a" in msg.body
    assert "I1b" not in msg.body
    assert report["outbox"]["cancelled"] == [planned.id]


def test_a_stale_mirror_is_synced_before_sending(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path)
    conn = seed(engine, customers=1, synced=NOW - timedelta(hours=2))
    plan_connection(ctx, conn, NOW, full=True)
    report = drain_outbox(ctx, NOW, sender=RecordingSender())
    # No provider behind this connection: the sync fails, so nothing goes out on stale data.
    assert report.sent == []
    assert report.skipped
    assert "freshness sync failed" in report.errors[0]
    assert {r.status for r in _actions(engine)} == {"planned"}


def test_crash_mid_send_becomes_unknown_and_is_never_resent(engine: Engine,
                                                            tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, send_lease_seconds=60, freshness_minutes=FOREVER)
    conn = seed(engine, customers=1)
    plan_connection(ctx, conn, NOW, full=True)
    [row] = _actions(engine)
    with Session(engine) as s, s.begin():  # a worker claimed it, then died
        s.execute(update(Action).values(status="sending", claim_owner="dead",
                                        claim_expires_at=NOW + timedelta(seconds=60)))
    sender = RecordingSender()  # cannot tell whether the dead worker's send went out
    assert drain_outbox(ctx, NOW + timedelta(seconds=30), sender=sender).unknown == []
    later = drain_outbox(ctx, NOW + timedelta(seconds=61), sender=sender)
    assert later.unknown == [row.id]
    assert sender.sent == []
    [row] = _actions(engine)
    assert row.status == "unknown"
    assert "never re-sent" in (row.status_reason or "")
    run_pass(ctx, conn.id or 0, NOW + timedelta(minutes=5), sender=sender)
    run_pass(ctx, conn.id or 0, NOW + timedelta(days=1), sender=sender)
    assert sender.sent == []  # unknown covers: not re-sent, not even the next day at that stage


def test_eml_sender_settles_a_crash_from_the_file(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, send_lease_seconds=60)
    conn = seed(engine, customers=2)
    plan_connection(ctx, conn, NOW, full=True)
    sender = MailerSender(EmlMailer(tmp_path / "outbox"), ctx.clock)
    first, second = _actions(engine)
    # Both claimed by a worker that died: it had written the first file, not the second.
    mail_from = sender_address(None, conn.name, conn.tenant_id)
    for row in (first, second):
        with Session(engine) as s, s.begin():
            s.execute(update(Action).where(Action.id == row.id).values(
                status="sending", claim_owner="dead", message_id=message_id_for(
                    row.idempotency_key, mail_from), claim_expires_at=NOW + timedelta(seconds=1)))
    sender.send(OutgoingMessage(first.id or 0, message_id_for(first.idempotency_key, mail_from),
                                "email", "ap1@example.com", mail_from, "s", "b", html="<p>b</p>",
                                idempotency_key=first.idempotency_key))
    report = drain_outbox(ctx, NOW + timedelta(seconds=2), sender=sender)
    assert report.sent.count(first.id) == 1
    assert report.retried == [second.id]
    assert report.sent.count(second.id) == 1  # proven unsent, so sent now, once
    assert {r.status for r in _actions(engine)} == {"sent"}
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2
    # The first file is the dead worker's (not overwritten); the second a full rendered message.
    assert sum("Subject: s" in f.read_text() for f in files) == 1


def test_illegal_transitions_are_refused(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path)
    conn = seed(engine, customers=1)
    run_pass(ctx, conn.id or 0, NOW, sender=RecordingSender())
    [row] = _actions(engine)
    with Session(engine) as s, s.begin():
        for target in ("planned", "sending", "cancelled", "rejected", "unknown", "done"):
            with pytest.raises(IllegalTransitionError, match="is sent"):
                transition(s, row.id or 0, target, now=NOW)


def test_no_email_address_fails_visibly(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path)
    conn = seed(engine, customers=0)
    make_customer(engine, conn, "N1", email=None)
    make_invoice(engine, conn, "X1", "N1", due=date(2026, 3, 3))
    make_customer(engine, conn, "B1", email=None)
    make_invoice(engine, conn, "X2", "B1", due=date(2026, 3, 3), billing_email="bill@b1.test")
    sender = RecordingSender()
    run_pass(ctx, conn.id or 0, NOW, sender=sender)
    rows = {r.customer_external_id: r for r in _actions(engine)}
    assert (rows["N1"].status, rows["N1"].status_reason) == ("failed", "no email address")
    assert rows["B1"].status == "sent"
    assert rows["B1"].recipient == "bill@b1.test"
    assert [m.recipient for m in sender.sent] == ["bill@b1.test"]


def test_nothing_on_weekends_and_friday_evening_plans_for_monday(engine: Engine,
                                                                 tmp_path: Path) -> None:
    friday_evening = NOW.replace(day=13, hour=20)
    ctx = context_on(engine, tmp_path, now=friday_evening, freshness_minutes=FOREVER)
    conn = seed(engine, customers=1)
    sender = RecordingSender()
    run_pass(ctx, conn.id or 0, friday_evening, sender=sender)
    [row] = _actions(engine)
    assert row.local_date == date(2026, 3, 16)
    assert row.planned_for.hour == 9
    for hours in (4, 30, 50):  # Saturday, Sunday: not due yet
        run_pass(ctx, conn.id or 0, friday_evening + timedelta(hours=hours), sender=sender)
    assert sender.sent == []
    run_pass(ctx, conn.id or 0, friday_evening + timedelta(hours=61), sender=sender)  # Mon 09:00
    assert len(sender.sent) == 1


def test_call_task_gets_priority_and_its_outcome_feeds_the_rules(engine: Engine,
                                                                 tmp_path: Path) -> None:
    from arsync.work import complete_task

    ctx = context_on(engine, tmp_path, freshness_minutes=FOREVER)
    conn = seed(engine, customers=0)
    make_customer(engine, conn, "T1")
    make_invoice(engine, conn, "L1", "T1", due=date(2026, 2, 6), amount="900.00")  # 32 days
    make_customer(engine, conn, "T2")
    make_invoice(engine, conn, "L2", "T2", due=date(2026, 2, 6), amount="50.00")
    run_pass(ctx, conn.id or 0, NOW, sender=RecordingSender())
    tasks = [r for r in _actions(engine) if r.kind == "task"]
    assert {(t.customer_external_id, t.stage, t.task_kind, t.status) for t in tasks} == {
        ("T1", "call_30", "call", "planned"), ("T2", "call_30", "call", "planned")}
    by = {t.customer_external_id: t for t in tasks}
    assert by["T1"].priority > by["T2"].priority > 0
    with Session(engine) as s, s.begin():
        complete_task(s, by["T1"].id or 0, outcome="promise",
                      details={"date": date(2026, 3, 20), "amount": None}, now=NOW)
    with Session(engine) as s:
        [promise] = s.scalars(select(Promise))
        assert promise.invoice_external_id == "L1"
        assert promise.action_id == by["T1"].id
        assert s.get(Action, by["T1"].id).status == "done"
        # The promise reset the review mark; the next pass holds the invoice.
        assert s.scalar(select(Invoice.review_on).where(Invoice.external_id == "L1")) is None
    sender = RecordingSender()
    run_pass(ctx, conn.id or 0, NOW + timedelta(days=1), sender=sender)
    assert all("L1" not in m.body for m in sender.sent)


def test_routine_pass_evaluates_only_what_is_due_or_changed(engine: Engine,
                                                            tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, freshness_minutes=FOREVER)
    conn = seed(engine, customers=0)
    for c in range(10):
        make_customer(engine, conn, f"F{c}")
        make_invoice(engine, conn, f"F{c}", f"F{c}", due=date(2026, 4, 30))  # far from due
    first = run_pass(ctx, conn.id or 0, NOW, sender=RecordingSender())
    assert first["evaluated"] == 10
    assert first["planned"] == 0
    assert run_pass(ctx, conn.id or 0, NOW + timedelta(days=1))["evaluated"] == 0
    with Session(engine) as s, s.begin():  # a sync upsert touched one invoice
        s.execute(update(Invoice).where(Invoice.external_id == "F3").values(review_on=None))
        review = s.scalar(select(Invoice.review_on).where(Invoice.external_id == "F4"))
    assert review == date(2026, 4, 27)  # due_soon: 3 days before the due date
    assert run_pass(ctx, conn.id or 0, NOW + timedelta(days=1))["evaluated"] == 1
