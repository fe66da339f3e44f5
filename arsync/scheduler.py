"""APScheduler 3.x wiring for ``arsync worker``: thin, and derived from the database.

Jobs: ``reconcile`` (every minute) reads the active connections and adds or removes one
``connection:<id>`` job per connection (every ``sync_interval_minutes``: token refresh ahead of
expiry, incremental sync, the policy pass); ``drain`` (every ``drain_interval_seconds``) sends
what is due; ``notes`` (same interval) writes the write-back queue's due notes onto the
invoices. Every bit of state lives in the database, so a restart loses nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import select
from sqlmodel import Session

from arsync.context import AppContext
from arsync.errors import ArsyncError
from arsync.models import Connection, Credential
from arsync.outbox import drain_outbox
from arsync.passes import run_pass

log = logging.getLogger(__name__)
JOB_PREFIX = "connection:"


def refresh_token_if_near(ctx: AppContext, conn: Connection, now: datetime) -> bool:
    """Refresh the grant's access token when it expires within the configured margin."""
    if conn.credential_id is None:
        return False
    with Session(ctx.engine) as s:
        cred = s.get(Credential, conn.credential_id)
    ahead = timedelta(minutes=ctx.settings.token_refresh_ahead_minutes)
    if cred is None or cred.dead_reason or cred.access_expires_at - now > ahead:
        return False
    tokens = ctx.tokens_for(conn)
    tokens.refreshed_after(tokens.access_token())  # forces one refresh, under the lease
    return True


def connection_job(ctx: AppContext, connection_id: int) -> None:
    """Token refresh, incremental sync and one policy pass for one connection."""
    from arsync.syncing import sync_one

    now = ctx.clock.now()
    try:
        conn = ctx.connection(connection_id)
        if conn.status != "active":
            return
        refresh_token_if_near(ctx, conn, now)
        if conn.sync_deferred_until is None or conn.sync_deferred_until <= now:
            sync_one(ctx, conn)
        report = run_pass(ctx, connection_id, ctx.clock.now())
        if report.get("error"):
            log.warning("connection %s: %s", connection_id, report["error"])
    except ArsyncError as exc:
        log.error("connection %s: pass failed: %s", connection_id, exc)


def drain_job(ctx: AppContext) -> None:
    """Send what is due, for every connection."""
    report = drain_outbox(ctx, ctx.clock.now())
    for error in report.errors:
        log.warning("outbox: %s", error)


def notes_job(ctx: AppContext) -> None:
    """Queue and write the notes that are due, for every connection (write-back)."""
    from arsync.notes_queue import drain_notes

    report = drain_notes(ctx, ctx.clock.now())
    for error in report.errors:
        log.warning("notes: %s", error)


def reconcile(ctx: AppContext, scheduler: BaseScheduler) -> set[int]:
    """Make the per-connection jobs match the active connections in the database."""
    with Session(ctx.engine) as s:
        wanted = set(s.scalars(select(Connection.id).where(Connection.status == "active")))
    have = {int(j.id.removeprefix(JOB_PREFIX)) for j in scheduler.get_jobs()
            if j.id.startswith(JOB_PREFIX)}
    for cid in sorted(wanted - have):
        scheduler.add_job(connection_job, "interval", args=[ctx, cid], id=f"{JOB_PREFIX}{cid}",
                          minutes=ctx.settings.sync_interval_minutes,
                          next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    for cid in have - wanted:
        scheduler.remove_job(f"{JOB_PREFIX}{cid}")
    return wanted  # type: ignore[return-value]


def configure(ctx: AppContext, scheduler: BaseScheduler) -> BaseScheduler:
    """Add the worker's fixed jobs to ``scheduler`` (connection jobs follow from reconcile)."""
    scheduler.add_job(reconcile, "interval", args=[ctx, scheduler], id="reconcile", minutes=1,
                      next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    scheduler.add_job(drain_job, "interval", args=[ctx], id="drain",
                      seconds=ctx.settings.drain_interval_seconds, max_instances=1,
                      coalesce=True)
    # Its own job, so a long queue paced by Xero's limits never delays sending or syncing.
    scheduler.add_job(notes_job, "interval", args=[ctx], id="notes",
                      seconds=ctx.settings.drain_interval_seconds, max_instances=1,
                      coalesce=True)
    # Webhook events the web app could not process right after acknowledging (or a retry).
    scheduler.add_job(webhooks_job, "interval", args=[ctx], id="webhooks",
                      seconds=ctx.settings.webhook_interval_seconds, max_instances=1,
                      coalesce=True)
    return scheduler


def webhooks_job(ctx: AppContext) -> None:
    """Targeted refreshes for webhook events still pending (:mod:`arsync.webhooks`)."""
    from arsync.webhooks import process_webhook_events

    try:
        report = process_webhook_events(ctx, ctx.clock.now())
    except ArsyncError as exc:
        log.error("webhook processing failed: %s", exc)
        return
    for error in report.errors:
        log.warning("webhooks: %s", error)


def run_worker(ctx: AppContext) -> None:
    """Run until SIGTERM or SIGINT; running jobs finish before the process exits."""
    scheduler = configure(ctx, BlockingScheduler(timezone=UTC))

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: shutting down after running jobs finish", signum)
        # Not shutdown(wait=True): APScheduler 3 holds its job-store lock while it waits, so a
        # running job that asks for the job list (reconcile) would deadlock it. Without waiting,
        # start() returns and the interpreter still joins the executor's threads on exit, so
        # running jobs finish before the process does. Off the signal handler's stack.
        threading.Thread(target=scheduler.shutdown, kwargs={"wait": False}, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ctx.engine  # noqa: B018 - migrate before the first job, not inside one
    log.info("worker started")
    scheduler.start()
    log.info("worker stopped")
