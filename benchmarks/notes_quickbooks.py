"""Writing 10,000 dunning notes into QuickBooks PrivateNote blocks, against the sandbox.

    .venv/bin/python benchmarks/notes_quickbooks.py --notes 10000
    .venv/bin/python benchmarks/notes_quickbooks.py --notes 10000 --conflicts 3

Two runs, each on its own sandbox company with one note per invoice (the worst case: notes on
the same invoice share one update):

1. ``unlimited``: the sandbox's rate limits off and arsync's pacing off, to count API calls and
   measure wall time (HTTP, JSON, block composition; the sandbox runs in this process, so its
   CPU is included);
2. ``real_limits``: the sandbox enforces Intuit's limits (500 requests/min, 40 batch
   requests/min per realm) on a simulated clock, and arsync paces itself to them; the clock's
   advance is the time the run would take against QuickBooks.

The minimum is one batch write per 30 notes plus the reads (one query per 1,000 invoices at
best; arsync reads 300 at a time so the SyncTokens are still fresh when the writes go).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from connectors.notes import NoteRequest
from connectors.quickbooks.connector import QuickBooksConnector
from connectors.quickbooks.notes import BATCH_MAX_ITEMS, READ_CHUNK, QuickBooksNotes

START = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
UNLIMITED = 10**9


def settings_for(url: str, home: Path) -> Settings:
    return Settings(_env_file=None, home=home, secret_key="b" * 32,  # type: ignore[call-arg]
                    quickbooks_client_id="sandbox-qbo-client",
                    quickbooks_client_secret="sandbox-qbo-secret", quickbooks_api_url=url,
                    quickbooks_token_url=f"{url}/oauth2/v1/tokens/bearer")


def editable_ids(sandbox: QuickBooksSandbox, realm: str, n: int) -> list[str]:
    """Invoices a person could edit: QuickBooks refuses edits once the customer is inactive."""
    co = sandbox.company(realm)
    with co.lock:
        active = {c["Id"] for c in co.rows("Customer") if c.get("Active", True)}
        ids = [inv["Id"] for inv in co.rows("Invoice") if inv["CustomerRef"]["value"] in active]
    if len(ids) < n:
        raise SystemExit(f"only {len(ids)} editable invoices; seed more with --invoices")
    return ids[:n]


class EditingWriter(QuickBooksNotes):
    """A person saves ``per_read`` of the invoices just read, before arsync writes (5010s)."""

    def __init__(self, sandbox: QuickBooksSandbox, realm: str, per_read: int, *a: Any,
                 **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.sandbox, self.realm, self.per_read, self.done = sandbox, realm, per_read, set()

    def _read(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        found = super()._read(ids)
        for inv_id in [i for i in ids if i not in self.done][:self.per_read]:
            self.done.add(inv_id)
            self.sandbox.edit_invoice(self.realm, inv_id, DueDate="2027-02-01")
        return found


def run(sandbox: QuickBooksSandbox, ctx: AppContext, clock: SimClock, realm: str, n: int, *,
        limits: bool, conflicts: int) -> dict[str, Any]:
    sandbox.rate_limits = limits
    [conn] = connect_with_refresh_token(ctx, "quickbooks", sandbox.mint_refresh_token(realm),
                                        tenant_id=realm)
    connector = ctx.connector_for(conn)
    assert isinstance(connector, QuickBooksConnector)
    pace = {} if limits else {"requests_per_minute": UNLIMITED, "batch_per_minute": UNLIMITED}
    writer = EditingWriter(sandbox, realm, conflicts, connector._qb, clock=clock,
                           retry=connector._retry, **pace)
    ids = editable_ids(sandbox, realm, n)
    notes = [NoteRequest(f"bench:{realm}:{i}", i, f"Reminder 2 sent to the customer for {i}.",
                         clock.now()) for i in ids]
    before = dict(sandbox.stats[realm])
    sim0, wall0 = clock.now(), time.perf_counter()
    results = writer.write_notes(notes)
    wall = time.perf_counter() - wall0
    simulated = (clock.now() - sim0).total_seconds()
    delta = {k: v - before.get(k, 0) for k, v in sandbox.stats[realm].items()}
    failed = [r for r in results if not r.ok]
    return {"notes": n, "ok": n - len(failed), "failed": len(failed),
            "first_error": failed[0].error if failed else None,
            "api_calls": delta.get("api_calls", 0), "batch_writes": delta.get("batch", 0),
            "reads": delta.get("query", 0), "throttled_429": delta.get("throttled", 0),
            "wall_seconds": round(wall, 2), "notes_per_wall_second": round(n / wall),
            "simulated_seconds": round(simulated, 1),
            "simulated_minutes": round(simulated / 60, 2)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--notes", type=int, default=10_000)
    p.add_argument("--invoices", type=int, default=0, help="seeded per company (default: 1.2x)")
    p.add_argument("--conflicts", type=int, default=0,
                   help="invoices a person edits between each read and its writes (5010s)")
    args = p.parse_args()
    n = args.notes
    seeded = args.invoices or int(n * 1.2) + 100
    clock = SimClock(START)
    sandbox = QuickBooksSandbox(clock=clock)
    t0 = time.perf_counter()
    for realm in ("1001", "1002"):
        sandbox.add_company(realm, name=f"Bench {realm}", customers=400, invoices=seeded, seed=5)
    seed_s = time.perf_counter() - t0
    writes_min = math.ceil(n / BATCH_MAX_ITEMS)
    with SandboxServer(sandbox) as server, tempfile.TemporaryDirectory() as tmp:
        ctx = AppContext(settings_for(server.url, Path(tmp)), clock=clock)
        unlimited = run(sandbox, ctx, clock, "1001", n, limits=False, conflicts=args.conflicts)
        clock.advance(timedelta(minutes=5))  # a fresh rate window for the second company
        limited = run(sandbox, ctx, clock, "1002", n, limits=True, conflicts=args.conflicts)
    batch_floor = (math.ceil(writes_min / 40) - 1) * 60  # 40 batch requests per rolling minute
    print(json.dumps({
        "notes": n, "conflicts_per_read": args.conflicts, "invoices_seeded_per_company": seeded,
        "seed_seconds": round(seed_s, 1),
        "minimum": {"batch_writes": writes_min, "reads_at_1000_per_query": math.ceil(n / 1000),
                    "reads_at_read_chunk": math.ceil(n / READ_CHUNK),
                    "api_calls": writes_min + math.ceil(n / READ_CHUNK),
                    "simulated_seconds_floor_40_batches_per_min": batch_floor},
        "unlimited": unlimited, "real_limits": limited,
    }, indent=2))


if __name__ == "__main__":
    main()
