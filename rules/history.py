"""An index over a customer's past actions, built once per evaluation (linear in the history).

It answers the questions the ladder asks: how far has this invoice already escalated (the
*floor*), how often did a stage fire, was anything sent since a date, how many messages and tasks
went out on a local day.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

from rules._tables import tables
from rules.policy import Policy
from rules.views import (
    ATTEMPT_STATUSES,
    COVERING_STATUSES,
    DAILY_STATUSES,
    ActionRecord,
    CoveredItem,
)

Track = Literal["message", "task"]
# Ladder key: None for the due-date ladder (promise stages share it), the instalment's date for
# an instalment ladder. A legacy record without anchor dates applies to every ladder.
LadderKey = dt.date | None
_ANY = "any"


class HistoryIndex:
    """Read-only lookups over :class:`ActionRecord` s for one customer under one policy."""

    def __init__(self, records: Iterable[ActionRecord], policy: Policy) -> None:
        self._floor: dict[tuple[str, Track, LadderKey | str], int] = {}
        # Attempts are counted in distinct local days: the email and SMS legs of one message,
        # or a retried insert of one action, are a single attempt.
        self._attempts: dict[tuple[str, Track, str, dt.date | None], set[dt.date]] = defaultdict(
            set
        )
        self._last_message: dict[str, dt.date] = {}
        self._tried: set[tuple[str, Track]] = set()
        self._daily: dict[tuple[Track, dt.date], set[tuple[str, tuple[str, ...]]]] = defaultdict(
            set
        )
        for record in records:
            self._add(record, policy)
        self._exhaust(policy)

    def _add(self, record: ActionRecord, policy: Policy) -> None:
        track = record.track
        if record.status in DAILY_STATUSES:
            # Several channels of one message (email + sms) are one contact, not two.
            ids = tuple(sorted(record.invoice_external_ids))
            self._daily[(track, record.local_date)].add((record.stage_id, ids))
        covering = record.status in COVERING_STATUSES
        attempt = record.status in ATTEMPT_STATUSES
        severities = tables(policy).severity
        for item, anchor_date in _items(record, policy):
            severity = severities.get(item.stage_id)
            if severity is None:
                continue  # a stage removed from the policy: its history no longer orders anything
            if covering:
                self._raise_floor(
                    item.invoice_external_id, track, item.anchor, anchor_date, severity
                )
            if attempt:
                key = (item.invoice_external_id, track, item.stage_id, anchor_date)
                self._attempts[key].add(record.local_date)
                self._tried.add((item.invoice_external_id, track))
            if (covering or attempt) and track == "message":
                inv = item.invoice_external_id
                last = self._last_message.get(inv)
                if last is None or record.local_date > last:
                    self._last_message[inv] = record.local_date

    def _raise_floor(
        self, invoice_id: str, track: Track, anchor: str, anchor_date: dt.date | None, severity: int
    ) -> None:
        ladder: LadderKey | str = None
        if anchor == "instalment_date":
            ladder = anchor_date if anchor_date is not None else _ANY
        key = (invoice_id, track, ladder)
        self._floor[key] = max(severity, self._floor.get(key, severity))

    def _exhaust(self, policy: Policy) -> None:
        # A stage that used up its attempts without getting through counts as done too:
        # otherwise a lesser stage would be sent in its place, de-escalating.
        table = tables(policy)
        for (invoice_id, track, stage_id, anchor_date), dates in self._attempts.items():
            stage = table.stages.get(stage_id)
            severity = table.severity.get(stage_id)
            if stage is None or severity is None:
                continue
            if len(dates) >= stage.conditions.max_attempts:
                self._raise_floor(invoice_id, track, stage.anchor, anchor_date, severity)

    def floor(self, invoice_id: str, track: Track, ladder: LadderKey) -> int | None:
        """Highest severity already covered on this ladder (None if nothing was)."""
        floors = self._floor
        if not floors:
            return None
        own = floors.get((invoice_id, track, ladder))
        anyl = floors.get((invoice_id, track, _ANY))
        if own is None or anyl is None:
            return anyl if own is None else own
        return max(own, anyl)

    def has_attempts(self, invoice_id: str, track: Track) -> bool:
        """Whether any stage was tried for this invoice on this track (else attempts are 0)."""
        return (invoice_id, track) in self._tried

    def attempts(self, invoice_id: str, track: Track, stage_id: str, anchor_date: dt.date) -> int:
        """On how many local days ``stage_id`` was tried for this invoice and anchor date."""
        dates = self._attempts.get((invoice_id, track, stage_id, anchor_date), set())
        legacy = self._attempts.get((invoice_id, track, stage_id, None), set())
        return len(dates | legacy)

    def last_message_date(self, invoice_id: str) -> dt.date | None:
        """Local date of the latest message that covered this invoice."""
        return self._last_message.get(invoice_id)

    def contacts_on(self, track: Track, day: dt.date) -> int:
        """Distinct messages (or tasks) for this customer on a local day."""
        return len(self._daily.get((track, day), ()))


def _items(record: ActionRecord, policy: Policy) -> Iterable[tuple[CoveredItem, dt.date | None]]:
    if record.covered:
        return ((item, item.anchor_date) for item in record.covered)
    stage = tables(policy).stages.get(record.stage_id)
    anchor = stage.anchor if stage is not None else "due_date"
    # No per-invoice detail: read it conservatively, as covering every anchor date.
    fallback = dt.date.min
    return (
        (CoveredItem(inv, record.stage_id, anchor, fallback), None)
        for inv in record.invoice_external_ids
    )
