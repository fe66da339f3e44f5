"""Simulated time a 100,000-invoice Xero organisation needs under Xero's real limits.

    .venv/bin/python benchmarks/xero_limits.py --invoices 100000

The sandbox and the connector share a simulated clock, so every wait the rate budget makes
(minute limit, Retry-After) costs simulated time only. The floor is what 60 calls a minute
allows for the calls the sync needs.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.xero import XeroSandbox
from arsync.syncing import sync_all

TENANT = "0d7e3b1a-9c55-4bd2-8f33-000000000002"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--invoices", type=int, default=100_000)
    p.add_argument("--contacts", type=int, default=2_000)
    args = p.parse_args()
    clock = SimClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    sandbox = XeroSandbox(clock=clock, rate_limits=True)  # 60/min, 5/at once, 5000/day
    sandbox.add_organisation(TENANT, name="Limits Ltd", contacts=args.contacts,
                             invoices=args.invoices)
    with SandboxServer(sandbox) as server, tempfile.TemporaryDirectory() as tmp:
        url = server.url
        settings = Settings(_env_file=None, home=Path(tmp), secret_key="x" * 32,  # type: ignore[call-arg]
                            xero_client_id="sandbox-xero-client",
                            xero_client_secret="sandbox-xero-secret", xero_api_url=url,
                            xero_token_url=f"{url}/connect/token")
        ctx = AppContext(settings, clock=clock)
        connect_with_refresh_token(ctx, "xero", sandbox.mint_refresh_token([TENANT]))
        sim0, wall0 = clock.now(), time.perf_counter()
        [report] = sync_all(ctx, full=True)
        simulated = (clock.now() - sim0).total_seconds()
        wall = time.perf_counter() - wall0
    calls = report["api_calls"]
    # 60 calls fit in each rolling minute, the first batch at once: the last batch starts
    # after (ceil(calls / 60) - 1) full minutes.
    floor = (math.ceil(calls / 60) - 1) * 60
    print(json.dumps({
        "invoices": report["invoices"], "payments": report["payments"],
        "customers": report["customers"], "credit_notes": report["credit_notes"],
        "api_calls": calls, "throttled_429": sandbox.stats[TENANT]["throttled"],
        "simulated_seconds": round(simulated, 1), "floor_seconds_at_60_per_minute": floor,
        "wall_seconds": round(wall, 1), "error": report.get("error"),
        "deferred": report.get("deferred"),
    }, indent=2))


if __name__ == "__main__":
    main()
