"""evaluate_customer: who is never chased, which stage fires when, consolidation and catch-up."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rules import (
    CompanyContext,
    InvoiceView,
    RuleInputError,
    default_policy,
    evaluate_customer,
    explain,
)
from tests.rules.builders import (
    LONDON,
    UK,
    US,
    D,
    customer,
    days,
    evaluate,
    feed,
    history,
    invoice,
    local,
    ny,
    record,
    run_daily,
    simple_policy,
    stage_ids,
    summary,
)

# Due Wednesday 2024-01-31; on Thursday 2024-02-15 overdue_14 is the stage due.
FEB_15 = ny(2024, 2, 15)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        pytest.param({"status": "paid", "balance": "0.00"}, "paid", id="paid"),
        pytest.param({"status": "voided"}, "voided", id="voided"),
        pytest.param({"status": "deleted"}, "deleted", id="deleted"),
        pytest.param({"status": "draft"}, "draft", id="draft"),
        pytest.param({"balance": "0.00"}, "paid", id="open-but-zero-balance"),
        pytest.param({"balance": "-5.00"}, "paid", id="overpaid-by-credit-note"),
        pytest.param({"disputed": True}, "disputed", id="disputed"),
        pytest.param({"paused_until": D(2024, 2, 15)}, "invoice_paused", id="paused-through-today"),
        pytest.param({"paused_until": D(2024, 3, 1)}, "invoice_paused", id="paused-later"),
        pytest.param({"paused_until": D(2024, 2, 14)}, None, id="pause-ended-yesterday"),
    ],
)
def test_invoices_that_are_never_chased(changes: dict[str, Any], code: str | None) -> None:
    decision = evaluate([invoice(**changes)], FEB_15)
    if code is None:
        assert stage_ids(decision) == [("overdue_14", "email")]
        assert decision.held == ()
    else:
        assert decision.actions == ()
        assert [(h.invoice_external_id, h.code) for h in decision.held] == [("I1", code)]


@pytest.mark.parametrize(
    ("overrides", "expected_actions", "note"),
    [
        pytest.param({"excluded": True}, [], "customer_excluded", id="excluded"),
        pytest.param({"paused_until": D(2024, 2, 15)}, [], "customer_paused", id="paused-today"),
        pytest.param(
            {"paused_until": D(2024, 2, 14)}, [("overdue_14", "email")], None, id="resumed"
        ),
        pytest.param({"tags": frozenset({"vip"})}, [("overdue_14", "email")], None, id="plain"),
    ],
)
def test_customer_overrides(
    overrides: dict[str, Any], expected_actions: list[tuple[str, str]], note: str | None
) -> None:
    decision = evaluate([invoice("A"), invoice("B")], FEB_15, cust=customer(**overrides))
    assert stage_ids(decision) == expected_actions
    if note:
        assert decision.notes == (note,)
        assert {h.code for h in decision.held} == {note}
        assert len(decision.held) == 2


@pytest.mark.parametrize(
    ("today", "message_stage", "task_stage"),
    [
        pytest.param(D(2024, 1, 26), None, None, id="before-any-stage"),
        # due - 3 is Sunday 2024-01-28: the reminder waits for Monday.
        pytest.param(D(2024, 1, 29), "due_soon", None, id="due-soon-after-weekend"),
        pytest.param(D(2024, 2, 1), "overdue_1", None, id="one-day-late"),
        pytest.param(D(2024, 2, 7), "overdue_7", None, id="seven-days"),
        pytest.param(D(2024, 2, 14), "overdue_14", None, id="fourteen-days"),
        # Jan 31 + 30 calendar days is Mar 1 in a leap year.
        pytest.param(D(2024, 2, 29), "overdue_14", None, id="leap-day-not-yet-30"),
        pytest.param(D(2024, 3, 1), "overdue_14", "call_30", id="thirty-days-task"),
        pytest.param(D(2024, 4, 1), "plan_offer_60", "call_30", id="sixty-days"),
        pytest.param(D(2024, 4, 30), "final_90", "call_30", id="ninety-days"),
    ],
)
def test_most_severe_due_stage_without_history(
    today: dt.date, message_stage: str | None, task_stage: str | None
) -> None:
    decision = evaluate([invoice()], ny(today.year, today.month, today.day))
    assert [a.stage_id for a in decision.messages] == ([message_stage] if message_stage else [])
    assert [a.stage_id for a in decision.tasks] == ([task_stage] if task_stage else [])


def test_month_end_in_a_common_year() -> None:
    inv = invoice(due=D(2023, 1, 31))  # + 30 days is Thursday 2023-03-02
    assert evaluate([inv], ny(2023, 3, 1)).tasks == ()
    assert [a.stage_id for a in evaluate([inv], ny(2023, 3, 2)).tasks] == ["call_30"]


@pytest.mark.parametrize(
    ("due", "now", "company", "expected_day"),
    [
        # overdue_1 on Thanksgiving (Thu 2024-11-28) waits for Friday.
        pytest.param(D(2024, 11, 27), ny(2024, 11, 28), US, D(2024, 11, 29), id="us-thanksgiving"),
        # overdue_1 on Saturday, Monday is the Early May bank holiday: Tuesday.
        pytest.param(
            D(2024, 5, 3), local(LONDON, 2024, 5, 4), UK, D(2024, 5, 7), id="uk-bank-holiday"
        ),
        # overdue_1 on Saturday 2024-02-10 waits for Monday.
        pytest.param(D(2024, 2, 9), ny(2024, 2, 10), US, D(2024, 2, 12), id="weekend"),
    ],
)
def test_sends_wait_for_the_next_business_day(
    due: dt.date, now: dt.datetime, company: CompanyContext, expected_day: dt.date
) -> None:
    past = history(record("due_soon", ["I1"], due - dt.timedelta(days=3)))
    decision = evaluate([invoice(due=due)], now, past=past, company=company)
    (action,) = decision.actions
    assert (action.stage_id, action.local_date) == ("overdue_1", expected_day)
    assert company.timezone is not None
    assert action.planned_for.astimezone(ZoneInfo(company.timezone)).time() == dt.time(9)


def test_twenty_overdue_invoices_get_one_message() -> None:
    today = D(2024, 2, 20)
    invoices = [invoice(f"I{i:02d}", due=today - dt.timedelta(days=3 * i)) for i in range(20)]
    decision = evaluate(invoices, ny(2024, 2, 20))
    (message,) = decision.messages
    assert message.stage_id == "overdue_14"  # the most severe among them
    assert message.invoice_external_ids == tuple(sorted(i.external_id for i in invoices))
    assert message.reason["consolidated"] == 20
    assert message.reason["totals"] == {"USD": "2000.00"}
    own = {c.invoice_external_id: c.stage_id for c in message.covered}
    assert own["I00"] == "due_soon"
    assert own["I01"] == "overdue_1"
    assert own["I19"] == "overdue_14"
    # Invoices 30 or more days late also become one call task for a person.
    (task,) = decision.tasks
    assert task.channel == "task"
    assert task.task_kind == "call"
    assert task.invoice_external_ids == tuple(f"I{i:02d}" for i in range(10, 20))
    assert decision.held == ()
    # A second run the same day sends nothing more.
    again = evaluate(invoices, ny(2024, 2, 20, 15), past=feed(history(), decision.actions))
    assert again.actions == ()
    # Next day: only the invoices whose own stage moved on, still in one message.
    nxt = evaluate(invoices, ny(2024, 2, 21), past=feed(history(), decision.actions))
    (message2,) = nxt.messages
    assert {c.stage_id for c in message2.covered} <= {"overdue_1", "overdue_7", "overdue_14"}


def test_lesser_invoice_in_a_consolidated_message_still_climbs_its_own_ladder() -> None:
    old, new = invoice("OLD", due=D(2024, 1, 31)), invoice("NEW", due=D(2024, 2, 17))
    actions, _ = run_daily([old, new], days(D(2024, 2, 14), D(2024, 2, 26)))
    assert summary(actions) == [
        (D(2024, 2, 14), "overdue_14", "email"),  # NEW rides along at due_soon
        (D(2024, 2, 20), "overdue_1", "email"),  # Sat 18th; Mon 19th is Presidents. Day
        (D(2024, 2, 26), "overdue_7", "email"),  # Sun 24th -> Mon 26th
    ]
    covered = {c.invoice_external_id: c.stage_id for c in actions[0].covered}
    assert covered == {"OLD": "overdue_14", "NEW": "due_soon"}
    assert actions[1].invoice_external_ids == ("NEW",)


def test_catch_up_after_forty_days_of_downtime_sends_one_message_not_a_burst() -> None:
    inv = invoice()
    past = history(record("due_soon", ["I1"], D(2024, 1, 29)))
    # Down from Jan 30 to Mar 10; back on Monday Mar 11 (40 days after due).
    decision = evaluate([inv], ny(2024, 3, 11), past=past)
    assert stage_ids(decision) == [("overdue_14", "email"), ("call_30", "task")]
    message = decision.messages[0]
    assert message.reason["catch_up"] is True
    assert message.reason["invoices"][0]["superseded"] == ["overdue_1", "overdue_7"]
    assert "2 lesser due stages superseded" in explain(message)
    # The superseded stages never fire later; the next message is the 60-day one.
    later, _ = run_daily(
        [inv], days(D(2024, 3, 12), D(2024, 4, 2)), past=feed(past, decision.actions)
    )
    assert summary(later) == [(D(2024, 4, 1), "plan_offer_60", "email")]


def test_stage_already_sent_is_never_sent_again() -> None:
    inv = invoice()
    first = evaluate([inv], ny(2024, 2, 7))
    assert stage_ids(first) == [("overdue_7", "email")]
    later, _ = run_daily(
        [inv], days(D(2024, 2, 7), D(2024, 2, 13)), past=feed(history(), first.actions)
    )
    assert later == []
    held = evaluate([inv], ny(2024, 2, 9), past=feed(history(), first.actions)).held
    assert [(h.code, h.detail["next_stage_on"]) for h in held] == [("nothing_due", "2024-02-14")]


def test_never_de_escalates_when_severity_and_offsets_disagree() -> None:
    policy = simple_policy(
        "  - {id: gentle_late, offset: 20, tone: friendly, channels: [email], template: t}\n"
        "  - {id: firm_early, offset: 10, tone: firm, channels: [email], template: t}\n"
    )
    actions, past = run_daily([invoice()], days(D(2024, 2, 1), D(2024, 3, 1)), policy=policy)
    assert summary(actions) == [(D(2024, 2, 12), "firm_early", "email")]  # Feb 10 is a Saturday
    held = evaluate([invoice()], ny(2024, 2, 21), past=past, policy=policy).held
    assert held[0].code == "nothing_due"


def test_pre_due_reminder_is_not_sent_on_or_before_the_issue_date() -> None:
    inv = invoice(due=D(2024, 2, 2), issued=D(2024, 1, 30))  # due - 3 precedes the invoice
    decision = evaluate([inv], ny(2024, 1, 31))
    assert decision.actions == ()
    assert decision.held[0].code == "nothing_due"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: evaluate([invoice()], dt.datetime(2024, 2, 15, 10)),
            "timezone-aware",
            id="naive-now",
        ),
        pytest.param(
            lambda: evaluate([invoice(), invoice()], FEB_15),
            "duplicate invoice ids",
            id="duplicate-ids",
        ),
        pytest.param(
            lambda: evaluate([invoice()], FEB_15, cust=customer(policy_name="vip")),
            "uses policy 'vip'",
            id="wrong-policy",
        ),
        pytest.param(lambda: invoice(status="closed"), "unknown status", id="bad-invoice-status"),
        pytest.param(
            lambda: record("x", ["I1"], D(2024, 1, 1), "queued?"),
            "unknown action status",
            id="bad-history-status",
        ),
    ],
)
def test_bad_inputs_are_rejected(make: Any, message: str) -> None:
    with pytest.raises(RuleInputError, match=message):
        make()


def test_customer_policy_name_matching_is_accepted() -> None:
    cust = customer(policy_name="default")
    assert evaluate_customer(
        cust, (invoice(),), history(), default_policy(), US, now=FEB_15
    ).actions


def test_evaluation_is_linear_and_fast_for_many_invoices() -> None:
    import time

    invoices: list[InvoiceView] = [
        invoice(
            f"I{i:05d}", due=D(2024, 1, 1) + dt.timedelta(days=i % 60), balance=str(Decimal(i + 1))
        )
        for i in range(5000)
    ]
    started = time.perf_counter()
    decision = evaluate(invoices, ny(2024, 3, 15))
    elapsed = time.perf_counter() - started
    assert len(decision.messages) == 1
    assert len(decision.messages[0].invoice_external_ids) == 5000
    assert elapsed < 10  # generous: about 0.2 s on the reference machine
