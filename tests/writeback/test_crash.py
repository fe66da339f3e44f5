"""A worker killed between the provider's write and the mark: the note is never written twice.

The "crash" is exact: the jobs are claimed and written through the real writer over HTTP, and
the process then forgets them (no settle). After the lease expires, a fresh drain takes them
again; the provider-side guard (QuickBooks: the tag in the PrivateNote block; Xero: the
History check, here after Xero's 6-minute Idempotency-Key window has passed) recognises them.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session

from arsync.models_notes import NoteJob
from arsync.notes_enqueue import enqueue_pending
from arsync.notes_queue import LEASE, claim_jobs, drain_notes, writer_for
from connectors.notes import NoteRequest
from tests.writeback.conftest import TENANT, World, add_action


def _statuses(w: World) -> dict[str, tuple[str, int]]:
    with Session(w.ctx.engine) as s:
        return {j.key: (j.status, j.attempts) for j in s.scalars(select(NoteJob))}


def test_crash_between_write_and_mark_writes_once(world: World) -> None:
    a, b = world.open_invoices(2)
    add_action(world, [a, b])
    add_action(world, [a], kind="task", status="planned", stage="call_30")
    now = world.clock.now()
    with Session(world.ctx.engine) as s, s.begin():
        assert enqueue_pending(s, now) == 3
    conn = world.ctx.connection(world.cid)
    jobs = claim_jobs(world.ctx, world.cid, now, owner="doomed-worker", limit=10)
    assert len(jobs) == 3
    results = writer_for(world.ctx, conn).write(jobs)
    assert all(r.ok for r in results)  # written at the provider... and the worker dies here
    before = {inv: world.notes_on(inv) for inv in (a, b)}
    assert (len(before[a]), len(before[b])) == (2, 1)
    assert {st for st, _ in _statuses(world).values()} == {"writing"}

    # Inside the lease nobody touches them.
    early = drain_notes(world.ctx, world.clock.now(), world.cid, owner="survivor")
    assert (early.recovered, early.written) == (0, 0)

    world.clock.advance(LEASE + timedelta(minutes=1))  # also past Xero's key window
    report = drain_notes(world.ctx, world.clock.now(), world.cid, owner="survivor")
    assert (report.recovered, report.written, report.failed) == (3, 3, 0)
    assert {v for v in _statuses(world).values()} == {("done", 2)}
    assert {inv: world.notes_on(inv) for inv in (a, b)} == before  # nothing written twice


def test_xero_idempotency_key_replays_a_lost_answer(xero: World) -> None:
    """Inside the key window the same PUT is replayed by Xero itself (no History read)."""
    from connectors.xero.budget import budget_for
    from connectors.xero.notes import XeroNotes

    [a] = xero.open_invoices(1)
    conn = xero.ctx.connection(xero.cid)
    notes = XeroNotes(xero.ctx.connector_for(conn), budget_for(TENANT, reserve=250))  # type: ignore[arg-type]
    note = NoteRequest("action:1:sent:" + a, a, "arsync: reminder sent", xero.clock.now())
    assert notes.write_notes([note])[0].ok
    xero.clock.advance(timedelta(minutes=2))
    assert notes.write_notes([note])[0].ok  # the "retry after a lost answer"
    assert xero.notes_on(a) == ["arsync: reminder sent"]
    assert xero.sandbox.stats[TENANT]["notes"] == 1


def test_xero_lost_answer_is_retried_without_a_second_note(xero: World) -> None:
    """Xero applies the PUT, the answer is lost (503); the connector's retry sends the same
    Idempotency-Key and gets the first answer back."""
    [a] = xero.open_invoices(1)
    add_action(xero, [a])
    xero.sandbox.inject_faults(503, 1, tenant_id=TENANT, after=True)
    report = drain_notes(xero.ctx, xero.clock.now(), xero.cid)
    assert report.written == 1
    assert len(xero.notes_on(a)) == 1 and xero.sandbox.stats[TENANT]["notes"] == 1
