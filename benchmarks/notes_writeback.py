"""10,000 notes through the durable write-back queue to each sandbox, under the real limits.

    .venv/bin/python benchmarks/notes_writeback.py --notes 10000

The whole path is measured: jobs in the ``note_jobs`` table (SQLite), ``drain_notes`` claiming
them with leases, the provider writer over real HTTP, settling each job. Both sandboxes enforce
the providers' limits on a simulated clock shared with arsync, so the clock's advance is the
time the queue would take against the real service; a drain that is told "not now" (Xero's day
budget) is followed by the next drain at the time the queue says, as the worker's notes job
would. Minimum calls: QuickBooks one batch per 30 notes (plus reads, one per 300 invoices);
Xero one call per note.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from notes_quickbooks import editable_ids  # the sibling benchmark (run from benchmarks/)
from sqlalchemy import func, select
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Invoice
from arsync.models_notes import NoteJob
from arsync.notes_enqueue import insert_jobs
from arsync.notes_queue import drain_notes
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.sandbox.xero import XeroSandbox
from arsync.syncing import sync_one
from connectors.xero.budget import reset_budgets

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
REALM = "9000000000000001"
TENANT = "5b1e7c2a-0d3f-4e8a-9b6c-000000000010"


def _jobs(cid: int, ids: list[str], n: int, now: datetime) -> list[dict[str, Any]]:
    return [{"key": f"action:{k}:sent:{ids[k % len(ids)]}", "connection_id": cid,
             "invoice_external_id": ids[k % len(ids)], "source_type": "action", "source_id": k,
             "event": "sent", "kind": "sent",
             "text": f"arsync: firm reminder (overdue_7) sent by email on Nov 23, 2026 ({k}).",
             "event_at": now, "status": "pending", "attempts": 0, "next_attempt_at": now,
             "created_at": now, "updated_at": now} for k in range(n)]


def _drain_all(ctx: AppContext, clock: SimClock, cid: int) -> dict[str, Any]:
    calls = drains = 0
    sim0, wall0 = clock.now(), time.perf_counter()
    while True:
        report = drain_notes(ctx, clock.now(), cid)
        calls += report.api_calls
        drains += 1
        with Session(ctx.engine) as s:
            counts = dict(s.execute(select(NoteJob.status, func.count())  # type: ignore[arg-type]
                                    .group_by(NoteJob.status)).all())
            wake = s.scalar(select(func.min(NoteJob.next_attempt_at))
                            .where(NoteJob.status == "pending"))
        if not counts.get("pending") and not counts.get("writing"):
            break
        if drains > 1000:
            raise SystemExit(f"queue does not drain: {counts}")
        if wake is not None and wake > clock.now():
            clock.set(wake)  # the worker's next notes job
    simulated = (clock.now() - sim0).total_seconds()
    return {"statuses": counts, "api_calls": calls, "drains": drains,
            "simulated_seconds": round(simulated, 1),
            "simulated_hours": round(simulated / 3600, 2),
            "wall_seconds": round(time.perf_counter() - wall0, 1)}


def quickbooks(n: int, tmp: Path) -> dict[str, Any]:
    clock = SimClock(START)
    sandbox = QuickBooksSandbox(clock=clock)
    sandbox.add_company(REALM, name="Bench Notes", customers=400, invoices=int(n * 1.2) + 100,
                        seed=5)
    with SandboxServer(sandbox) as server:
        url = server.url
        ctx = AppContext(Settings(_env_file=None, home=tmp / "qbo",  # type: ignore[call-arg]
                                  secret_key="n" * 32, quickbooks_client_id="sandbox-qbo-client",
                                  quickbooks_client_secret="sandbox-qbo-secret",
                                  quickbooks_api_url=url,
                                  quickbooks_token_url=f"{url}/oauth2/v1/tokens/bearer"),
                         clock=clock)
        [conn] = connect_with_refresh_token(ctx, "quickbooks", sandbox.mint_refresh_token(REALM),
                                            tenant_id=REALM)
        sync_one(ctx, conn)
        ids = editable_ids(sandbox, REALM, n)  # one note per invoice: the worst case
        with Session(ctx.engine) as s, s.begin():
            insert_jobs(s, _jobs(conn.id or 0, ids, n, clock.now()))
        sandbox.rate_limits = True  # Intuit's 500 requests/min, 40 batch requests/min
        before = dict(sandbox.stats[REALM])
        out = _drain_all(ctx, clock, conn.id or 0)
        delta = {k: v - before.get(k, 0) for k, v in sandbox.stats[REALM].items()}
    writes = math.ceil(n / 30)
    out.update(batch_writes=delta.get("batch", 0), reads=delta.get("query", 0),
               throttled_429=delta.get("throttled", 0),
               minimum={"batch_writes": writes, "reads_at_300": math.ceil(n / 300),
                        "api_calls": writes + math.ceil(n / 300),
                        "simulated_seconds_floor_40_batches_per_min":
                            (math.ceil(writes / 40) - 1) * 60})
    return out


def xero(n: int, tmp: Path, invoices: int) -> dict[str, Any]:
    reset_budgets()
    clock = SimClock(START)
    sandbox = XeroSandbox(clock=clock, rate_limits=True)  # 60/min, 5 at once, 5,000/day
    sandbox.add_organisation(TENANT, name="Bench Notes Ltd", contacts=200, invoices=invoices)
    with SandboxServer(sandbox) as server:
        url = server.url
        ctx = AppContext(Settings(_env_file=None, home=tmp / "xero",  # type: ignore[call-arg]
                                  secret_key="n" * 32, xero_client_id="sandbox-xero-client",
                                  xero_client_secret="sandbox-xero-secret", xero_api_url=url,
                                  xero_token_url=f"{url}/connect/token"), clock=clock)
        [conn] = connect_with_refresh_token(ctx, "xero", sandbox.mint_refresh_token([TENANT]))
        sync_one(ctx, conn)
        with Session(ctx.engine) as s:
            ids = list(s.scalars(select(Invoice.external_id).where(
                Invoice.connection_id == conn.id).order_by(Invoice.external_id)))
        with Session(ctx.engine) as s, s.begin():
            insert_jobs(s, _jobs(conn.id or 0, ids, n, clock.now()))
        before = dict(sandbox.stats[TENANT])
        out = _drain_all(ctx, clock, conn.id or 0)
        delta = {k: v - before.get(k, 0) for k, v in sandbox.stats[TENANT].items()}
    reserve, share = ctx.settings.xero_day_reserve, 500
    per_day = 5000 - reserve - share
    out.update(notes_in_sandbox=delta.get("notes", 0), throttled_429=delta.get("throttled", 0),
               minimum={"api_calls": n, "notes_per_day_after_reserve_and_sync_share": per_day,
                        "simulated_seconds_floor_days": (math.ceil(n / per_day) - 1) * 86400,
                        "simulated_seconds_floor_60_per_min_one_day":
                            (math.ceil(n / 60) - 1) * 60})
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--notes", type=int, default=10_000)
    p.add_argument("--xero-invoices", type=int, default=1_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        qbo = quickbooks(args.notes, Path(tmp))
        xro = xero(args.notes, Path(tmp), args.xero_invoices)
    print(json.dumps({"notes": args.notes, "quickbooks": qbo, "xero": xro}, indent=2))


if __name__ == "__main__":
    main()
