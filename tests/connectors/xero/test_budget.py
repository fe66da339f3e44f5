"""The per-organisation rate budget, on a simulated clock (no HTTP)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from arsync.clock import SimClock
from connectors.xero.budget import DayBudgetSpent, RateBudget, budget_for, reset_budgets

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> SimClock:
    return SimClock(T0)


def headers(minute: int = 50, day: int = 4000, app: int = 9000) -> dict[str, str]:
    return {"X-MinLimit-Remaining": str(minute), "X-DayLimit-Remaining": str(day),
            "X-AppMinLimit-Remaining": str(app)}


def test_budgets_are_shared_per_tenant() -> None:
    reset_budgets()
    assert budget_for("t1", reserve=10) is budget_for("t1", reserve=10)
    assert budget_for("t1", reserve=10) is not budget_for("t2", reserve=10)


def test_sixty_one_requests_wait_for_the_rolling_minute(clock: SimClock) -> None:
    budget = RateBudget("t", reserve=0)
    for n in range(60):
        with budget.slot(clock) as ticket:
            budget.observe(headers(minute=59 - n), clock, ticket)
    assert budget.minute_cap == 60
    assert clock.now() == T0
    with budget.slot(clock):
        pass
    assert clock.now() == T0 + timedelta(minutes=1)


def test_minute_remaining_zero_pauses_until_the_window_frees(clock: SimClock) -> None:
    budget = RateBudget("t", reserve=0)
    with budget.slot(clock):
        pass
    clock.advance(timedelta(seconds=20))
    budget.observe(headers(minute=0), clock)
    with budget.slot(clock):
        pass
    assert clock.now() == T0 + timedelta(minutes=1)  # our oldest request of the window aged out


def test_a_429_pauses_every_request_of_the_tenant(clock: SimClock) -> None:
    budget = RateBudget("t", reserve=0)
    budget.throttled("appminute", 30, clock)
    with budget.slot(clock):
        pass
    assert clock.now() == T0 + timedelta(seconds=30)


def test_a_minute_429_teaches_the_real_limit(clock: SimClock) -> None:
    """An organisation allowing 4 calls a minute: one 429, then never another."""
    budget = RateBudget("t", reserve=0)
    tickets = []
    for _ in range(5):  # a burst: Xero accepts four and refuses the fifth
        with budget.slot(clock) as ticket:
            tickets.append(ticket)
    budget.throttled("minute", 60, clock, tickets[4])
    for left, ticket in zip((3, 2, 1, 0), tickets[:4], strict=True):
        budget.observe(headers(minute=left), clock, ticket)
    assert budget.minute_cap == 4
    sent = []
    for n in range(8):
        with budget.slot(clock) as ticket:
            sent.append(ticket.at)
            budget.observe(headers(minute=3 - n % 4), clock, ticket)
    # four per rolling minute, starting when the refused call's minute is over
    assert sent == [T0 + timedelta(minutes=1)] * 4 + [T0 + timedelta(minutes=2)] * 4


def test_day_reserve_stops_non_urgent_work_only(clock: SimClock) -> None:
    budget = RateBudget("t", reserve=250)
    budget.observe(headers(day=250), clock)
    with pytest.raises(DayBudgetSpent) as raised, budget.slot(clock):
        pass
    assert raised.value.retry_after == pytest.approx(1800)  # next probe in 30 minutes
    with budget.slot(clock, urgent=True):
        pass
    clock.advance(timedelta(minutes=30))
    with budget.slot(clock):  # the probe goes through...
        pass
    budget.observe(headers(day=249), clock)
    with pytest.raises(DayBudgetSpent), budget.slot(clock):  # ...and the day is still spent
        pass
    budget.observe(headers(day=4999), clock)  # the window rolled over
    with budget.slot(clock):
        pass


def test_a_day_429_says_when_the_window_resets(clock: SimClock) -> None:
    budget = RateBudget("t", reserve=0)
    budget.throttled("day", 7200, clock)
    with pytest.raises(DayBudgetSpent) as raised, budget.slot(clock):
        pass
    assert raised.value.retry_after == pytest.approx(7200)


def test_at_most_five_requests_in_flight(clock: SimClock) -> None:
    budget = RateBudget("t", reserve=0)
    inside, peak, lock = 0, 0, threading.Lock()

    def request() -> None:
        nonlocal inside, peak
        with budget.slot(clock):
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.02)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=request) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 5


def test_concurrent_waiters_share_one_simulated_sleep(clock: SimClock) -> None:
    budget = RateBudget("t", reserve=0)
    budget.throttled("concurrent", 60, clock)

    def request() -> None:
        with budget.slot(clock):
            pass

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.now() == T0 + timedelta(seconds=60)


def test_day_figures_only_fall_within_a_day(clock: SimClock) -> None:
    """Concurrent answers arrive out of order; a small rise is stale, a jump is a new day."""
    budget = RateBudget("t", reserve=2)
    budget.observe(headers(day=2), clock)
    budget.observe(headers(day=3), clock)  # overtaken: Xero counted this call first
    assert budget.day_remaining == 2
    budget.observe(headers(day=4999), clock)
    assert budget.day_remaining == 4999


def test_calls_in_flight_count_against_the_day(clock: SimClock) -> None:
    budget = RateBudget("t", reserve=2)
    budget.observe(headers(day=4), clock)
    # two in flight: 4 - 2 leaves only the reserve
    with budget.slot(clock), budget.slot(clock), pytest.raises(DayBudgetSpent), \
            budget.slot(clock):
        pass
