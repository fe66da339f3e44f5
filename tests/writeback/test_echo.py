"""Echo suppression: the notes arsync writes change the invoices in the books (QuickBooks'
PrivateNote and SyncToken, Xero's UpdatedDateUTC), and the next sync reads them back. That must
not re-plan anyone (``review_on`` kept), while a real change (a payment) still does."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlmodel import Session

from arsync.models import Invoice
from arsync.notes_queue import drain_notes
from tests.writeback.conftest import REALM, TENANT, World, add_action

LATER = date(2026, 12, 24)


def _review(w: World, ids: list[str]) -> dict[str, date | None]:
    with Session(w.ctx.engine) as s:
        return dict(s.execute(select(Invoice.external_id, Invoice.review_on).where(
            Invoice.connection_id == w.cid, Invoice.external_id.in_(ids))).all())  # type: ignore[arg-type]


def _stamp(w: World, invoice: str) -> datetime:
    with Session(w.ctx.engine) as s:
        stamp = s.scalar(select(Invoice.remote_updated_at).where(
            Invoice.connection_id == w.cid, Invoice.external_id == invoice))
    assert stamp is not None
    return stamp


def test_own_notes_do_not_reset_review_but_a_payment_does(world: World) -> None:
    a, b = world.open_invoices(2)
    add_action(world, [a, b])
    with Session(world.ctx.engine) as s, s.begin():  # the pass decided: look again on LATER
        s.execute(update(Invoice).where(Invoice.connection_id == world.cid)
                  .values(review_on=LATER))
    stamp_before = _stamp(world, a)
    world.clock.advance(timedelta(minutes=1))
    assert drain_notes(world.ctx, world.clock.now(), world.cid).written == 2
    world.clock.advance(timedelta(minutes=10))
    report = world.sync()
    assert report["invoices"] >= 2, report  # the echo did come back...
    assert _stamp(world, a) > stamp_before  # ...as a changed invoice...
    assert _review(world, [a, b]) == {a: LATER, b: LATER}  # ...changing nothing that matters

    if world.provider == "xero":
        world.sandbox.record_payment(TENANT, a)
    else:
        world.sandbox.record_payment(REALM, a)
    world.clock.advance(timedelta(minutes=10))
    world.sync()
    assert _review(world, [a, b]) == {a: None, b: LATER}


def test_a_pass_after_the_echo_plans_nothing_new(qbo: World) -> None:
    """No change loop: run passes; notes written; the echo synced; nothing more planned/sent."""
    from arsync.passes import run_pass

    first = run_pass(qbo.ctx, qbo.cid, qbo.clock.now())  # the default sender: the .eml outbox
    assert "error" not in first, first
    sent = len(first["outbox"]["sent"])
    assert sent > 0 and first["notes"]["written"] >= sent
    synced = 0
    for hours in (1, 2, 3):  # later the same day: the echo is synced by each freshness sync
        qbo.clock.advance(timedelta(hours=1))
        again = run_pass(qbo.ctx, qbo.cid, qbo.clock.now())
        synced += again["synced"]
        # Nobody is even evaluated again: the echo left every review mark in place.
        assert again["evaluated"] == 0, (hours, again)
        assert again["planned"] == 0 and again["outbox"]["sent"] == [], (hours, again)
        assert again["notes"]["enqueued"] == 0 and again["notes"]["written"] == 0
    assert synced >= 1
