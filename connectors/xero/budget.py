"""The rate budget of one Xero organisation, shared by every connector of it in this process.

Xero limits each organisation to 5 requests in flight, 60 a minute and 5,000 a day (1,000 on the
Starter tier), and the app to 10,000 a minute; every response says what is left
(``X-MinLimit-Remaining``, ``X-DayLimit-Remaining``, ``X-AppMinLimit-Remaining``). The policy:

1. **Concurrency.** At most 5 requests of an organisation are in flight (a semaphore).
2. **Minute.** At most ``minute_cap`` requests are sent in any rolling minute, the best lower
   bound of the limit the headers give (calls Xero accepted from us this minute +
   ``X-MinLimit-Remaining``: 60 for a real organisation); a minute 429 (the limit is shared)
   lowers it to what was accepted, so one 429 is not followed by a train of them. When a
   response says the minute (or the app's minute) has nothing left, new requests wait until
   the oldest request of the window is a minute old.
3. **429.** The ``Retry-After`` of a minute or concurrency 429 pauses the whole organisation; the
   request is then retried by the connector, a bounded number of times.
4. **Day.** Once the day budget is down to ``reserve`` calls (counting requests in flight; within
   a day the figure only falls), non-urgent requests (sync) are refused with
   :class:`DayBudgetSpent` before they are sent; the connector raises it as
   ``RateLimitedError(problem="day")``, which defers the connection while keeping every page
   already applied. Urgent requests (notes, the freshness check before a send) may spend the
   reserve. A day 429's ``Retry-After`` says when the window resets; without one, a single
   request is let through every ``DAY_PROBE_INTERVAL`` to find out.
5. **Time.** Every wait goes through the caller's ``clock.sleep``, and one thread at a time does
   the waiting, so a simulated clock moves once for all the threads waiting on it.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from arsync.clock import Clock
from connectors.xero.settings import CONCURRENT_LIMIT, DAY_PROBE_INTERVAL

MINUTE = timedelta(minutes=1)


class DayBudgetSpent(Exception):
    """The day's calls are down to the reserve; only urgent work may run."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__("Xero day limit reached (only the urgent reserve is left)")
        self.retry_after = retry_after


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Ticket:
    """One admitted request: its admission order and time."""

    seq: int
    at: datetime


