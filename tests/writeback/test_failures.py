"""Permanent errors end as ``failed`` with the reason (and ``arsync notes`` lists them);
outages are retried with backoff across drains until the provider answers again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session

from arsync.models_notes import NoteJob
from arsync.notes_queue import backoff, drain_notes
from connectors.retry import RetryPolicy
from connectors.xero.connector import RETRY as XERO_RETRY
from tests.writeback.conftest import REALM, TENANT, World, add_action


def _jobs(w: World) -> dict[str, NoteJob]:
    with Session(w.ctx.engine) as s:
        return {j.invoice_external_id: j for j in s.scalars(select(NoteJob))}


def test_deleted_invoice_fails_with_reason_and_is_listed(world: World) -> None:
    a, b = world.open_invoices(2)
    if world.provider == "quickbooks":
        world.sandbox.delete_invoice(REALM, b)
    else:  # Xero deletes only drafts; an id Xero does not know answers 404 all the same
        b = "0f0e0d0c-0b0a-4908-8706-050403020100"
    add_action(world, [a, b])
    report = drain_notes(world.ctx, world.clock.now(), world.cid)
    assert (report.written, report.failed) == (1, 1)
    jobs = _jobs(world)
    assert jobs[a].status == "done"
    assert jobs[b].status == "failed" and jobs[b].attempts == 1
    assert jobs[b].last_error and ("deleted" in jobs[b].last_error
                                   or "404" in jobs[b].last_error)
    assert len(world.notes_on(a)) == 1

    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSYNC_")}
    env.update(ARSYNC_DATABASE_URL=world.ctx.settings.sqlalchemy_url,
               ARSYNC_HOME=str(world.ctx.settings.home), ARSYNC_SECRET_KEY="w" * 32)
    out = subprocess.run([sys.executable, "-m", "arsync", "notes", "--status", "failed",
                          "--json"], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert row["invoice_external_id"] == b and row["last_error"] == jobs[b].last_error
    bad = subprocess.run([sys.executable, "-m", "arsync", "notes", "--status", "lost"],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "--status" in bad.stderr


def test_outage_is_retried_with_backoff_then_written_once(world: World) -> None:
    [a] = world.open_invoices(1)
    add_action(world, [a])
    kw = {"tenant_id": TENANT} if world.provider == "xero" else {"realm_id": REALM}
    # Exactly as many failures as the connector's own retries: the drain gives up, the queue
    # retries later, and by then the provider is back.
    tries = XERO_RETRY.attempts if world.provider == "xero" else RetryPolicy().attempts
    world.sandbox.inject_faults(503, tries, **kw)
    first = drain_notes(world.ctx, world.clock.now(), world.cid)
    assert (first.written, first.retried) == (0, 1)
    job = _jobs(world)[a]
    assert job.status == "pending" and job.attempts == 1 and job.last_error
    assert job.next_attempt_at >= world.clock.now() + backoff(1) - timedelta(minutes=5)
    # Still inside the backoff: nothing is tried.
    assert drain_notes(world.ctx, world.clock.now(), world.cid).written == 0
    world.clock.set(job.next_attempt_at + timedelta(seconds=1))
    second = drain_notes(world.ctx, world.clock.now(), world.cid)
    assert second.written == 1
    assert _jobs(world)[a].status == "done" and _jobs(world)[a].attempts == 2
    assert len(world.notes_on(a)) == 1
