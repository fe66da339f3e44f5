"""Conditions, attempts and daily limits: what stops a due stage from going out."""

from __future__ import annotations

from typing import Any

import pytest

from rules import (
    PlannedAction,
    default_policy,
    explain,
)
from tests.rules.builders import (
    D,
    customer,
    evaluate,
    feed,
    history,
    invoice,
    ny,
    record,
    simple_policy,
    stage_ids,
)

# Due Wednesday 2024-01-31; on Thursday 2024-02-15 overdue_14 is the stage due.
FEB_15 = ny(2024, 2, 15)


MAX2 = simple_policy(
    "  - id: late\n    offset: 1\n    tone: firm\n    channels: [email]\n    template: t\n"
    "    conditions: {max_attempts: 2}\n"
)


@pytest.mark.parametrize(
    ("status", "fires_again"),
    [
        pytest.param("sent", False, id="sent"),
        pytest.param("planned", False, id="planned"),
        pytest.param("awaiting_approval", False, id="awaiting-approval"),
        pytest.param("unknown", False, id="unknown-outcome-never-resent"),
        pytest.param("done", False, id="done"),
        pytest.param("rejected", False, id="rejected-by-a-person"),
        pytest.param("failed", True, id="failed-retried"),
        pytest.param("cancelled", True, id="cancelled-replanned"),
    ],
)
def test_history_status_decides_whether_a_stage_fires_again(status: str, fires_again: bool) -> None:
    past = history(record("late", ["I1"], D(2024, 2, 1), status))
    decision = evaluate([invoice()], ny(2024, 2, 2), past=past, policy=MAX2)
    assert bool(decision.actions) is fires_again


def test_max_attempts_caps_retries_per_invoice() -> None:
    failed = "failed"
    one = history(record("late", ["I1"], D(2024, 2, 1), failed))
    assert stage_ids(evaluate([invoice()], ny(2024, 2, 2), past=one, policy=MAX2)) == [
        ("late", "email")
    ]
    two = history(*one.records, record("late", ["I1"], D(2024, 2, 2), failed))
    decision = evaluate([invoice()], ny(2024, 2, 5), past=two, policy=MAX2)
    assert decision.actions == ()
    # Default max_attempts is 1: a failed send is not retried by the rules.
    failed_once = history(record("overdue_1", ["I1"], D(2024, 2, 1), failed))
    assert evaluate([invoice()], ny(2024, 2, 2), past=failed_once).actions == ()


@pytest.mark.parametrize(
    ("currency", "balance", "fires"),
    [
        pytest.param("USD", "100.00", True, id="usd-at-threshold"),
        pytest.param("USD", "99.99", False, id="usd-below"),
        pytest.param("EUR", "95.00", True, id="eur-above-its-own-threshold"),
        pytest.param("EUR", "89.99", False, id="eur-below"),
        pytest.param("GBP", "5000.00", False, id="unlisted-currency-fails-closed"),
    ],
)
def test_min_amount_per_currency(currency: str, balance: str, fires: bool) -> None:
    policy = simple_policy(
        "  - id: late\n    offset: 1\n    tone: firm\n    channels: [email]\n    template: t\n"
        "    conditions: {min_amount: {USD: 100, EUR: 90.00}}\n"
    )
    decision = evaluate([invoice(currency=currency, balance=balance)], FEB_15, policy=policy)
    assert bool(decision.actions) is fires
    if not fires:
        skipped = decision.held[0]
        assert skipped.code == "nothing_due"


def test_min_amount_wildcard_and_partial_payments_use_the_open_balance() -> None:
    policy = simple_policy(
        "  - id: late\n    offset: 1\n    tone: firm\n    channels: [email]\n    template: t\n"
        '    conditions: {min_amount: {USD: 100, "*": 50}}\n'
    )
    assert evaluate([invoice(currency="GBP", balance="60")], FEB_15, policy=policy).actions
    # 1000 invoiced, 750 paid: 250.50 is what is chased, and below a 300 floor it is not.
    partly_paid = invoice(total="1000.00", balance="250.50")
    (action,) = evaluate([partly_paid], FEB_15, policy=policy).actions
    line = action.reason["invoices"][0]
    assert (line["amount"], line["balance"], line["total"]) == ("250.50", "250.50", "1000.00")
    assert "USD 250.50" in explain(action)
    high = simple_policy(
        "  - id: late\n    offset: 1\n    tone: firm\n    channels: [email]\n    template: t\n"
        "    conditions: {min_amount: {USD: 300}}\n"
    )
    assert evaluate([partly_paid], FEB_15, policy=high).actions == ()


