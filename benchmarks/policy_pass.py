"""Policy pass over a large synthetic mirror: a full pass, then routine passes.

    .venv/bin/python benchmarks/policy_pass.py --connections 10000 --invoices 1000000 --workers 2

Builds a SQLite mirror (bulk inserts straight through sqlite3), then times:

1. the *full* pass: every customer of every connection evaluated and its actions persisted,
   sharded over ``--workers`` processes by connection (the worst case: a policy switched on
   over a mirror where every overdue invoice is in catch-up). Each worker plans
   ``arsync.passes.BATCH`` connections, then writes their actions in one transaction, as
   ``arsync.passes.run_all`` does;
2. a *routine* tick five minutes later, after a sync touched ``--changed`` of the invoices:
   only customers with a changed invoice (or a review date that has come) are evaluated;
3. the tick after it, with nothing changed and nothing due (the scheduler's common case);
4. the first tick of the next day: whatever became due overnight.

Reports wall time, customers evaluated, actions written and peak resident memory (the largest
of the parent and the workers). No message is sent (the drain is a separate, per-action cost).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import sqlite3
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.context import AppContext
from arsync.db import make_engine, upgrade

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # a Tuesday
ZONES = [("America/New_York", "US"), ("Europe/London", "GB"), ("Australia/Sydney", "AU"),
         ("America/Los_Angeles", "US")]


def build(path: Path, connections: int, invoices: int, per_customer: int, seed: int) -> None:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    stamp = NOW.replace(tzinfo=None).isoformat(sep=" ")
    db.executemany(
        "INSERT INTO connections (id, provider, tenant_id, name, status, timezone, currency, "
        "country, created_at, last_synced_at, pilot_mode) VALUES (?,?,?,?,?,?,?,?,?,?,0)",
        [(c, "quickbooks", f"realm-{c}", f"Company {c}", "active", ZONES[c % 4][0], "USD",
          ZONES[c % 4][1], stamp, stamp) for c in range(1, connections + 1)])
    per_conn = invoices // connections
    customers_per_conn = max(1, per_conn // per_customer)
    cust_rows, inv_rows = [], []
    today = NOW.date()

    def flush() -> None:
        db.executemany(
            "INSERT INTO customers (connection_id, external_id, name, email, active, deleted, "
            "seen_at) VALUES (?,?,?,?,1,0,?)", cust_rows)
        db.executemany(
            "INSERT INTO invoices (connection_id, external_id, number, customer_external_id, "
            "currency, total, balance, issue_date, due_date, status, seen_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)", inv_rows)
        cust_rows.clear()
        inv_rows.clear()

    for c in range(1, connections + 1):
        for k in range(customers_per_conn):
            cust_rows.append((c, f"C{k}", f"Customer {k}", f"ap{k}@example.com", stamp))
        for i in range(per_conn):
            due = today + timedelta(days=rng.randint(-100, 40))
            amount = f"{rng.randint(50, 5000)}.{rng.randint(0, 99):02d}"
            inv_rows.append((c, f"I{i}", f"{1000 + i}", f"C{i % customers_per_conn}", "USD",
                             amount, amount, (due - timedelta(days=30)).isoformat(),
                             due.isoformat(), "open", stamp))
        if len(inv_rows) >= 200_000:
            flush()
    flush()
    db.commit()
    db.close()


def _worker(url: str, home: str, ids: list[int], now_iso: str, full: bool,
            out: Any) -> None:
    from arsync.passes import BATCH, load_connections, plan_connections

    now = datetime.fromisoformat(now_iso)
    ctx = AppContext(Settings(_env_file=None, home=Path(home), secret_key="b" * 32),  # type: ignore[call-arg]
                     clock=SimClock(now))
    ctx.__dict__["engine"] = make_engine(url)
    evaluated = new = 0
    for i in range(0, len(ids), BATCH):  # as passes.run_all does: plan a batch, write it at once
        results = plan_connections(ctx, load_connections(ctx, ids[i:i + BATCH]), now, full=full)
        evaluated += sum(r.evaluated for r in results.values())
        new += sum(r.new for r in results.values())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put((evaluated, new, usage.ru_maxrss, usage.ru_utime + usage.ru_stime))


def run_pass(url: str, home: str, ids: list[int], now: datetime, *, full: bool,
             workers: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    started = time.perf_counter()
    procs = [ctx.Process(target=_worker, args=(url, home, ids[k::workers], now.isoformat(),
                                                 full, out)) for k in range(workers)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return {"seconds": round(time.perf_counter() - started, 2),
            "connections": len(ids),
            "customers_evaluated": sum(r[0] for r in results),
            "actions_written": sum(r[1] for r in results),
            "cpu_seconds": round(sum(r[3] for r in results), 1),
            "peak_rss_mb": round(max(r[2] for r in results) / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--invoices", type=int, default=1_000_000)
    ap.add_argument("--per-customer", type=int, default=10, help="invoices per customer")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--changed", type=float, default=0.01, help="share touched by a sync")
    ap.add_argument("--db", type=Path, default=None)
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="arsync-bench-"))
    path = args.db or home / "bench.db"
    url = f"sqlite:///{path}"
    t0 = time.perf_counter()
    build(path, args.connections, args.invoices, args.per_customer, seed=1)
    built = round(time.perf_counter() - t0, 1)

    from arsync.passes import due_connections

    ids = list(range(1, args.connections + 1))
    full = run_pass(url, str(home), ids, NOW, full=True, workers=args.workers)

    ctx = AppContext(Settings(_env_file=None, home=home, secret_key="b" * 32),  # type: ignore[call-arg]
                     clock=SimClock(NOW))
    ctx.__dict__["engine"] = make_engine(url)

    def routine(now: datetime, touch: float) -> dict[str, Any]:
        if touch:  # a sync upserted this share of the invoices: their review mark is NULL again
            db = sqlite3.connect(path)
            db.execute("UPDATE invoices SET review_on = NULL WHERE id % ? = 0",
                       (max(1, round(1 / touch)),))
            db.commit()
            db.close()
        t = time.perf_counter()
        due_ids = due_connections(ctx, now)
        selecting = round(time.perf_counter() - t, 2)
        result = run_pass(url, str(home), due_ids, now, full=False, workers=args.workers)
        result["selecting_seconds"] = selecting
        result["seconds"] = round(result["seconds"] + selecting, 2)
        return result

    later = NOW + timedelta(minutes=5)
    tick = routine(later, args.changed)          # the next 5-minute tick, same day
    idle = routine(later + timedelta(minutes=5), 0)  # and the one after: nothing due
    next_day = routine(NOW + timedelta(days=1), 0)   # the first tick of the next day
    report = {"invoices": args.invoices, "connections": args.connections,
              "workers": args.workers, "build_seconds": built, "full_pass": full,
              f"routine_tick_{args.changed:.0%}_changed": tick, "routine_tick_nothing_due": idle,
              "first_tick_next_day": next_day,
              "parent_peak_rss_mb": round(
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "date": date.today().isoformat()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
