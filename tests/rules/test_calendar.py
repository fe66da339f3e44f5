"""The company calendar: business days, holidays, month ends, DST and the send window."""

from __future__ import annotations

import datetime as dt

import pytest

from rules import BusinessCalendar, CompanyContext, RuleInputError, default_policy, load_policy
from tests.rules.builders import LONDON, NY, UK, US, D, local, ny, utc


def cal(company: CompanyContext = US, **policy_overrides: object) -> BusinessCalendar:
    policy = default_policy().model_copy(update=policy_overrides)
    return BusinessCalendar.for_company(policy, company)


@pytest.mark.parametrize(
    ("company", "day", "expected"),
    [
        pytest.param(US, D(2024, 11, 28), False, id="us-thanksgiving"),
        pytest.param(US, D(2024, 11, 29), True, id="us-black-friday-works"),
        pytest.param(US, D(2024, 11, 30), False, id="saturday"),
        pytest.param(US, D(2024, 12, 1), False, id="sunday"),
        pytest.param(US, D(2024, 7, 4), False, id="us-independence-day"),
        pytest.param(UK, D(2024, 5, 6), False, id="uk-early-may-bank-holiday"),
        pytest.param(UK, D(2024, 5, 7), True, id="uk-tuesday-after"),
        pytest.param(UK, D(2024, 11, 28), True, id="uk-works-on-thanksgiving"),
        pytest.param(UK, D(2024, 4, 1), True, id="gb-easter-monday-not-national"),
        pytest.param(
            CompanyContext(LONDON, "GB", "ENG"), D(2024, 4, 1), False, id="england-easter-monday"
        ),
    ],
)
def test_send_days(company: CompanyContext, day: dt.date, expected: bool) -> None:
    assert cal(company).is_send_day(day) is expected


def test_holidays_can_be_kept_as_working_days() -> None:
    assert cal(US, skip_holidays=False).is_send_day(D(2024, 11, 28))
    assert cal(US).holiday(D(2024, 11, 28)) == "Thanksgiving Day"


@pytest.mark.parametrize(
    ("start", "days", "unit", "expected"),
    [
        pytest.param(D(2024, 1, 31), 30, "calendar_days", D(2024, 3, 1), id="jan31+30-leap"),
        pytest.param(D(2023, 1, 31), 30, "calendar_days", D(2023, 3, 2), id="jan31+30-common"),
        pytest.param(D(2024, 2, 29), 7, "calendar_days", D(2024, 3, 7), id="leap-day+7"),
        pytest.param(D(2024, 2, 29), 365, "calendar_days", D(2025, 2, 28), id="leap-day+365"),
        pytest.param(D(2024, 3, 31), -31, "calendar_days", D(2024, 2, 29), id="back-to-leap-day"),
        pytest.param(D(2024, 12, 31), 1, "calendar_days", D(2025, 1, 1), id="year-end"),
        pytest.param(D(2024, 11, 27), 1, "business_days", D(2024, 11, 29), id="over-thanksgiving"),
        pytest.param(D(2024, 11, 27), 2, "business_days", D(2024, 12, 2), id="over-weekend"),
        pytest.param(D(2024, 12, 2), -2, "business_days", D(2024, 11, 27), id="backwards"),
        pytest.param(D(2024, 11, 30), 0, "business_days", D(2024, 11, 30), id="zero-stays"),
        pytest.param(D(2024, 12, 24), 1, "business_days", D(2024, 12, 26), id="over-christmas"),
    ],
)
def test_shift(start: dt.date, days: int, unit: str, expected: dt.date) -> None:
    assert cal().shift(start, days, unit) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("now", "company", "expected_day", "expected_at"),
    [
        pytest.param(ny(2024, 2, 6, 8), US, D(2024, 2, 6), ny(2024, 2, 6, 9), id="before-window"),
        pytest.param(
            ny(2024, 2, 6, 10, 30), US, D(2024, 2, 6), ny(2024, 2, 6, 10, 30), id="inside-window"
        ),
        pytest.param(ny(2024, 2, 6, 17), US, D(2024, 2, 7), ny(2024, 2, 7, 9), id="window-closed"),
        pytest.param(ny(2024, 2, 9, 18), US, D(2024, 2, 12), ny(2024, 2, 12, 9), id="friday-night"),
        pytest.param(ny(2024, 2, 10, 11), US, D(2024, 2, 12), ny(2024, 2, 12, 9), id="saturday"),
        pytest.param(
            ny(2024, 11, 27, 20), US, D(2024, 11, 29), ny(2024, 11, 29, 9), id="thanksgiving-eve"
        ),
        pytest.param(
            local(LONDON, 2024, 5, 3, 18),
            UK,
            D(2024, 5, 7),
            local(LONDON, 2024, 5, 7, 9),
            id="uk-bank-holiday-weekend",
        ),
        # 03:30 UTC on Monday is still Sunday evening in New York: the local day decides.
        pytest.param(
            utc(2024, 3, 11, 3, 30), US, D(2024, 3, 11), ny(2024, 3, 11, 9), id="utc-vs-local"
        ),
        # Across the spring-forward weekend the window opens at 09:00 EDT, i.e. 13:00 UTC.
        pytest.param(ny(2024, 3, 9, 20), US, D(2024, 3, 11), utc(2024, 3, 11, 13), id="ny-spring"),
        pytest.param(ny(2024, 11, 2, 20), US, D(2024, 11, 4), utc(2024, 11, 4, 14), id="ny-fall"),
        pytest.param(
            local(LONDON, 2024, 3, 30, 12), UK, D(2024, 4, 1), utc(2024, 4, 1, 8), id="uk-spring"
        ),
        pytest.param(
            local(LONDON, 2024, 10, 26, 12), UK, D(2024, 10, 28), utc(2024, 10, 28, 9), id="uk-fall"
        ),
    ],
)
def test_slot(
    now: dt.datetime, company: CompanyContext, expected_day: dt.date, expected_at: dt.datetime
) -> None:
    day, at = cal(company).slot(now, default_policy().send_window)
    assert (day, at) == (expected_day, expected_at)


