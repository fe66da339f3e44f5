"""Runs a sandbox in its own process, so a benchmark measures arsync's memory, not the emulator's.

Protocol on stdin/stdout, one line each: it prints ``READY <url> <refresh_token> <tenant ids>``;
``CHANGE <n>`` makes n edits a person might make (payments, voids, edits) and answers ``OK``;
``STATS`` answers ``STATS <json>``; ``QUIT`` stops it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from decimal import Decimal

from arsync.sandbox._http import SandboxServer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("provider", choices=["quickbooks", "xero"])
    p.add_argument("--invoices", type=int, default=100_000)
    p.add_argument("--customers", type=int, default=2_000)
    p.add_argument("--limits", action="store_true", help="keep the real rate limits on")
    args = p.parse_args()

    if args.provider == "quickbooks":
        from arsync.sandbox.quickbooks import QuickBooksSandbox

        sandbox = QuickBooksSandbox(rate_limits=args.limits)
        tenants = ["4620816365000000001"]
        sandbox.add_company(tenants[0], name="Benchmark Co", customers=args.customers,
                            invoices=args.invoices)
        token = sandbox.mint_refresh_token(tenants[0])
    else:
        from arsync.sandbox.xero import XeroSandbox

        # Limits off means no pacing at all: Xero's headers would otherwise still say 60/min,
        # and the connector rightly obeys them.
        big = {} if args.limits else {"minute_limit": 10**9, "day_limit": 10**9,
                                      "app_minute_limit": 10**9, "concurrent_limit": 1000}
        sandbox = XeroSandbox(rate_limits=args.limits, **big)  # type: ignore[assignment]
        tenants = ["0d7e3b1a-9c55-4bd2-8f33-000000000001"]
        sandbox.add_organisation(tenants[0], name="Benchmark Ltd",  # type: ignore[attr-defined]
                                 contacts=args.customers, invoices=args.invoices)
        token = sandbox.mint_refresh_token(tenants)  # type: ignore[arg-type]
    server = SandboxServer(sandbox)
    url = server.start()
    print("READY", url, token, ",".join(tenants), flush=True)
    rng = random.Random(7)
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "CHANGE":
            _change(sandbox, args.provider, tenants[0], int(rest[0]), rng)
            print("OK", flush=True)
        elif cmd == "STATS":
            print("STATS", json.dumps(sandbox.stats[tenants[0]], default=str), flush=True)
        elif cmd == "QUIT":
            break
    server.stop()


def _change(sandbox: object, provider: str, tenant: str, n: int, rng: random.Random) -> None:
    """n edits to open invoices: mostly payments, some due-date changes."""
    open_ids = sandbox.open_invoice_ids(tenant)  # type: ignore[attr-defined]
    for invoice_id in rng.sample(open_ids, n):
        if rng.random() < 0.7:
            sandbox.record_payment(tenant, invoice_id, None)  # type: ignore[attr-defined]
        else:
            sandbox.record_payment(tenant, invoice_id, Decimal("1.00"))  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
