"""Planned actions: idempotency keys, history records, reasons and explanations."""

from __future__ import annotations

import json

from rules import ActionRecord, CoveredItem, explain
from tests.rules.builders import D, evaluate, invoice, ny

# Due Wednesday 2024-01-31; on Thursday 2024-02-15 overdue_14 is the stage due.
FEB_15 = ny(2024, 2, 15)


def test_idempotency_key_is_stable_and_order_free() -> None:
    a, b = invoice("A"), invoice("B")
    morning = evaluate([a, b], ny(2024, 2, 15, 9, 30)).actions[0]
    afternoon = evaluate([b, a], ny(2024, 2, 15, 16, 30)).actions[0]
    assert morning.idempotency_key() == afternoon.idempotency_key()
    assert morning.planned_for != afternoon.planned_for
    next_day = evaluate([a, b], ny(2024, 2, 16)).actions[0]
    assert next_day.idempotency_key() != morning.idempotency_key()
    assert morning.idempotency_key().startswith("rk1-")


def test_record_round_trip_keeps_per_invoice_detail() -> None:
    (action,) = evaluate([invoice()], FEB_15).actions
    rec = action.to_record("sent")
    assert rec == ActionRecord(
        "overdue_14",
        "email",
        ("I1",),
        D(2024, 2, 15),
        "sent",
        (CoveredItem("I1", "overdue_14", "due_date", D(2024, 1, 31)),),
    )


def test_reason_and_explanation() -> None:
    (action,) = evaluate([invoice("A", balance="1200.00")], FEB_15).actions
    r = action.reason
    assert (r["stage"], r["rule"], r["anchor"], r["anchor_date"], r["days_offset"]) == (
        "overdue_14",
        "stage_due",
        "due_date",
        "2024-01-31",
        15,
    )
    assert r["invoices"][0]["days_overdue"] == 15
    assert r["invoices"][0]["skipped"]["plan_offer_60"] == {
        "why": "not_due",
        "due_on": "2024-03-31",
    }
    assert explain(action) == (
        "Email at stage overdue_14 (urgent) on 2024-02-15 for 1 invoice (USD 1,200.00) "
        "because invoice N-A is 15 days past its due date 2024-01-31; "
        "3 lesser due stages superseded, not sent."
    )
    (soon,) = evaluate([invoice(due=D(2024, 2, 2))], ny(2024, 1, 30)).actions
    assert "is due in 3 days (2024-02-02)" in explain(soon)


def test_reason_is_json_ready_for_the_ledger_and_the_cli() -> None:
    decision = evaluate(
        [invoice("A"), invoice("B", due=D(2024, 1, 10), currency="EUR")], ny(2024, 2, 15)
    )
    for action in decision.actions:
        assert json.loads(json.dumps(action.reason)) == action.reason


def test_explanations_for_tasks_and_consolidated_messages() -> None:
    decision = evaluate(
        [invoice("A"), invoice("B", due=D(2024, 1, 10), currency="EUR")], ny(2024, 2, 15)
    )
    message, task = decision.actions
    assert explain(message) == (
        "Email at stage overdue_14 (urgent) on 2024-02-15 for 2 invoices (EUR 100.00, USD 100.00) "
        "because invoice N-B is 36 days past its due date 2024-01-10; "
        "6 lesser due stages superseded, not sent; one message covers all 2."
    )
    assert explain(task) == (
        "Call task at stage call_30 (firm) on 2024-02-15 for 1 invoice (EUR 100.00) "
        "because invoice N-B is 36 days past its due date 2024-01-10."
    )
