"""The durable write-back queue: note jobs claimed with a lease, written, settled.

A drain (:func:`drain_notes`) first queues what is missing (:mod:`arsync.notes_enqueue`), puts
expired leases back to ``pending``, then, per active connection, repeats: claim a chunk of due
jobs (``pending`` → ``writing``, committed, ``attempts + 1``, a lease), write them through the
provider's writer, settle each one. A worker killed at any instant leaves ``pending`` jobs
(written later), ``done`` jobs, or ``writing`` jobs whose lease expires and which are then
written again — harmless, because a second write of the same job is recognised at the provider:
QuickBooks' PrivateNote block tags each line with the job's key, Xero gets the same
``Idempotency-Key`` and the invoice's History is checked first (``connectors/xero/notes.py``).

Failures: a retryable one (throttling, an outage, a 5010 that kept coming back) waits
``backoff(attempts)`` (stored, so it survives restarts) and gives up after
:data:`MAX_ATTEMPTS`; a permanent one (invoice deleted, validation, no room in PrivateNote) is
``failed`` at once with the reason, listed by ``arsync notes --status failed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlmodel import Session

from arsync.context import AppContext
from arsync.errors import ArsyncError, AuthError
from arsync.models import Connection
from arsync.models_notes import NoteJob
from arsync.notes_enqueue import enqueue_pending
from arsync.outbox import worker_id
from connectors.notes import NoteRequest, NoteResult

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
#: With :func:`backoff`, about two days of retries: a provider outage or a long 5010 streak
#: does not lose a note, a note that cannot be written stops being tried.
MAX_ATTEMPTS = 16
#: Jobs claimed at a time: QuickBooks reads 300 invoices per query and writes them in 10 batch
#: requests; Xero writes one note per call at 60 a minute, so a chunk is a minute's budget.
CHUNK = {"quickbooks": 300, "xero": 60}


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 … minutes after each failed attempt, at most 6 hours."""
    return timedelta(seconds=min(60 * 2 ** max(0, attempts - 1), 6 * 3600))


@dataclass
class NotesReport:
    """What one drain did."""

    enqueued: int = 0
    written: int = 0
    failed: int = 0
    retried: int = 0
    recovered: int = 0
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Writer:
    """A provider's note writer bound to one connection."""

    write: Callable[[list[NoteJob]], list[NoteResult]]
    api_calls: Callable[[], int]
    #: Seconds to wait before the next try when the writer stopped early (Xero's day budget).
    deferred: Callable[[], float | None] = lambda: None
    #: Keys of the last write's jobs that never reached the provider (not counted as a try).
    unsent: Callable[[], set[str]] = set


def _request(job: NoteJob) -> NoteRequest:
    return NoteRequest(job.key, job.invoice_external_id, job.text, job.event_at)


def writer_for(ctx: AppContext, conn: Connection) -> Writer:
    """The writer of ``conn``'s provider, over the real connector."""
    connector: Any = ctx.connector_for(conn)
    if conn.provider == "xero":
        from connectors.xero.budget import budget_for
        from connectors.xero.notes import XeroNotes

        notes = XeroNotes(connector, budget_for(conn.tenant_id,
                                                reserve=ctx.settings.xero_day_reserve))

        def write_xero(jobs: list[NoteJob]) -> list[NoteResult]:
            return notes.write_notes([_request(j) for j in jobs],
                                     kinds={j.key: j.kind for j in jobs},
                                     maybe_written={j.key for j in jobs if j.attempts > 1})

        def deferred() -> float | None:
            return None if notes.deferred is None else (notes.deferred.retry_after or 60.0)

        return Writer(write_xero, lambda: int(connector.api_calls), deferred,
                      lambda: set(notes.unsent))
    return Writer(lambda jobs: connector.write_notes([_request(j) for j in jobs]),
                  lambda: int(connector.api_calls))


