"""The worker's wiring: jobs derived from the database, passes, token refresh, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select, update
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Action, Connection, Credential
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.scheduler import configure, connection_job, reconcile, refresh_token_if_near
from tests.arsync.ledger_world import context_on, seed
from tests.arsync.test_e2e_sandbox import START, _settings
from tests.factories import make_connection


def test_jobs_follow_the_connections_in_the_database(sqlite_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = context_on(sqlite_engine, tmp_path)
    first = seed(sqlite_engine, customers=1)
    scheduler = configure(ctx, BackgroundScheduler())
    assert reconcile(ctx, scheduler) == {first.id}
    second = make_connection(sqlite_engine)
    assert reconcile(ctx, scheduler) == {first.id, second.id}
    with Session(sqlite_engine) as s, s.begin():
        s.execute(update(Connection).where(Connection.id == first.id)
                  .values(status="disconnected"))
    reconcile(ctx, scheduler)
    assert sorted(j.id for j in scheduler.get_jobs()) == [
        f"connection:{second.id}", "drain", "notes", "reconcile", "webhooks"]


def test_a_connection_job_runs_the_pass_and_sends(sqlite_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = context_on(sqlite_engine, tmp_path)
    conn = seed(sqlite_engine, customers=2)
    connection_job(ctx, conn.id or 0)  # its sync fails (no provider here); the mirror is fresh
    with Session(sqlite_engine) as s:
        assert [a.status for a in s.scalars(select(Action))] == ["sent", "sent"]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2


def test_tokens_are_refreshed_ahead_of_expiry(tmp_path: Path) -> None:
    clock = SimClock(START)
    sandbox = QuickBooksSandbox(clock=clock)
    sandbox.add_company("777", name="Refresh Co", customers=1, invoices=0, seed=2)
    with SandboxServer(sandbox) as server:
        ctx = AppContext(_settings(server.url, tmp_path), clock=clock)
        [conn] = connect_with_refresh_token(ctx, "quickbooks", sandbox.mint_refresh_token("777"),
                                            tenant_id="777")
        assert not refresh_token_if_near(ctx, conn, clock.now())
        with Session(ctx.engine) as s:
            before = s.get(Credential, conn.credential_id)
        # Five minutes before expiry (set directly: the grant's expiry comes from the OAuth
        # client, which stamps it on the wall clock, not on this test's SimClock).
        with Session(ctx.engine) as s, s.begin():
            s.execute(update(Credential).values(
                access_expires_at=clock.now() + timedelta(minutes=5)))
        assert refresh_token_if_near(ctx, conn, clock.now())
        with Session(ctx.engine) as s:
            after = s.get(Credential, conn.credential_id)
        assert after.version == before.version + 1  # type: ignore[union-attr]
        assert after.access_expires_at > clock.now() + timedelta(minutes=30)  # type: ignore[union-attr]



def test_worker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSYNC_")}
    env.update(ARSYNC_HOME=str(tmp_path / "home"), ARSYNC_SECRET_KEY="w" * 32)
    proc = subprocess.Popen([sys.executable, "-m", "arsync", "worker"], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    lines = []
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "worker started" in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, "".join(lines) + rest
    assert "worker stopped" in rest

