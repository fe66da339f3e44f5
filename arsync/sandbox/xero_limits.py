"""Xero's API rate limits, on the injected clock.

Per tenant: ``concurrent_limit`` calls in flight, ``minute_limit`` calls in any rolling 60 s and
``day_limit`` calls per day; per app: ``app_minute_limit`` calls in any rolling 60 s across all
tenants. The day is a fixed 24-hour window that starts at the tenant's first call and then
resets every 24 hours at that same time of day (Xero resets the day limit at a per-tenant time).

A call that is refused with 429 does not use up any allowance. Tenantless calls
(``/connections``) count only against the app minute limit. Every decision carries the
``X-*Limit-Remaining`` headers Xero sends, and a refusal carries ``Retry-After`` (whole seconds
until the window has room) and ``X-Rate-Limit-Problem`` (``concurrent``, ``minute``, ``day`` or
``appminute``; when several limits are hit, the one that frees last is reported, so that waiting
``Retry-After`` is always enough).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from arsync.clock import Clock

MINUTE = timedelta(seconds=60)
DAY = timedelta(days=1)


@dataclass
class Decision:
    allowed: bool
    headers: dict[str, str]
    problem: str | None = None
    retry_after: int | None = None


@dataclass
class _Tenant:
    in_flight: int = 0
    minute: deque[datetime] = field(default_factory=deque)
    day_start: datetime | None = None
    day_count: int = 0


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


class RateLimiter:
    """Counts calls and decides whether the next one is allowed (thread-safe)."""

    def __init__(self, clock: Clock, *, enabled: bool, day_limit: int, minute_limit: int,
                 concurrent_limit: int, app_minute_limit: int) -> None:
        self.clock = clock
        self.enabled = enabled
        self.day_limit = day_limit
        self.minute_limit = minute_limit
        self.concurrent_limit = concurrent_limit
        self.app_minute_limit = app_minute_limit
        self._tenants: dict[str, _Tenant] = {}
        self._app: deque[datetime] = deque()
        self._lock = threading.Lock()

    @staticmethod
    def _prune(window: deque[datetime], now: datetime) -> None:
        while window and window[0] <= now - MINUTE:
            window.popleft()

    def _roll_day(self, state: _Tenant, now: datetime) -> None:
        if state.day_start is None:
            return
        if now >= state.day_start + DAY:
            state.day_start += DAY * ((now - state.day_start) // DAY)
            state.day_count = 0

    def _headers(self, state: _Tenant | None) -> dict[str, str]:
        headers = {"X-AppMinLimit-Remaining": str(max(0, self.app_minute_limit - len(self._app)))}
        if state is not None:
            headers["X-DayLimit-Remaining"] = str(max(0, self.day_limit - state.day_count))
            headers["X-MinLimit-Remaining"] = str(max(0, self.minute_limit - len(state.minute)))
        return headers

    def _app_wait(self, now: datetime) -> int | None:
        excess = len(self._app) - self.app_minute_limit
        return None if excess < 0 else _seconds_until(self._app[excess] + MINUTE, now)

    def acquire(self, tenant_id: str) -> Decision:
        """Admit one call for ``tenant_id`` (then :meth:`release` it) or refuse it."""
        with self._lock:
            now = self.clock.now()
            state = self._tenants.setdefault(tenant_id, _Tenant())
            self._prune(state.minute, now)
            self._prune(self._app, now)
            self._roll_day(state, now)
            waits: dict[str, int] = {}
            if state.day_start is not None and state.day_count >= self.day_limit:
                waits["day"] = _seconds_until(state.day_start + DAY, now)
            app_wait = self._app_wait(now)
            if app_wait is not None:
                waits["appminute"] = app_wait
            excess = len(state.minute) - self.minute_limit
            if excess >= 0:
                waits["minute"] = _seconds_until(state.minute[excess] + MINUTE, now)
            if not waits and state.in_flight >= self.concurrent_limit:
                waits["concurrent"] = 1
            if waits and self.enabled:
                problem = max(waits, key=lambda k: waits[k])
                return Decision(False, self._headers(state), problem, waits[problem])
            state.in_flight += 1
            state.minute.append(now)
            self._app.append(now)
            if state.day_start is None:
                state.day_start = now
            state.day_count += 1
            return Decision(True, self._headers(state))

    def release(self, tenant_id: str) -> None:
        with self._lock:
            self._tenants[tenant_id].in_flight -= 1

    def app_call(self) -> Decision:
        """Admit one tenantless call (it counts against the app minute limit only)."""
        with self._lock:
            now = self.clock.now()
            self._prune(self._app, now)
            wait = self._app_wait(now)
            if wait is not None and self.enabled:
                return Decision(False, self._headers(None), "appminute", wait)
            self._app.append(now)
            return Decision(True, self._headers(None))

    def in_flight(self, tenant_id: str) -> int:
        with self._lock:
            state = self._tenants.get(tenant_id)
            return state.in_flight if state else 0
