"""Dunning notes on Xero invoices: one History note per invoice, paced by the rate budget.

Xero has no batch for notes and they are append-only (no edit, no delete), so "never twice"
rests on two guards:

1. every PUT carries an ``Idempotency-Key`` derived from the note's queue key: a retry after a
   lost answer is replayed by Xero, not written again (Xero keeps keys for minutes only);
2. a note whose earlier attempt may have landed (the queue knows: it was claimed before) is
   first looked for in the invoice's History (same text, ``Changes == "Note"``) — which covers a
   worker that crashed between the write and the mark and came back after the key expired.
   It costs one read per retried note, and retries are rare.

Pacing: every call goes through the organisation's :class:`~connectors.xero.budget.RateBudget`
(5 in flight, the learned minute cap, Retry-After). Promise and dispute notes are ``urgent``:
few, entered by a person, and what stops a colleague from phoning a customer who promised to pay
yesterday, so they may spend the day reserve. Bulk notes (sent, escalated, cancelled, plans) are
not, and they also stop while fewer than ``sync_share`` calls are left above the reserve, so a
queue of thousands never starves the sync (which keeps the mirror, and so every send, correct);
each later drain lets one note through as a probe, since only an answer tells that the day reset.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from xero_python.accounting import HistoryRecord, HistoryRecords

from arsync.errors import AuthError, ConnectorError, RateLimitedError
from connectors.notes import NoteRequest, NoteResult
from connectors.xero.budget import RateBudget
from connectors.xero.connector import XeroConnector
from connectors.xero.settings import DAY_PROBE_INTERVAL

__all__ = ["NOTE_MAX", "XeroNotes", "idempotency_key"]

log = logging.getLogger(__name__)

#: Xero's History ``Details`` limit (API_FACTS §0.8: design for 250).
NOTE_MAX = 250
#: Day calls kept free for the sync above the reserve (a full sync of a large organisation
#: needs a few hundred pages).
SYNC_SHARE = 500
URGENT_KINDS = frozenset({"promise", "dispute"})


def idempotency_key(tenant_id: str, note_id: str) -> str:
    """A stable key (≤ 128 chars) for one note on one organisation."""
    digest = hashlib.sha256(f"{tenant_id}\n{note_id}".encode()).hexdigest()
    return f"arsync-note-{digest[:48]}"


def clip(text: str) -> str:
    """One line of at most NOTE_MAX characters (render already clips; this is the last guard)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= NOTE_MAX else flat[:NOTE_MAX - 1].rstrip() + "…"


@dataclass
class Deferral:
    """Why the writer stopped early, and how long to wait (seconds; None: unknown)."""

    reason: str
    retry_after: float | None


class XeroNotes:
    """Writes :class:`NoteRequest` s as History notes on one organisation's invoices."""

    def __init__(self, connector: XeroConnector, budget: RateBudget, *,
                 sync_share: int = SYNC_SHARE) -> None:
        self._connector = connector
        self._budget = budget
        self._sync_share = sync_share
        #: Set when a call to write_notes stopped early (day budget), for the queue's next try.
        self.deferred: Deferral | None = None
        #: Note ids of the last call that were never sent (their try does not count).
        self.unsent: set[str] = set()

    def _left_for_bulk(self) -> bool:
        day = self._budget.day_remaining
        return day is None or day - self._budget.reserve > self._sync_share

    def write_notes(self, notes: Sequence[NoteRequest], *, kinds: dict[str, str] | None = None,
                    maybe_written: Collection[str] = ()) -> list[NoteResult]:
        """Write ``notes`` one call each (see :class:`connectors.notes.NoteWriter`).

        ``kinds`` maps note ids to their kind (urgent ones may spend the reserve);
        ``maybe_written`` names notes an earlier attempt may have written (History is checked).
        """
        self.deferred = None
        self.unsent = set()
        kinds = kinds or {}
        results: dict[str, NoteResult] = {}
        probed = False
        for i, note in enumerate(notes):
            if note.note_id in results:
                continue
            urgent = kinds.get(note.note_id) in URGENT_KINDS
            if not urgent and not self._left_for_bulk():
                if probed:
                    self.deferred = Deferral("Xero day budget kept for the sync",
                                             DAY_PROBE_INTERVAL.total_seconds())
                # What is left is only learned from answers: one note per call of this method
                # goes ahead as the probe (the day may have reset since the last answer).
                probed = True
            if self.deferred is None:
                try:
                    results[note.note_id] = self._write_one(
                        note, urgent=urgent, check=note.note_id in maybe_written)
                    continue
                except AuthError:
                    raise
                except RateLimitedError as exc:  # the day is spent (minute 429s are retried)
                    self.deferred = Deferral(str(exc), exc.retry_after)
                except ConnectorError as exc:
                    if not exc.retryable:
                        raise  # a per-note permanent error is returned by _write_one
                    # Xero is down after the connector's retries: stop, the queue retries later.
                    self.deferred = Deferral(str(exc), None)
            self.unsent = {n.note_id for n in notes[i + 1:] if n.note_id not in results}
            if self.deferred is not None and self.deferred.reason.startswith("Xero day budget"):
                self.unsent.add(note.note_id)  # refused before sending
            for rest in notes[i:]:
                results.setdefault(rest.note_id, NoteResult(
                    rest.note_id, ok=False, retryable=True,
                    error=self.deferred.reason if self.deferred else "deferred"))
            break
        return [results[n.note_id] for n in notes]

    def _write_one(self, note: NoteRequest, *, urgent: bool, check: bool) -> NoteResult:
        text = clip(note.text)
        try:
            if check and self._already_there(note.invoice_external_id, text, urgent):
                return NoteResult(note.note_id, ok=True, remote_version="found in History")
            body = HistoryRecords(history_records=[HistoryRecord(details=text)])
            reply: Any = self._connector.request_json(
                "create_invoice_history", urgent=urgent, invoice_id=note.invoice_external_id,
                history_records=body,
                idempotency_key=idempotency_key(self._connector.tenant_id, note.note_id))
        except ConnectorError as exc:
            if isinstance(exc, (AuthError, RateLimitedError)) or exc.retryable:
                raise
            # 404 (deleted or unknown invoice), 400 (validation): never going to work.
            return NoteResult(note.note_id, ok=False, retryable=False, error=str(exc))
        records = (reply or {}).get("HistoryRecords") or [{}]
        return NoteResult(note.note_id, ok=True,
                          remote_version=str(records[0].get("DateUTCString") or "") or None)

    def _already_there(self, invoice_id: str, text: str, urgent: bool) -> bool:
        reply: Any = self._connector.request_json("get_invoice_history", urgent=urgent,
                                                  invoice_id=invoice_id)
        return any(r.get("Changes") == "Note" and r.get("Details") == text
                   for r in (reply or {}).get("HistoryRecords") or [])
