"""Aging buckets and DSO: exact Decimal figures, one set per currency, never summed across."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from arsync import analytics
from arsync.analytics import InvoiceFigures

TODAY = date(2026, 3, 16)


def inv(currency: str, balance: str, *, due_days_ago: int | None, total: str | None = None,
        status: str = "open", issued_days_ago: int | None = 30) -> InvoiceFigures:
    return InvoiceFigures(
        currency=currency, total=Decimal(total or balance), balance=Decimal(balance),
        status=status,
        issue_date=TODAY - timedelta(days=issued_days_ago) if issued_days_ago is not None
        else None,
        due_date=TODAY - timedelta(days=due_days_ago) if due_days_ago is not None else None)


@pytest.mark.parametrize(("days", "bucket"), [
    (-10, "current"), (0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"),
    (61, "61-90"), (90, "61-90"), (91, "90+"), (400, "90+")])
def test_bucket_edges(days: int, bucket: str) -> None:
    assert analytics.bucket_for(days) == bucket


def test_aging_per_currency_with_exact_decimals() -> None:
    rows = [
        inv("USD", "100.10", due_days_ago=-5),      # not yet due
        inv("USD", "0.20", due_days_ago=0),         # due today: current
        inv("USD", "200.01", due_days_ago=1),
        inv("USD", "0.02", due_days_ago=30),
        inv("USD", "300.03", due_days_ago=45),
        inv("USD", "400.04", due_days_ago=75),
        inv("USD", "500.05", due_days_ago=120),
        inv("EUR", "99.99", due_days_ago=100),
        inv("EUR", "0.01", due_days_ago=10),
        inv("USD", "999.00", due_days_ago=50, status="paid"),    # not a receivable
        inv("USD", "0.00", due_days_ago=50),                     # nothing owed
        inv("USD", "77.00", due_days_ago=50, status="voided"),
        inv("USD", "88.00", due_days_ago=50, status="draft"),
    ]
    result = analytics.aging(rows, TODAY)
    assert list(result) == ["EUR", "USD"]
    assert result["USD"] == {"current": Decimal("100.30"), "1-30": Decimal("200.03"),
                             "31-60": Decimal("300.03"), "61-90": Decimal("400.04"),
                             "90+": Decimal("500.05")}
    assert result["EUR"] == {"current": Decimal(0), "1-30": Decimal("0.01"),
                             "31-60": Decimal(0), "61-90": Decimal(0), "90+": Decimal("99.99")}
    assert all(isinstance(v, Decimal) for row in result.values() for v in row.values())
    # 0.1 + 0.2 in float is 0.30000000000000004; in Decimal it is exact.
    assert sum(result["USD"].values()) == Decimal("1500.45")


def test_missing_due_date_falls_back_to_issue_date_then_current() -> None:
    rows = [inv("GBP", "10", due_days_ago=None, issued_days_ago=40),
            inv("GBP", "5", due_days_ago=None, issued_days_ago=None)]
    result = analytics.aging(rows, TODAY)["GBP"]
    assert result["31-60"] == Decimal(10) and result["current"] == Decimal(5)


def test_dso_standard_formula() -> None:
    assert analytics.dso(Decimal(1000), Decimal(3000), 90) == Decimal("30.0")
    assert analytics.dso(Decimal("123.45"), Decimal("1000"), 90) == Decimal("11.1")
    assert analytics.dso(Decimal(0), Decimal(10), 90) == Decimal("0.0")
    assert analytics.dso(Decimal(10), Decimal(0), 90) is None  # no sales: undefined
    with pytest.raises(ValueError, match="at least one day"):
        analytics.dso(Decimal(1), Decimal(1), 0)


def test_dso_by_currency_counts_sales_in_the_period_only() -> None:
    rows = [
        # USD: 900 issued inside the 90-day window (one paid), 600 still open.
        inv("USD", "300", total="300", due_days_ago=10, issued_days_ago=40),
        inv("USD", "0", total="600", status="paid", due_days_ago=20, issued_days_ago=89),
        # Issued 90 days ago: just outside a 90-day window that ends today (days 0..89).
        inv("USD", "300", total="300", due_days_ago=60, issued_days_ago=90),
        # Voided sales are not sales.
        inv("USD", "0", total="5000", status="voided", due_days_ago=5, issued_days_ago=5),
        # EUR: open balance but no sales in the period.
        inv("EUR", "50", due_days_ago=200, issued_days_ago=230),
        # JPY: sales, nothing open.
        inv("JPY", "0", total="10000", status="paid", due_days_ago=1, issued_days_ago=3),
    ]
    result = analytics.dso_by_currency(rows, TODAY)
    # USD: receivables 600 / sales 900 * 90 = 60.0
    assert result == {"EUR": None, "JPY": Decimal("0.0"), "USD": Decimal("60.0")}
    assert analytics.receivables(rows) == {"EUR": Decimal(50), "USD": Decimal(600)}
    start = TODAY - timedelta(days=89)
    assert analytics.credit_sales(rows, start, TODAY) == {"JPY": Decimal(10000),
                                                          "USD": Decimal(900)}


def test_currencies_are_never_added_together() -> None:
    rows = [inv("USD", "100", due_days_ago=5), inv("CAD", "100", due_days_ago=5)]
    assert analytics.receivables(rows) == {"CAD": Decimal(100), "USD": Decimal(100)}
    assert analytics.aging(rows, TODAY)["USD"]["1-30"] == Decimal(100)
