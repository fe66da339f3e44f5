"""Micro-benchmark of rules.evaluate_customer: µs per invoice (full pass and routine case).

Usage: .venv/bin/python benchmarks/rules_micro.py [customers] [--profile]
"""

from __future__ import annotations

import cProfile
import datetime as dt
import pstats
import sys
import time
from decimal import Decimal
from zoneinfo import ZoneInfo

import rules
from rules.views import ActionHistory, ActionRecord, CompanyContext, CustomerView, InvoiceView

TZ = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 3, 11, 10, 0, tzinfo=TZ)  # a Wednesday
TODAY = NOW.date()
PER_CUSTOMER = 10


def build(n_customers: int):
    policy = rules.default_policy()
    company = CompanyContext("America/New_York", "US")
    data = []
    span = 140  # 100 days overdue .. 40 days ahead
    k = 0
    for c in range(n_customers):
        cust = CustomerView(f"C{c}", f"Customer {c}")
        invs = []
        for i in range(PER_CUSTOMER):
            offset = 100 - (k * 37) % (span + 1)
            k += 1
            due = TODAY - dt.timedelta(days=offset)
            invs.append(
                InvoiceView(
                    f"C{c}-I{i}",
                    f"N{c}-{i}",
                    "USD",
                    Decimal("1200.00"),
                    Decimal("950.50"),
                    due - dt.timedelta(days=30),
                    due,
                    "open",
                )
            )
        data.append((cust, tuple(invs)))
    return policy, company, data


def covered_history(policy, company, data):
    """A history in which every invoice's due stages were already covered (yesterday)."""
    out = []
    for cust, invs in data:
        d = rules.evaluate_customer(cust, invs, ActionHistory(), policy, company, now=NOW)
        recs = tuple(
            ActionRecord(
                a.stage_id,
                a.channel,
                a.invoice_external_ids,
                TODAY - dt.timedelta(days=1),
                "sent",
                a.covered,
            )
            for a in d.actions
        )
        out.append(ActionHistory(recs))
    return out


def run(policy, company, data, histories) -> float:
    t0 = time.perf_counter()
    for (cust, invs), hist in zip(data, histories, strict=True):
        rules.evaluate_customer(cust, invs, hist, policy, company, now=NOW)
    return time.perf_counter() - t0


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "2000"))
    policy, company, data = build(n)
    empty = [ActionHistory()] * n
    covered = covered_history(policy, company, data)
    n_inv = n * PER_CUSTOMER
    if "--profile" in sys.argv:
        prof = cProfile.Profile()
        prof.enable()
        run(policy, company, data, empty)
        run(policy, company, data, covered)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    for name, hists in (
        ("full pass (empty history)", empty),
        ("routine (covered history)", covered),
    ):
        run(policy, company, data, hists)  # warm caches
        best = min(run(policy, company, data, hists) for _ in range(5))
        print(f"{name:28s} {best / n_inv * 1e6:8.1f} µs/invoice  ({n_inv} invoices)")


if __name__ == "__main__":
    main()
