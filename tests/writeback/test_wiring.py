"""Wiring: ``arsync run`` writes notes (never on --dry-run), the worker's notes job drains."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import Session

from arsync.models_notes import NoteJob
from arsync.passes import run_pass
from arsync.scheduler import notes_job
from tests.writeback.conftest import World, add_action


def _count(w: World) -> int:
    with Session(w.ctx.engine) as s:
        return int(s.scalar(select(func.count()).select_from(NoteJob)) or 0)


def test_dry_run_writes_nothing_and_a_pass_writes_notes(qbo: World) -> None:
    preview = run_pass(qbo.ctx, qbo.cid, qbo.clock.now(), dry_run=True)
    assert preview["actions"] and "notes" not in preview and _count(qbo) == 0
    report = run_pass(qbo.ctx, qbo.cid, qbo.clock.now())
    assert report["outbox"]["sent"]
    assert report["notes"]["written"] == _count(qbo) > 0


def test_worker_notes_job_drains_every_connection(world: World) -> None:
    [a] = world.open_invoices(1)
    add_action(world, [a])
    notes_job(world.ctx)
    assert len(world.notes_on(a)) == 1
    notes_job(world.ctx)  # nothing new: nothing written again
    assert len(world.notes_on(a)) == 1
