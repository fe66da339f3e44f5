"""Promises to pay, disputes and payment plans change what is chased and when."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from rules import InstalmentView, PlanView, PromiseView, default_policy, explain, preview
from tests.rules.builders import (
    US,
    D,
    customer,
    days,
    evaluate,
    history,
    invoice,
    ny,
    run_daily,
    simple_policy,
    summary,
)

LADDER = simple_policy(
    "".join(
        f"  - {{id: overdue_{n}, offset: {n}, tone: {tone}, channels: [email], template: t}}\n"
        for n, tone in ((1, "friendly"), (7, "firm"), (14, "firm"), (30, "urgent"), (60, "final"))
    )
)


def promise(day: dt.date, recorded: dt.date) -> PromiseView:
    return PromiseView(day, None, ny(recorded.year, recorded.month, recorded.day))


def test_promise_holds_chasing_then_a_broken_promise_resumes_firmer() -> None:
    inv = invoice()
    sent, past = run_daily([inv], days(D(2024, 1, 29), D(2024, 2, 7)))
    assert [a.stage_id for a in sent] == ["due_soon", "overdue_1", "overdue_7"]
    promised = invoice(promise=promise(D(2024, 2, 20), recorded=D(2024, 2, 8)))
    held = evaluate([promised], ny(2024, 2, 14), past=past).held
    assert [(h.code, h.detail["promise_date"]) for h in held] == [("promise_pending", "2024-02-20")]
    # On the promised day itself the promise still stands.
    assert evaluate([promised], ny(2024, 2, 20), past=past).actions == ()
    later, _ = run_daily([promised], days(D(2024, 2, 8), D(2024, 3, 1)), past=past)
    assert summary(later) == [
        (D(2024, 2, 21), "promise_broken", "email"),  # the day after, above overdue_14
        (D(2024, 3, 1), "call_30", "task"),
    ]
    broken = later[0]
    assert broken.reason["anchor"] == "promise_date"
    assert broken.reason["invoices"][0]["superseded"] == ["overdue_14"]
    assert "the promise to pay invoice N-I1 by 2024-02-20 was broken" in explain(broken)


def test_broken_promise_escalates_to_the_next_stage_at_once_and_only_once() -> None:
    _, past = run_daily([invoice()], days(D(2024, 2, 1), D(2024, 2, 14)), policy=LADDER)
    first = invoice(promise=promise(D(2024, 2, 20), recorded=D(2024, 2, 15)))
    sent, past = run_daily([first], days(D(2024, 2, 15), D(2024, 3, 4)), past=past, policy=LADDER)
    # overdue_30 is not due by date until Mar 1, but a broken promise brings it forward.
    assert summary(sent) == [(D(2024, 2, 21), "overdue_30", "email")]
    assert sent[0].reason["rule"] == "broken_promise"
    assert sent[0].reason["stage_date"] == "2024-02-21"
    # A second promise, broken too: firmer again, the day after.
    second = invoice(promise=promise(D(2024, 3, 5), recorded=D(2024, 2, 22)))
    sent2, _ = run_daily([second], days(D(2024, 3, 5), D(2024, 3, 20)), past=past, policy=LADDER)
    assert summary(sent2) == [(D(2024, 3, 6), "overdue_60", "email")]
    assert "was broken" in explain(sent2[0])


def test_dispute_pauses_the_invoice_until_resolved_then_catches_up_once() -> None:
    _, past = run_daily([invoice()], days(D(2024, 2, 1), D(2024, 2, 2)))
    disputed = invoice(disputed=True)
    during, _ = run_daily([disputed], days(D(2024, 2, 3), D(2024, 3, 4)), past=past)
    assert during == []
    assert evaluate([disputed], ny(2024, 2, 20), past=past).held[0].code == "disputed"
    # Other invoices of the same customer are still chased meanwhile.
    other = invoice("I2", due=D(2024, 2, 5))
    assert [
        a.invoice_external_ids
        for a in evaluate([disputed, other], ny(2024, 2, 6), past=past).actions
    ] == [("I2",)]
    resolved, _ = run_daily([invoice()], days(D(2024, 3, 5), D(2024, 3, 15)), past=past)
    assert summary(resolved) == [
        (D(2024, 3, 5), "overdue_14", "email"),
        (D(2024, 3, 5), "call_30", "task"),
    ]
    assert resolved[0].reason["invoices"][0]["superseded"] == ["overdue_7"]


PLAN = PlanView(
    (
        InstalmentView(D(2024, 3, 1), Decimal("100.00"), paid=False),
        InstalmentView(D(2024, 4, 1), Decimal("100.00"), paid=False),
        InstalmentView(D(2024, 5, 1), Decimal("100.00"), paid=False),
    )
)


def test_payment_plan_instalments_are_chased_on_their_own_dates() -> None:
    inv = invoice(balance="300.00", plan=PLAN)
    actions = preview(
        customer(), [inv], history(), default_policy(), US, now=ny(2024, 2, 20), horizon_days=90
    )
    assert summary(actions) == [
        (D(2024, 2, 27), "instalment_due_soon", "email"),
        (D(2024, 3, 4), "instalment_overdue_1", "email"),  # Mar 2 is a Saturday
        (D(2024, 3, 8), "instalment_overdue_7", "email"),
        (D(2024, 3, 29), "instalment_due_soon", "email"),
        (D(2024, 4, 2), "instalment_overdue_1", "email"),
        (D(2024, 4, 8), "instalment_overdue_7", "email"),
        (D(2024, 4, 29), "instalment_due_soon", "email"),  # Apr 28 is a Sunday
        (D(2024, 5, 2), "instalment_overdue_1", "email"),
        (D(2024, 5, 8), "instalment_overdue_7", "email"),
    ]
    for action in actions:
        (line,) = action.reason["invoices"]
        assert (line["anchor"], line["amount"]) == ("instalment_date", "100.00")
    assert (
        "the instalment of USD 100.00 on invoice N-I1 is 3 days past its due date 2024-03-01"
        in explain(actions[1])
    )


def test_paid_instalments_are_skipped_and_amounts_capped_at_the_balance() -> None:
    plan = PlanView(
        (
            InstalmentView(D(2024, 3, 1), Decimal("100.00"), paid=True),
            InstalmentView(D(2024, 4, 1), Decimal("100.00"), paid=False),
        )
    )
    inv = invoice(balance="60.00", plan=plan)
    assert evaluate([inv], ny(2024, 3, 4)).actions == ()
    (action,) = evaluate([inv], ny(2024, 4, 2)).actions
    assert action.stage_id == "instalment_overdue_1"
    assert action.reason["invoices"][0]["amount"] == "60.00"
    settled = invoice(plan=PlanView((InstalmentView(D(2024, 3, 1), Decimal(100), paid=True),)))
    assert evaluate([settled], ny(2024, 4, 2)).held[0].code == "plan_settled"