def recover_expired(ctx: AppContext, now: datetime, connection_id: int | None = None) -> int:
    """Jobs whose writer vanished (lease expired) go back to ``pending`` for another try."""
    q = (update(NoteJob).where(NoteJob.status == "writing", NoteJob.lease_until < now)
         .values(status="pending", lease_owner=None, lease_until=None, next_attempt_at=now,
                 updated_at=now))
    if connection_id is not None:
        q = q.where(NoteJob.connection_id == connection_id)
    with Session(ctx.engine) as s, s.begin():
        return int(s.execute(q).rowcount)  # type: ignore[attr-defined]


def claim_jobs(ctx: AppContext, connection_id: int, now: datetime, *, owner: str,
               limit: int) -> list[NoteJob]:
    """Claim up to ``limit`` due jobs of one connection for ``owner`` (committed at once)."""
    with Session(ctx.engine) as s, s.begin():
        ids = list(s.scalars(
            select(NoteJob.id).where(NoteJob.connection_id == connection_id,
                                     NoteJob.status == "pending",
                                     NoteJob.next_attempt_at <= now)
            .order_by(NoteJob.id).limit(limit)))
        if not ids:
            return []
        # Conditional on "pending": of two workers that picked the same ids, each row goes to one.
        s.execute(update(NoteJob).where(NoteJob.id.in_(ids), NoteJob.status == "pending")
                  .values(status="writing", lease_owner=owner, lease_until=now + LEASE,
                          attempts=NoteJob.attempts + 1, updated_at=now))
        mine = list(s.scalars(select(NoteJob).where(NoteJob.id.in_(ids),
                                                    NoteJob.status == "writing",
                                                    NoteJob.lease_owner == owner)
                              .order_by(NoteJob.id)))
        s.expunge_all()
    return mine


_SETTLE = (update(NoteJob)
           .where(NoteJob.id == bindparam("jid"), NoteJob.status == "writing",
                  NoteJob.lease_owner == bindparam("owner"))
           .values(status=bindparam("st"), next_attempt_at=bindparam("nxt"),
                   last_error=bindparam("err"), written_at=bindparam("wat"),
                   provider_ref=bindparam("ref"), attempts=bindparam("att"), lease_owner=None,
                   lease_until=None,
                   updated_at=bindparam("now")))


def settle(ctx: AppContext, jobs: list[NoteJob], results: list[NoteResult], now: datetime, *,
           owner: str, retry_after: float | None = None,
           unsent: set[str] | frozenset[str] = frozenset()) -> tuple[int, int, int]:
    """Record each result (only while ``owner`` still holds the job); (done, failed, retried).

    Jobs in ``unsent`` never reached the provider (the writer stopped first): they wait
    ``retry_after`` and their claim is not counted as an attempt.
    """
    params = []
    done = failed = retried = 0
    for job, result in zip(jobs, results, strict=True):
        p = {"jid": job.id, "owner": owner, "now": now, "nxt": job.next_attempt_at,
             "err": None, "wat": None, "ref": None, "att": job.attempts}
        if job.key in unsent and not result.ok:
            p.update(st="pending", att=job.attempts - 1, err=result.error,
                     nxt=now + timedelta(seconds=retry_after or 60))
            retried += 1
        elif result.ok:
            p.update(st="done", wat=now, ref=(result.remote_version or None))
            done += 1
        elif result.retryable and job.attempts < MAX_ATTEMPTS:
            wait = backoff(job.attempts)
            if retry_after is not None:
                wait = max(wait, timedelta(seconds=retry_after))
            p.update(st="pending", nxt=now + wait, err=result.error)
            retried += 1
        else:
            why = result.error or "refused"
            if result.retryable:
                why = f"gave up after {job.attempts} attempts: {why}"
            p.update(st="failed", err=why)
            failed += 1
        if p["ref"] is not None:
            p["ref"] = str(p["ref"])[:100]
        params.append(p)
    with Session(ctx.engine) as s, s.begin():
        s.connection().execute(_SETTLE, params)
    return done, failed, retried


