"""Full and incremental sync throughput against a sandbox in another process.

    .venv/bin/python benchmarks/sync_bench.py quickbooks --invoices 100000
    .venv/bin/python benchmarks/sync_bench.py xero --invoices 100000

Reports invoices per second end to end (HTTP, parsing, mapping, SQLite writes), the API calls
made, and this process's peak resident memory (the emulator's memory is not counted).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlmodel import Session, func, select

from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Customer, Invoice, Payment
from arsync.syncing import sync_all

HERE = Path(__file__).parent


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settings_for(provider: str, url: str, home: Path, db_url: str | None) -> Settings:
    common = {"home": home, "secret_key": "b" * 32, "database_url": db_url}
    if provider == "quickbooks":
        extra = {"quickbooks_client_id": "sandbox-qbo-client",
                 "quickbooks_client_secret": "sandbox-qbo-secret", "quickbooks_api_url": url,
                 "quickbooks_token_url": f"{url}/oauth2/v1/tokens/bearer"}
    else:
        extra = {"xero_client_id": "sandbox-xero-client",
                 "xero_client_secret": "sandbox-xero-secret",
                 "xero_api_url": url, "xero_token_url": f"{url}/connect/token"}
    return Settings(_env_file=None, **common, **extra)  # type: ignore[call-arg]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("provider", choices=["quickbooks", "xero"])
    p.add_argument("--invoices", type=int, default=100_000)
    p.add_argument("--customers", type=int, default=2_000)
    p.add_argument("--changes", type=int, default=100)
    p.add_argument("--database-url", default=None, help="default: a SQLite file in a temp dir")
    args = p.parse_args()

    proc = subprocess.Popen(
        [sys.executable, str(HERE / "sandbox_process.py"), args.provider,
         "--invoices", str(args.invoices), "--customers", str(args.customers)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin
    assert proc.stdout
    ready = proc.stdout.readline().split()
    if not ready or ready[0] != "READY":
        sys.exit(f"sandbox failed to start: {ready}")
    _, url, token, tenants = ready
    rss_before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = AppContext(settings_for(args.provider, url, Path(tmp), args.database_url))
        if args.provider == "quickbooks":
            connect_with_refresh_token(ctx, "quickbooks", token, tenant_id=tenants)
        else:
            connect_with_refresh_token(ctx, "xero", token)
        t0 = time.perf_counter()
        full = sync_all(ctx, full=True)[0]
        full_s = time.perf_counter() - t0
        with Session(ctx.engine) as s:
            mirrored = {m.__name__: s.exec(select(func.count()).select_from(m)).one()
                        for m in (Invoice, Payment, Customer)}
        proc.stdin.write(f"CHANGE {args.changes}\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "OK"
        t1 = time.perf_counter()
        incr = sync_all(ctx)[0]
        incr_s = time.perf_counter() - t1
    proc.stdin.write("QUIT\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    result = {
        "provider": args.provider, "invoices_requested": args.invoices,
        "mirrored": mirrored, "full_sync": full, "full_seconds": round(full_s, 2),
        "invoices_per_second": round(full["invoices"] / full_s),
        "records_per_second": round((full["invoices"] + full["payments"] + full["customers"]
                                     + full["credit_notes"]) / full_s),
        "incremental": incr, "incremental_seconds": round(incr_s, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_sync_mb": round(rss_before, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
