"""Company-local calendar: time zone, business days, public holidays and the send window.

Every "which day is it" question in the rules is answered here, in the company's time zone, so
that a run at 23:30 UTC and one at 00:30 UTC agree on the local day and DST changes neither shift
nor duplicate a send. Holiday tables and zones are cached: evaluation stays cheap per call.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from holidays.registry import EntityLoader

from rules._tables import tables
from rules.views import CompanyContext, RuleInputError

if TYPE_CHECKING:
    from rules.policy import Policy, SendWindow

_ONE_DAY = dt.timedelta(days=1)
# Far more than any real run of weekends and holidays; guards against a calendar with no send day.
_MAX_SCAN_DAYS = 400


@functools.lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (cached); unknown names raise :class:`RuleInputError`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleInputError(f"unknown IANA time zone {name!r}") from None


@functools.lru_cache(maxsize=1)
def _country_codes() -> frozenset[str]:
    # The keys of ``holidays.list_supported_countries()`` (aliases included), read from the
    # registry: that function imports every country's module, about a second per process.
    return frozenset(EntityLoader.get_country_codes(include_aliases=True))


@functools.lru_cache(maxsize=1024)
def _subdivisions(country: str) -> tuple[str, ...] | None:
    """The subdivision codes of a supported holiday country (None: not supported); only that
    country's module is imported."""
    if country not in _country_codes():
        return None
    return tuple(getattr(holidays, country).subdivisions)


@functools.lru_cache(maxsize=512)
def holidays_for(country: str, subdivision: str | None, year: int) -> Mapping[dt.date, str]:
    """Public holidays of ``country`` (and ``subdivision``) in ``year``, cached per key."""
    table = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return MappingProxyType(dict(table.items()))


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """The company's working calendar; hashable so that date arithmetic can be memoised."""

    timezone: str
    country: str | None
    subdivision: str | None
    weekdays: frozenset[int]
    skip_holidays: bool

    @classmethod
    def for_company(cls, policy: Policy, company: CompanyContext) -> BusinessCalendar:
        """Build the calendar from the policy's rules and the company's place.

        Raises:
            RuleInputError: no time zone at all, an unknown zone, or an unknown holiday country.
        """
        # Every customer's evaluation asks this; the answer depends only on the policy object
        # (frozen, and held by the memo so its id stays its own) and the company's place.
        key = (id(policy), company)
        hit = _FOR_COMPANY.get(key)
        if hit is not None and hit[0] is policy:
            return hit[1]
        calendar = cls._build(policy, company)
        if len(_FOR_COMPANY) >= 1024:
            _FOR_COMPANY.clear()
        _FOR_COMPANY[key] = (policy, calendar)
        return calendar

    @classmethod
    def _build(cls, policy: Policy, company: CompanyContext) -> BusinessCalendar:
        tz_name = company.timezone or policy.timezone_default
        if not tz_name:
            raise RuleInputError("the company has no time zone and the policy no timezone_default")
        zone(tz_name)
        country = company.country.upper() if company.country else None
        if policy.skip_holidays and country is not None:
            subdivs = _subdivisions(country)
            if subdivs is None:
                raise RuleInputError(f"no public holiday calendar for country {country!r}")
            if company.subdivision is not None and company.subdivision not in subdivs:
                raise RuleInputError(f"unknown subdivision {company.subdivision!r} of {country}")
        return cls(
            tz_name, country, company.subdivision, tables(policy).weekdays, policy.skip_holidays
        )

    @property
    def tz(self) -> ZoneInfo:
        """The company's zone."""
        return zone(self.timezone)

    def holiday(self, day: dt.date) -> str | None:
        """The name of the public holiday on ``day`` if holidays are skipped, else None."""
        if not self.skip_holidays or self.country is None:
            return None
        return holidays_for(self.country, self.subdivision, day.year).get(day)

    def is_send_day(self, day: dt.date) -> bool:
        """A business day that is not a (skipped) public holiday."""
        return day.weekday() in self.weekdays and self.holiday(day) is None

    def next_send_day(self, day: dt.date) -> dt.date:
        """``day`` itself if it is a send day, else the first send day after it."""
        for _ in range(_MAX_SCAN_DAYS):
            if self.is_send_day(day):
                return day
            day += _ONE_DAY
        raise RuleInputError("the calendar has no send day within a year")

    def shift(
        self, day: dt.date, days: int, unit: Literal["calendar_days", "business_days"]
    ) -> dt.date:
        """``day`` moved by ``days`` calendar or business days (negative moves back)."""
        if unit == "calendar_days":
            return day + dt.timedelta(days=days)
        return _shift_business(self, day, days)

    def local_date(self, moment: dt.datetime) -> dt.date:
        """The company-local date of an aware instant."""
        return moment.astimezone(self.tz).date()

    def at(self, day: dt.date, time: dt.time) -> dt.datetime:
        """The instant (in UTC) of local wall time ``time`` on ``day``.

        A wall time skipped by a spring-forward change moves forward by the gap (02:30 becomes
        03:30); an ambiguous one in a fall-back change means its first occurrence (``fold=0``).
        UTC because Python never finds an ambiguous local time equal to any other zone's time.
        """
        return dt.datetime.combine(day, time, tzinfo=self.tz).astimezone(dt.UTC)

    def slot(self, now: dt.datetime, window: SendWindow) -> tuple[dt.date, dt.datetime]:
        """The next send opportunity at or after ``now``: ``(local date, moment)``.

        ``now`` itself when it falls inside the window on a send day, else the next window opening;
        the moment is in UTC.
        """
        day = self.local_date(now)
        if self.is_send_day(day):
            opens, closes = self.at(day, window.start), self.at(day, window.end)
            if now < opens:
                return day, opens
            if now < closes:
                return day, now.astimezone(dt.UTC)
        day = self.next_send_day(day + _ONE_DAY)
        return day, self.at(day, window.start)


_FOR_COMPANY: dict[tuple[int, CompanyContext], tuple[Policy, BusinessCalendar]] = {}


@functools.lru_cache(maxsize=65536)
def _shift_business(cal: BusinessCalendar, day: dt.date, days: int) -> dt.date:
    # Counting one day at a time is simple and exact around holidays; the cache makes the many
    # invoices that share a due date cost one walk.
    step = _ONE_DAY if days >= 0 else -_ONE_DAY
    remaining = abs(days)
    scanned = 0
    while remaining:
        day += step
        scanned += 1
        if cal.is_send_day(day):
            remaining -= 1
        elif scanned > _MAX_SCAN_DAYS * 20:
            raise RuleInputError("the calendar has too few business days to count on")
    return day