@pytest.mark.parametrize(
    ("tz", "day", "time", "expected_utc"),
    [
        # Spring forward: 02:30 does not exist; it moves forward by the gap, once.
        pytest.param(NY, D(2024, 3, 10), dt.time(2, 30), utc(2024, 3, 10, 7, 30), id="ny-gap"),
        pytest.param(LONDON, D(2024, 3, 31), dt.time(1, 30), utc(2024, 3, 31, 1, 30), id="uk-gap"),
        # Fall back: 01:30 happens twice; the first occurrence is the one used.
        pytest.param(NY, D(2024, 11, 3), dt.time(1, 30), utc(2024, 11, 3, 5, 30), id="ny-fold"),
        pytest.param(
            LONDON, D(2024, 10, 27), dt.time(1, 30), utc(2024, 10, 27, 0, 30), id="uk-fold"
        ),
        pytest.param(NY, D(2024, 3, 10), dt.time(9), utc(2024, 3, 10, 13), id="ny-dst-day-9am"),
        pytest.param(NY, D(2024, 11, 3), dt.time(9), utc(2024, 11, 3, 14), id="ny-std-day-9am"),
    ],
)
def test_local_wall_times_around_dst(
    tz: str, day: dt.date, time: dt.time, expected_utc: dt.datetime
) -> None:
    company = CompanyContext(tz, None)
    assert cal(company).at(day, time) == expected_utc


def test_timezone_default_is_used_only_without_company_zone() -> None:
    policy = load_policy(
        "name: x\ntimezone_default: Europe/London\n"
        "stages: [{id: a, offset: 1, tone: firm, channels: [email], template: t}]\n"
    )
    assert BusinessCalendar.for_company(policy, CompanyContext(None, "GB")).timezone == LONDON
    assert BusinessCalendar.for_company(policy, CompanyContext(NY, "US")).timezone == NY


@pytest.mark.parametrize(
    ("company", "message"),
    [
        pytest.param(CompanyContext(None, "US"), "no time zone", id="no-zone"),
        pytest.param(CompanyContext("Mars/Olympus", "US"), "unknown IANA", id="bad-zone"),
        pytest.param(CompanyContext(NY, "XX"), "no public holiday calendar", id="bad-country"),
        pytest.param(CompanyContext(NY, "US", "ZZ"), "unknown subdivision", id="bad-subdivision"),
    ],
)
def test_bad_company_context(company: CompanyContext, message: str) -> None:
    with pytest.raises(RuleInputError, match=message):
        BusinessCalendar.for_company(default_policy(), company)