def pause_connection(ctx: AppContext, connection_id: int, until: datetime) -> int:
    """Every due job of the connection waits until ``until`` (the provider said "not now")."""
    with Session(ctx.engine) as s, s.begin():
        return int(s.execute(
            update(NoteJob).where(NoteJob.connection_id == connection_id,
                                  NoteJob.status == "pending", NoteJob.next_attempt_at < until)
            .values(next_attempt_at=until)).rowcount)  # type: ignore[attr-defined]


def release(ctx: AppContext, jobs: list[NoteJob], now: datetime, *, owner: str,
            error: str, wait: timedelta) -> None:
    """Hand claimed jobs back untouched by the provider (auth gone, connection stopped)."""
    results = [NoteResult(j.key, ok=False, retryable=True, error=error) for j in jobs]
    settle(ctx, jobs, results, now, owner=owner, retry_after=wait.total_seconds())


def drain_notes(ctx: AppContext, now: datetime, connection_id: int | None = None, *,
                owner: str | None = None, limit: int | None = None,
                writers: Callable[[AppContext, Connection], Writer] = writer_for) -> NotesReport:
    """Queue missing notes, then write every due one (``limit``: at most that many jobs).

    ``now`` may be a simulated instant (``--as-of``): time spent waiting on the provider's
    limits is added to it as the clock moves.
    """
    owner = owner or worker_id()
    report = NotesReport()
    with Session(ctx.engine) as s, s.begin():
        report.enqueued = enqueue_pending(s, now, connection_id=connection_id)
    report.recovered = recover_expired(ctx, now, connection_id)
    with Session(ctx.engine) as s:
        q = select(NoteJob.connection_id).where(NoteJob.status == "pending",
                                                NoteJob.next_attempt_at <= now).distinct()
        if connection_id is not None:
            q = q.where(NoteJob.connection_id == connection_id)
        cids = sorted(set(s.scalars(q)))
    started = ctx.clock.now()
    budget = limit
    for cid in cids:
        conn = ctx.connection(cid)
        if conn.status != "active":
            report.errors.append(f"connection {cid} is {conn.status}; notes wait")
            continue
        try:
            budget = _drain_connection(ctx, writers(ctx, conn), conn, now, started, owner,
                                       budget, report)
        except ArsyncError as exc:
            report.errors.append(f"connection {cid}: {exc}")
            log.error("notes of connection %s stopped: %s", cid, exc)
        if budget is not None and budget <= 0:
            break
    return report


def _drain_connection(ctx: AppContext, writer: Writer, conn: Connection, now: datetime,
                      started: datetime, owner: str, budget: int | None,
                      report: NotesReport) -> int | None:
    calls0 = writer.api_calls()
    chunk = CHUNK.get(conn.provider, 100)
    try:
        while budget is None or budget > 0:
            moment = now + (ctx.clock.now() - started)
            jobs = claim_jobs(ctx, conn.id or 0, moment, owner=owner,
                              limit=chunk if budget is None else min(chunk, budget))
            if not jobs:
                break
            if budget is not None:
                budget -= len(jobs)
            try:
                results = writer.write(jobs)
            except AuthError as exc:
                release(ctx, jobs, moment, owner=owner, error=str(exc), wait=timedelta(hours=1))
                raise
            except Exception as exc:
                # Outcome unknown: the lease stays; the jobs are retried once it expires.
                log.exception("writing notes of connection %s failed", conn.id)
                report.errors.append(f"connection {conn.id}: {exc.__class__.__name__}: {exc}")
                break
            moment = now + (ctx.clock.now() - started)
            defer = writer.deferred()
            done, failed, retried = settle(ctx, jobs, results, moment, owner=owner,
                                           retry_after=defer, unsent=writer.unsent())
            report.written += done
            report.failed += failed
            report.retried += retried
            if defer is not None:
                pause_connection(ctx, conn.id or 0, moment + timedelta(seconds=defer))
                report.errors.append(f"connection {conn.id}: notes deferred {defer:.0f} s "
                                     "(provider limits)")
                break
    finally:
        report.api_calls += writer.api_calls() - calls0
    return budget


__all__ = ["MAX_ATTEMPTS", "NotesReport", "backoff", "claim_jobs", "drain_notes",
           "recover_expired", "settle", "writer_for"]