@pytest.mark.parametrize(
    ("conditions", "cust", "fires"),
    [
        pytest.param(
            "{customer_tags_any: [retail]}", {"tags": frozenset({"retail"})}, True, id="tag-any-yes"
        ),
        pytest.param(
            "{customer_tags_any: [retail]}", {"tags": frozenset({"b2b"})}, False, id="tag-any-no"
        ),
        pytest.param(
            "{customer_tags_none: [partner]}",
            {"tags": frozenset({"partner"})},
            False,
            id="tag-none",
        ),
        pytest.param("{customer_tags_none: [partner]}", {}, True, id="tag-none-ok"),
        pytest.param("{segments: [smb]}", {"segment": "smb"}, True, id="segment-yes"),
        pytest.param("{segments: [smb]}", {"segment": None}, False, id="segment-unknown"),
        pytest.param("{risk_levels: [high]}", {"risk": "high"}, True, id="risk-yes"),
        pytest.param("{risk_levels: [high]}", {"risk": "low"}, False, id="risk-no"),
    ],
)
def test_customer_conditions(conditions: str, cust: dict[str, Any], fires: bool) -> None:
    policy = simple_policy(
        "  - id: late\n    offset: 1\n    tone: firm\n    channels: [email]\n    template: t\n"
        f"    conditions: {conditions}\n"
    )
    decision = evaluate([invoice()], FEB_15, policy=policy, cust=customer(**cust))
    assert bool(decision.actions) is fires


@pytest.mark.parametrize(
    ("status", "cap", "second_message"),
    [
        pytest.param("sent", 1, False, id="sent-today-caps"),
        pytest.param("planned", 1, False, id="planned-today-caps"),
        pytest.param("failed", 1, False, id="failed-today-caps"),
        pytest.param("cancelled", 1, True, id="cancelled-does-not-count"),
        pytest.param("rejected", 1, True, id="rejected-does-not-count"),
        pytest.param("sent", 2, True, id="policy-allows-two"),
    ],
)
def test_at_most_n_messages_per_customer_per_local_day(
    status: str, cap: int, second_message: bool
) -> None:
    policy = default_policy().model_copy(update={"max_messages_per_customer_per_day": cap})
    earlier = history(record("overdue_7", ["OTHER"], D(2024, 2, 15), status))
    decision = evaluate([invoice()], FEB_15, past=earlier, policy=policy)
    assert bool(decision.messages) is second_message
    if not second_message:
        assert decision.notes == ("daily_message_limit",)
        assert [h.code for h in decision.held] == ["daily_message_limit"]


def test_hourly_runs_on_one_day_produce_one_message() -> None:
    inv, past = invoice(), history()
    sent: list[PlannedAction] = []
    for hour in range(24):
        decision = evaluate([inv], ny(2024, 2, 15, hour), past=past)
        sent.extend(a for a in decision.actions if a.local_date == D(2024, 2, 15))
        past = feed(past, decision.actions, "planned")
    assert [(a.stage_id, a.local_date) for a in sent] == [("overdue_14", D(2024, 2, 15))]


def test_message_and_task_channels_of_one_stage() -> None:
    policy = simple_policy(
        "  - {id: loud, offset: 1, tone: firm, channels: [email, sms, task], task_kind: letter,"
        " template: t}\n"
    )
    decision = evaluate([invoice()], FEB_15, policy=policy)
    assert stage_ids(decision) == [("loud", "email"), ("loud", "sms"), ("loud", "task")]
    email, sms, task = decision.actions
    assert email.kind == sms.kind == "message"
    assert task.kind == "task"
    assert task.task_kind == "letter"
    assert email.task_kind is None
    keys = {a.idempotency_key() for a in decision.actions}
    assert len(keys) == 3
    # Email and SMS legs are one contact: after them (and the task) nothing more today.
    again = evaluate(
        [invoice(), invoice("I2")], FEB_15, past=feed(history(), decision.actions), policy=policy
    )
    assert again.actions == ()
    assert set(again.notes) == {"daily_message_limit", "daily_task_limit"}
