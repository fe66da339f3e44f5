"""preview: a pure day-by-day simulation of what would go out."""

from __future__ import annotations

import datetime as dt

import pytest

from rules import CompanyContext, InvoiceView, Policy, RuleInputError, default_policy, preview
from tests.rules.builders import (
    US,
    D,
    customer,
    history,
    invoice,
    local,
    ny,
    simple_policy,
    summary,
    utc,
)

ENGLAND = CompanyContext("Europe/London", "GB", "ENG")


def run(
    company: CompanyContext,
    now: dt.datetime,
    horizon: int,
    *,
    policy: Policy | None = None,
    inv: InvoiceView | None = None,
) -> list[tuple[dt.date, str, str]]:
    actions = preview(
        customer(),
        [inv or invoice()],
        history(),
        policy or default_policy(),
        company,
        now=now,
        horizon_days=horizon,
    )
    return summary(actions)


def test_hundred_days_of_one_invoice_in_new_york() -> None:
    now = ny(2024, 1, 25)
    actions = preview(
        customer(), [invoice()], history(), default_policy(), US, now=now, horizon_days=100
    )
    assert summary(actions) == [
        (D(2024, 1, 29), "due_soon", "email"),  # due - 3 is Sunday the 28th
        (D(2024, 2, 1), "overdue_1", "email"),
        (D(2024, 2, 7), "overdue_7", "email"),
        (D(2024, 2, 14), "overdue_14", "email"),
        (D(2024, 3, 1), "call_30", "task"),  # Jan 31 + 30 days in a leap year
        (D(2024, 4, 1), "plan_offer_60", "email"),  # Mar 31 is a Sunday
        (D(2024, 4, 30), "final_90", "email"),
    ]
    # 09:00 local on each day: EST before Mar 10, EDT after; never shifted by the change.
    assert [a.planned_for for a in actions] == [
        utc(2024, 1, 29, 14),
        utc(2024, 2, 1, 14),
        utc(2024, 2, 7, 14),
        utc(2024, 2, 14, 14),
        utc(2024, 3, 1, 14),
        utc(2024, 4, 1, 13),
        utc(2024, 4, 30, 13),
    ]
    assert len({a.idempotency_key() for a in actions}) == len(actions)


def test_hundred_days_in_england_skip_easter_monday() -> None:
    assert run(ENGLAND, local("Europe/London", 2024, 1, 25), 100) == [
        (D(2024, 1, 29), "due_soon", "email"),
        (D(2024, 2, 1), "overdue_1", "email"),
        (D(2024, 2, 7), "overdue_7", "email"),
        (D(2024, 2, 14), "overdue_14", "email"),
        (D(2024, 3, 1), "call_30", "task"),
        (D(2024, 4, 2), "plan_offer_60", "email"),  # Sun 31st, then Easter Monday
        (D(2024, 4, 30), "final_90", "email"),
    ]


@pytest.mark.parametrize(
    ("now", "horizon", "expected"),
    [
        pytest.param(ny(2024, 1, 29, 8), 0, [], id="zero-days"),
        pytest.param(ny(2024, 1, 29, 8), 1, [(D(2024, 1, 29), "due_soon", "email")], id="today"),
        pytest.param(ny(2024, 1, 27), 2, [], id="weekend-then-monday-outside"),
        pytest.param(
            ny(2024, 1, 27), 3, [(D(2024, 1, 29), "due_soon", "email")], id="weekend-then-monday"
        ),
        pytest.param(
            ny(2024, 1, 31, 18), 2, [(D(2024, 2, 1), "overdue_1", "email")], id="tomorrow"
        ),
        pytest.param(
            ny(2024, 1, 29, 18),
            7,
            # Monday's window has closed: the reminder goes on Tuesday instead, not skipped.
            [(D(2024, 1, 30), "due_soon", "email"), (D(2024, 2, 1), "overdue_1", "email")],
            id="next-week-after-window",
        ),
    ],
)
def test_horizon(now: dt.datetime, horizon: int, expected: list[tuple[dt.date, str, str]]) -> None:
    assert run(US, now, horizon) == expected


@pytest.mark.parametrize(
    ("offset", "due", "expected"),
    [
        # Thanksgiving (Thu) and the weekend do not count as business days.
        pytest.param(3, D(2024, 11, 27), D(2024, 12, 3), id="after-thanksgiving"),
        pytest.param(-2, D(2024, 12, 2), D(2024, 11, 27), id="before-over-thanksgiving"),
        pytest.param(1, D(2024, 12, 24), D(2024, 12, 26), id="over-christmas"),
    ],
)
def test_business_day_offsets(offset: int, due: dt.date, expected: dt.date) -> None:
    policy = simple_policy(
        f"  - {{id: s, offset: {offset}, offset_unit: business_days, tone: firm,"
        " channels: [email], template: t}\n"
    )
    start = ny(2024, 11, 20)
    assert run(US, start, 40, policy=policy, inv=invoice(due=due, issued=D(2024, 11, 1))) == [
        (expected, "s", "email")
    ]


def test_preview_is_pure_and_rejects_bad_input() -> None:
    args = (customer(), [invoice()], history(), default_policy(), US)
    assert preview(*args, now=ny(2024, 1, 25), horizon_days=30) == preview(
        *args, now=ny(2024, 1, 25), horizon_days=30
    )
    with pytest.raises(RuleInputError):
        preview(*args, now=dt.datetime(2024, 1, 25), horizon_days=3)
    with pytest.raises(RuleInputError):
        preview(*args, now=ny(2024, 1, 25), horizon_days=-1)