class RateBudget:
    """What one organisation may still spend, learned from Xero's response headers."""

    def __init__(self, tenant_id: str, *, reserve: int,
                 concurrent: int = CONCURRENT_LIMIT) -> None:
        self.tenant_id = tenant_id
        self.reserve = reserve
        #: Calls per rolling minute we let through, learned from the headers (see _learn);
        #: None until Xero has said anything.
        self.minute_cap: int | None = None
        self.minute_remaining: int | None = None
        self.day_remaining: int | None = None
        self.app_minute_remaining: int | None = None
        self._slots = threading.BoundedSemaphore(concurrent)
        self._lock = threading.Lock()
        self._sleeper = threading.Lock()
        self._seq = itertools.count(1)
        self._sent: deque[Ticket] = deque()  # admitted in the last minute
        self._ok: list[Ticket] = []  # ...and answered by Xero with something other than 429
        self._in_flight = 0
        self._observed = 0  # seq of the newest request whose headers were taken in
        self._paused_until: datetime | None = None
        self._day_recheck_at: datetime | None = None

    @contextmanager
    def slot(self, clock: Clock, *, urgent: bool = False) -> Iterator[Ticket]:
        """Hold one of the organisation's request slots for one HTTP request.

        Yields the request's ticket, to hand back to :meth:`observe` or :meth:`throttled`.
        """
        with self._slots:
            ticket = self._admit(clock, urgent)
            try:
                yield ticket
            finally:
                with self._lock:
                    self._in_flight -= 1

    def _admit(self, clock: Clock, urgent: bool) -> Ticket:
        while True:
            with self._lock:
                now = clock.now()
                if not urgent and self._day_spent(now):
                    left = (self._day_recheck_at - now).total_seconds() \
                        if self._day_recheck_at else None
                    raise DayBudgetSpent(left)
                wait = self._minute_wait(now)
                if wait <= 0:
                    ticket = Ticket(next(self._seq), now)
                    self._sent.append(ticket)
                    self._in_flight += 1
                    return ticket
            self.wait(wait, clock)

    def _day_spent(self, now: datetime) -> bool:
        # Requests still in flight will each take one call from what the headers said was left.
        if self.day_remaining is None or self.day_remaining - self._in_flight > self.reserve:
            return False
        if self._day_recheck_at is not None and now >= self._day_recheck_at:
            self._day_recheck_at = now + DAY_PROBE_INTERVAL  # this request is the probe
            return False
        return True

    def _prune(self, now: datetime) -> None:
        while self._sent and self._sent[0].at <= now - MINUTE:
            self._sent.popleft()
        self._ok = [t for t in self._ok if t.at > now - MINUTE]

    def _minute_wait(self, now: datetime) -> float:
        self._prune(now)
        wait = timedelta(0)
        if self._paused_until is not None and self._paused_until > now:
            wait = self._paused_until - now
        if self._sent and self.minute_cap is not None and len(self._sent) >= self.minute_cap:
            wait = max(wait, self._sent[0].at + MINUTE - now)
        return wait.total_seconds()

    def _learn(self, remaining: int) -> None:
        # Xero counted at least the calls it accepted from us this minute, so accepted + what is
        # left is a lower bound of the real limit; a bound never overshoots, so no 429 follows.
        bound = max(1, len(self._ok) + remaining)
        self.minute_cap = bound if self.minute_cap is None else max(self.minute_cap, bound)

    def observe(self, headers: Mapping[str, str], clock: Clock,
                ticket: Ticket | None = None) -> None:
        """Learn what is left from an accepted call's ``X-*Limit-Remaining`` headers."""
        minute = _int(headers, "X-MinLimit-Remaining")
        day = _int(headers, "X-DayLimit-Remaining")
        app = _int(headers, "X-AppMinLimit-Remaining")
        with self._lock:
            now = clock.now()
            self._prune(now)
            if ticket is not None and ticket.at > now - MINUTE:
                self._ok.append(ticket)
            if minute == 0 or app == 0:
                free_at = self._sent[0].at + MINUTE if self._sent and app != 0 else now + MINUTE
                self._pause(free_at)
            if day is not None and self._day_moved(day):
                self.day_remaining = day
                if day > self.reserve:
                    self._day_recheck_at = None
                elif self._day_recheck_at is None or self._day_recheck_at <= now:
                    self._day_recheck_at = now + DAY_PROBE_INTERVAL
            if ticket is not None:
                if ticket.seq < self._observed:
                    return  # overtaken by a newer response: its counts are the current ones
                self._observed = ticket.seq
            if minute is not None:
                self.minute_remaining = minute
                self._learn(minute)
            if app is not None:
                self.app_minute_remaining = app

    def _day_moved(self, day: int) -> bool:
        # Within a day the count only grows. Concurrent calls can reach Xero in another order
        # than ours, so a slightly higher figure is an overtaken answer; a jump is a new day.
        return (self.day_remaining is None or day < self.day_remaining
                or day > self.day_remaining + CONCURRENT_LIMIT)

    def throttled(self, problem: str | None, retry_after: float | None, clock: Clock,
                  ticket: Ticket | None = None) -> None:
        """Record a 429: pause the organisation (minute) or close the day until it resets."""
        with self._lock:
            now = clock.now()
            if ticket is not None and ticket in self._sent:
                self._sent.remove(ticket)  # a refused call uses up no allowance
            until = now + timedelta(seconds=retry_after if retry_after is not None else 60)
            if problem and "day" in problem:
                self.day_remaining = 0
                self._day_recheck_at = until if retry_after is not None \
                    else now + DAY_PROBE_INTERVAL
                return
            if problem and "minute" in problem and "app" not in problem:
                # Someone else shares the limit (or it shrank): only what Xero accepted from us
                # this minute is known to fit; _learn raises the cap again as headers allow.
                self._prune(now)
                accepted = max(1, len(self._ok))
                self.minute_cap = min(self.minute_cap or accepted, accepted)
            self._pause(until)

    def _pause(self, until: datetime) -> None:
        if self._paused_until is None or until > self._paused_until:
            self._paused_until = until

    def wait(self, seconds: float, clock: Clock) -> None:
        """Sleep until ``seconds`` from now; concurrent waiters share one sleep."""
        target = clock.now() + timedelta(seconds=seconds)
        with self._sleeper:
            left = (target - clock.now()).total_seconds()
            if left > 0:
                clock.sleep(left)


_budgets: dict[str, RateBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(tenant_id: str, *, reserve: int) -> RateBudget:
    """The process-wide budget of ``tenant_id`` (created on first use)."""
    with _budgets_lock:
        budget = _budgets.get(tenant_id)
        if budget is None:
            budget = _budgets[tenant_id] = RateBudget(tenant_id, reserve=reserve)
        budget.reserve = reserve
        return budget


def reset_budgets() -> None:
    """Forget every organisation's budget (tests, or after the clock jumps)."""
    with _budgets_lock:
        _budgets.clear()
