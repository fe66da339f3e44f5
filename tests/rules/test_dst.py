"""Daylight-saving changes neither shift nor duplicate sends, however often the scheduler runs."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from rules import CompanyContext, PlannedAction, Policy, load_policy
from tests.rules.builders import LONDON, NY, evaluate, feed, history, invoice, utc

SEVEN_DAYS = "[mon, tue, wed, thu, fri, sat, sun]"


def policy_with_window(start: str) -> Policy:
    return load_policy(
        f'name: dst\nsend_window: {{start: "{start}", end: "20:00"}}\n'
        f"business_days: {SEVEN_DAYS}\nskip_holidays: false\nstages:\n"
        "  - {id: first, offset: 1, tone: friendly, channels: [email], template: t}\n"
        "  - {id: second, offset: 2, tone: firm, channels: [email], template: t}\n"
    )


@pytest.mark.parametrize(
    ("tz", "change_day", "start", "expected_utc"),
    [
        pytest.param(NY, dt.date(2024, 3, 10), "09:00", utc(2024, 3, 10, 13), id="ny-spring-0900"),
        pytest.param(NY, dt.date(2024, 11, 3), "09:00", utc(2024, 11, 3, 14), id="ny-fall-0900"),
        pytest.param(
            LONDON, dt.date(2024, 3, 31), "09:00", utc(2024, 3, 31, 8), id="uk-spring-0900"
        ),
        pytest.param(
            LONDON, dt.date(2024, 10, 27), "09:00", utc(2024, 10, 27, 9), id="uk-fall-0900"
        ),
        # Window opening inside the skipped hour: moves forward by the gap, once.
        pytest.param(NY, dt.date(2024, 3, 10), "02:30", utc(2024, 3, 10, 7, 30), id="ny-gap-0230"),
        pytest.param(
            LONDON, dt.date(2024, 3, 31), "01:30", utc(2024, 3, 31, 1, 30), id="uk-gap-0130"
        ),
        # Window opening inside the repeated hour: the first occurrence, and only that one.
        pytest.param(NY, dt.date(2024, 11, 3), "01:30", utc(2024, 11, 3, 5, 30), id="ny-fold-0130"),
        pytest.param(
            LONDON, dt.date(2024, 10, 27), "01:30", utc(2024, 10, 27, 0, 30), id="uk-fold-0130"
        ),
    ],
)
def test_runs_every_quarter_hour_across_a_dst_change(
    tz: str, change_day: dt.date, start: str, expected_utc: dt.datetime
) -> None:
    policy = policy_with_window(start)
    company = CompanyContext(tz, None)
    inv = invoice(due=change_day - dt.timedelta(days=1))  # "first" falls on the change day
    zone = ZoneInfo(tz)
    moment = dt.datetime.combine(change_day - dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    moment = moment.astimezone(dt.UTC)
    past = history()
    planned: list[PlannedAction] = []
    for _ in range(3 * 24 * 4):  # three days of runs, every 15 minutes of real (UTC) time
        decision = evaluate([inv], moment, past=past, policy=policy, company=company)
        planned.extend(decision.actions)
        past = feed(past, decision.actions, "planned")
        moment += dt.timedelta(minutes=15)
    next_day = change_day + dt.timedelta(days=1)
    start_time = dt.time.fromisoformat(start)
    assert [(a.stage_id, a.local_date, a.planned_for) for a in planned] == [
        ("first", change_day, expected_utc),
        (
            "second",
            next_day,
            dt.datetime.combine(next_day, start_time, tzinfo=zone).astimezone(dt.UTC),
        ),
    ]
    assert all(isinstance(a, PlannedAction) and a.planned_for.tzinfo is not None for a in planned)
