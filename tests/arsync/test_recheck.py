"""Re-checking pending actions without sending, channel dispatch, opt-outs, retry backoff."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

import rules
from arsync.compose import company_locale, unsubscribe_targets
from arsync.models import Action, Customer, Invoice
from arsync.models_payer import PayerOptOut
from arsync.outbox import drain_outbox, recheck_planned, retry_delay
from arsync.passes import plan_connection, run_pass
from tests.arsync.ledger_world import NOW, RecordingSender, context_on, seed
from tests.factories import make_customer, make_invoice, pay_invoice

FOREVER = 10**7


def _actions(engine: Engine) -> dict[str, Action]:
    with Session(engine) as s:
        return {f"{a.customer_external_id}:{a.kind}": a for a in s.scalars(select(Action))}


def _review_on(engine: Engine, invoice: str) -> date | None:
    with Session(engine) as s:
        return s.scalar(select(Invoice.review_on).where(Invoice.external_id == invoice))


def test_a_payment_cancels_the_pending_reminder_at_once(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, freshness_minutes=FOREVER)
    conn = seed(engine, customers=2)
    plan_connection(ctx, conn, NOW, full=True)
    before = _actions(engine)
    with Session(engine) as s, s.begin():  # the pass that planned them set a review date
        s.execute(update(Invoice).values(review_on=date(2026, 3, 17)))
    pay_invoice(engine, conn, "I1b", on=NOW.date(), when=NOW)  # C1 paid one of two
    pay_invoice(engine, conn, "I2b", on=NOW.date(), when=NOW)  # C2 too, but not rechecked
    with Session(engine) as s, s.begin():
        s.execute(update(Invoice).values(review_on=date(2026, 3, 17)))
    assert recheck_planned(ctx, conn.id or 0, ["C1"], NOW) == [before["C1:message"].id]
    after = _actions(engine)
    assert after["C1:message"].status == "cancelled"
    assert "invoice I1b is no longer open" in (after["C1:message"].status_reason or "")
    assert after["C2:message"].status == "planned"  # only the customers asked about
    assert _review_on(engine, "I1a") is None  # marked for review: re-planned by the next pass
    assert _review_on(engine, "I2a") == date(2026, 3, 17)
    # Nothing was sent; the next pass plans and sends only what is still due for C1.
    sender = RecordingSender()
    run_pass(ctx, conn.id or 0, NOW, sender=sender)
    c1 = [m for m in sender.sent if m.recipient == "ap1@example.com"]
    assert [m.invoice_external_ids for m in c1] == [("I1a",)]


def test_recheck_leaves_actions_that_still_hold(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, freshness_minutes=FOREVER)
    conn = seed(engine, customers=1)
    plan_connection(ctx, conn, NOW - timedelta(hours=7), full=True)  # 08:00: for 09:00 today
    [row] = _actions(engine).values()
    assert row.planned_for == NOW.replace(hour=9)
    assert recheck_planned(ctx, conn.id or 0, ["C1"], NOW - timedelta(hours=6)) == []
    assert recheck_planned(ctx, conn.id or 0, [], NOW) == []
    assert _actions(engine)["C1:message"].status == "planned"


def test_recheck_covers_messages_awaiting_approval(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, freshness_minutes=FOREVER)
    conn = seed(engine, customers=1, pilot=True)
    plan_connection(ctx, conn, NOW, full=True)
    assert _actions(engine)["C1:message"].status == "awaiting_approval"
    pay_invoice(engine, conn, "I1a", on=NOW.date(), when=NOW)
    pay_invoice(engine, conn, "I1b", on=NOW.date(), when=NOW)
    [cancelled] = recheck_planned(ctx, conn.id or 0, ["C1"], NOW)
    row = _actions(engine)["C1:message"]
    assert (row.id, row.status) == (cancelled, "cancelled")


def test_a_call_task_stays_while_its_invoice_is_open(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, freshness_minutes=FOREVER)
    conn = seed(engine, customers=0)
    make_customer(engine, conn, "T1")
    make_invoice(engine, conn, "L1", "T1", due=date(2026, 2, 6), amount="900.00")  # 32 days
    make_invoice(engine, conn, "L2", "T1", due=date(2026, 3, 5), amount="10.00")
    plan_connection(ctx, conn, NOW, full=True)
    task = _actions(engine)["T1:task"]
    assert task.status == "planned"
    # Next day: a different plan, but the invoice is still open, so the call still stands.
    assert task.id not in recheck_planned(ctx, conn.id or 0, ["T1"], NOW + timedelta(days=1))
    assert _actions(engine)["T1:task"].status == "planned"
    pay_invoice(engine, conn, "L1", on=NOW.date(), when=NOW)
    assert task.id in recheck_planned(ctx, conn.id or 0, ["T1"], NOW)
    assert _actions(engine)["T1:task"].status == "cancelled"


def _sms_policy() -> str:
    text = (Path(rules.__file__).parent / "default_policy.yaml").read_text()
    old = "tone: urgent\n    channels: [email]\n    template: overdue_14"
    assert old in text
    return text.replace(old, "tone: urgent\n    channels: [sms]\n    template: overdue_14")


def test_a_channel_without_a_sender_waits_planned_and_says_why(engine: Engine,
                                                               tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, freshness_minutes=FOREVER)
    conn = seed(engine, customers=1)
    with Session(engine) as s, s.begin():
        s.execute(update(Customer).values(phone="+1 415 555 0100"))
        s.execute(update(type(conn)).values(policy_yaml=_sms_policy()))
    plan_connection(ctx, ctx.connection(conn.id or 0), NOW, full=True)
    row = _actions(engine)["C1:message"]
    assert row.channel == "sms"
    email = RecordingSender()
    report = drain_outbox(ctx, NOW, senders={"email": email})
    assert report.skipped == [row.id]
    assert email.sent == []
    row = _actions(engine)["C1:message"]
    assert row.status == "planned"
    assert "no sender is configured for channel 'sms'" in (row.status_reason or "")
    sms = RecordingSender()
    assert drain_outbox(ctx, NOW, senders={"email": email, "sms": sms}).sent == [row.id]
    [msg] = sms.sent
    assert (msg.channel, msg.recipient, msg.html) == ("sms", "+1 415 555 0100", None)
    assert "$140.50" in msg.body and "/pay/" in msg.body  # the rendered SMS, with the page link
    assert _actions(engine)["C1:message"].status == "sent"


def test_a_customer_who_unsubscribed_gets_no_email(engine: Engine, tmp_path: Path) -> None:
    ctx = context_on(engine, tmp_path, freshness_minutes=FOREVER)
    conn = seed(engine, customers=3)
    with Session(engine) as s, s.begin():  # C2 opted out before planning: never planned
        s.add(PayerOptOut(connection_id=conn.id or 0, customer_external_id="C2",
                          channel="email", created_at=NOW))
    plan_connection(ctx, conn, NOW, full=True)
    assert "C2:message" not in _actions(engine)
    with Session(engine) as s, s.begin():  # C3 opts out between planning and sending
        s.add(PayerOptOut(connection_id=conn.id or 0, customer_external_id="C3",
                          channel="email", created_at=NOW))
    sender = RecordingSender()
    run_pass(ctx, conn.id or 0, NOW, sender=sender)
    assert [m.recipient for m in sender.sent] == ["ap1@example.com"]
    row = _actions(engine)["C3:message"]
    assert (row.status, row.status_reason) == ("cancelled",
                                               "the customer unsubscribed from email")


def test_retry_delay_is_full_jitter_capped() -> None:
    rng = random.Random(3)
    for attempt, ceiling in ((1, 120), (2, 240), (3, 480), (6, 3600), (40, 3600)):
        draws = [retry_delay(attempt, base=120, cap=3600, rng=rng).total_seconds()
                 for _ in range(400)]
        assert min(draws) >= 0 and max(draws) <= ceiling
        assert max(draws) > ceiling * 0.9 and min(draws) < ceiling * 0.1  # spread over it all


def test_company_locale_and_unsubscribe_targets() -> None:
    assert company_locale("US") == "en_US"
    assert company_locale("GB") == "en_GB"
    assert company_locale("DE") == "en_DE"  # no German templates yet: English, German formats
    assert company_locale("") == company_locale("??") == "en_US"
    assert unsubscribe_targets("https://a.example/pay/t", "Acme <ar@acme.example>") == (
        "https://a.example/pay/t/unsubscribe", "mailto:ar@acme.example?subject=unsubscribe")
    assert unsubscribe_targets(None, None) == ()
