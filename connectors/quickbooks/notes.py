"""Dunning notes on QuickBooks invoices: a managed block in ``PrivateNote``, written in batches.

Why a PrivateNote block and not an Attachable note
--------------------------------------------------
QuickBooks offers two places for a note about an invoice:

* an **Attachable** with a ``Note`` and an ``AttachableRef`` to the invoice: append-only like an
  audit trail, creating it leaves the invoice's SyncToken alone, so it can never conflict with a
  person's edit (no 5010) and never comes back through CDC as an invoice change (no echo);
* the invoice's **PrivateNote** ("Statement memo", never shown to the customer): it sits on the
  invoice form the bookkeeper already has open, shows in invoice lists and exports, and travels
  with the invoice into every report; but it holds 4000 characters shared with whatever a person
  typed, and writing it bumps the SyncToken (echo, and 5010 when someone edits concurrently).

arsync's notes exist so the person chasing an invoice sees, *on the invoice*, what arsync already
did ("reminder sent 13 Nov, escalated 20 Nov") and does not phone a customer who promised to pay
yesterday. A note-only Attachable is filed under the invoice's attachments (shown, if at all,
as an attachment entry, not as text on the form; API_FACTS §10 lists its visibility and length
as unconfirmed), so it fails that purpose. The complete, append-only history already lives in
arsync's own ledger; QuickBooks only needs the recent lines. So we write a **managed block** in
PrivateNote and pay its costs explicitly:

1. the person's text is kept byte for byte; only the block between ``--- arsync ---`` and
   ``--- end arsync ---`` is rewritten, newest line first, oldest lines rolled off to fit 4000
   (``note_block.py``);
2. every write is a hand-built sparse update ``{"Id", "SyncToken", "sparse": true,
   "PrivateNote"}`` (python-quickbooks' objects serialise defaults that would overwrite fields,
   API_FACTS §0.3), up to 30 per batch request, read first with one ``Id IN (...)`` query;
3. a 5010 on an item (someone saved the invoice between our read and our write) re-reads that
   invoice and merges again, a bounded number of times;
4. each line carries a tag derived from the note id, so a note already present is never written
   again, and each batch carries a ``requestid`` derived from its body, so a retried request
   whose answer was lost is replayed, not applied twice;
5. the echo of our own write is recognisable: :func:`is_own_echo` compares the person's parts
   of two PrivateNotes, and each result carries the SyncToken our write produced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from quickbooks import QuickBooks
from quickbooks import exceptions as qbx

from arsync.clock import Clock
from arsync.errors import AuthError, ConnectorError
from connectors.notes import NoteRequest, NoteResult
from connectors.quickbooks import mapping
from connectors.quickbooks.note_block import compose, is_own_echo
from connectors.retry import RetryPolicy, call_with_retries

__all__ = ["QuickBooksNotes", "is_own_echo"]

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_MAX_ITEMS = 30
#: Invoices read per ``Id IN (...)`` query, then written in batches of 30. Small enough that the
#: read is still fresh when the last batch goes (fewer 5010s), large enough that reads (metered
#: by Intuit, unlike writes) stay a tenth of the writes.
READ_CHUNK = 300
MAX_CONFLICT_ROUNDS = 3
#: Intuit's limits per realm: 500 requests/min, 40 batch requests/min (API_FACTS §4).
REQUESTS_PER_MINUTE = 500
BATCH_PER_MINUTE = 40
NOT_FOUND = 610


class _Pacer:
    """Waits (on the injected clock) before a request would exceed ``per_minute``."""

    def __init__(self, clock: Clock, per_minute: int) -> None:
        self._clock = clock
        self._limit = per_minute
        self._sent: deque[float] = deque()

    def wait(self) -> None:
        now = self._clock.now().timestamp()
        while self._sent and self._sent[0] <= now - 60:
            self._sent.popleft()
        if len(self._sent) >= self._limit:
            # Waiting costs nothing; a 429 costs a request and, per Intuit, a minute's pause.
            self._clock.sleep(self._sent[0] + 60 - now + 0.01)
            now = self._clock.now().timestamp()
            while self._sent and self._sent[0] <= now - 60:
                self._sent.popleft()
        self._sent.append(now)


class QuickBooksNotes:
    """Writes :class:`NoteRequest` s into invoices' PrivateNote blocks (one writer per thread)."""

    def __init__(self, qb: QuickBooks, *, clock: Clock, retry: RetryPolicy | None = None,
                 read_chunk: int = READ_CHUNK, max_conflicts: int = MAX_CONFLICT_ROUNDS,
                 requests_per_minute: int = REQUESTS_PER_MINUTE,
                 batch_per_minute: int = BATCH_PER_MINUTE) -> None:
        self._qb = qb
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._read_chunk = max(1, min(read_chunk, 1000))  # 1000: the query's MAXRESULTS cap
        self._max_conflicts = max_conflicts
        self._all = _Pacer(clock, requests_per_minute)
        self._batches = _Pacer(clock, batch_per_minute)

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], what: str, *, batch: bool) -> T:
        def attempt() -> T:
            self._all.wait()
            if batch:
                self._batches.wait()
            try:
                return fn()
            except qbx.QuickbooksException as exc:
                raise mapping.map_sdk_error(exc) from exc

        return call_with_retries(attempt, policy=self._retry, sleep=self._clock.sleep, what=what)

    def _read(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """Current Invoice objects by Id (deleted ones, and ids that are not ids, are absent)."""
        # QuickBooks Ids are digits; anything else cannot exist and must not reach the query.
        quoted = ",".join(f"'{i}'" for i in ids if i.isdigit() and i.isascii())
        if not quoted:
            return {}
        query = f"SELECT * FROM Invoice WHERE Id IN ({quoted}) MAXRESULTS 1000"  # noqa: S608
        resp = self._call(lambda: self._qb.query(query), "QuickBooks invoice read", batch=False)
        rows = (resp.get("QueryResponse") or {}).get("Invoice") or []
        return {str(r["Id"]): r for r in rows if isinstance(r, Mapping) and r.get("Id")}

    def _send(self, updates: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """One batch of sparse updates; returns each item's answer by invoice Id."""
        body = json.dumps({"BatchItemRequest": [
            {"bId": u["Id"], "operation": "update", "Invoice": u} for u in updates]})
        # Same body, same requestid: a retry after a lost answer is replayed by QuickBooks, and
        # a changed body (new SyncToken after a re-read) is a new request.
        request_id = str(uuid.UUID(bytes=hashlib.sha256(body.encode()).digest()[:16]))
        url = f"{self._qb.api_url}/company/{self._qb.company_id}/batch"
        resp = self._call(lambda: self._qb.post(url, body, request_id=request_id),
                          "QuickBooks note batch", batch=True)
        return {str(item.get("bId")): item for item in resp.get("BatchItemResponse") or []}

    # -- the NoteWriter interface ----------------------------------------------------------

    def write_notes(self, notes: Sequence[NoteRequest]) -> list[NoteResult]:
        """Write ``notes`` (see :class:`connectors.notes.NoteWriter`)."""
        by_invoice: dict[str, list[NoteRequest]] = {}
        seen: set[str] = set()
        for note in notes:
            if note.note_id not in seen:
                seen.add(note.note_id)
                by_invoice.setdefault(note.invoice_external_id, []).append(note)
        results: dict[str, NoteResult] = {}
        ids = list(by_invoice)
        for start in range(0, len(ids), self._read_chunk):
            try:
                self._write_chunk(ids[start:start + self._read_chunk], by_invoice, results)
            except AuthError:
                raise
            except ConnectorError as exc:
                # The request itself failed after its retries: leave the rest for a later run.
                log.warning("QuickBooks notes stopped after %d of %d invoices: %s", start,
                            len(ids), exc)
                for inv_id in ids[start:]:
                    for note in by_invoice[inv_id]:
                        results.setdefault(note.note_id, NoteResult(
                            note.note_id, ok=False, retryable=exc.retryable, error=str(exc)))
                break
        return [results[n.note_id] for n in notes]

    def _write_chunk(self, ids: Sequence[str], by_invoice: Mapping[str, list[NoteRequest]],
                     results: dict[str, NoteResult]) -> None:
        pending = list(ids)
        for _round in range(self._max_conflicts + 1):
            found = self._read(pending)
            updates: list[dict[str, Any]] = []
            for inv_id in pending:
                update = self._plan(inv_id, found.get(inv_id), by_invoice[inv_id], results)
                if update is not None:
                    updates.append(update)
            conflicted: list[str] = []
            for start in range(0, len(updates), BATCH_MAX_ITEMS):
                group = updates[start:start + BATCH_MAX_ITEMS]
                answers = self._send(group)
                for update in group:
                    inv_id = update["Id"]
                    if self._settle(inv_id, answers.get(inv_id), by_invoice[inv_id], results):
                        conflicted.append(inv_id)
            if not conflicted:
                return
            log.info("QuickBooks 5010 on %d invoices; re-reading them", len(conflicted))
            pending = conflicted
        for inv_id in pending:
            self._fail(by_invoice[inv_id], results, retryable=True,
                       error=f"invoice {inv_id} kept changing under us (5010 "
                             f"{self._max_conflicts + 1} times)",
                       only=lambda n: n.note_id not in results)

    @staticmethod
    def _fail(notes: Sequence[NoteRequest], results: dict[str, NoteResult], *, retryable: bool,
              error: str, only: Callable[[NoteRequest], bool] = lambda n: True) -> None:
        for note in notes:
            if only(note):
                results[note.note_id] = NoteResult(note.note_id, ok=False, retryable=retryable,
                                                   error=error)

    def _plan(self, inv_id: str, invoice: Mapping[str, Any] | None,
              notes: Sequence[NoteRequest], results: dict[str, NoteResult]
              ) -> dict[str, Any] | None:
        """The sparse update that adds the missing notes to one invoice (None: nothing to do)."""
        for note in notes:  # a re-read after 5010 decides afresh
            results.pop(note.note_id, None)
        if invoice is None:
            self._fail(notes, results, retryable=False,
                       error=f"invoice {inv_id} is not in QuickBooks (deleted)")
            return None
        version = str(invoice.get("SyncToken"))
        newest_first = sorted(notes, key=lambda n: n.written_at, reverse=True)
        composed = compose(invoice.get("PrivateNote"), [
            (n.note_id, n.written_at.date().isoformat(), n.text) for n in newest_first])
        for note in notes:
            if note.note_id in composed.present:
                # Nothing written now, so no echo to recognise: no version (the SyncToken we
                # read may be a person's edit, which the sync must not mistake for our echo).
                results[note.note_id] = NoteResult(note.note_id, ok=True)
        self._fail(notes, results, retryable=False,
                   error=f"no room left in invoice {inv_id}'s PrivateNote beside a person's text",
                   only=lambda n: n.note_id in composed.no_room)
        if composed.text is None:
            return None
        # Hand-built on purpose: only these four keys, so no other field can be touched.
        return {"Id": inv_id, "SyncToken": version, "sparse": True,
                "PrivateNote": composed.text}

    @staticmethod
    def _settle(inv_id: str, answer: Mapping[str, Any] | None, notes: Sequence[NoteRequest],
                results: dict[str, NoteResult]) -> bool:
        """Record one batch item's outcome for the notes it carried; True means 5010 (re-read)."""
        waiting = [n for n in notes if n.note_id not in results]
        if answer is None:
            QuickBooksNotes._fail(waiting, results, retryable=True,
                                  error=f"QuickBooks batch answer lacks invoice {inv_id}")
            return False
        fault = answer.get("Fault")
        if not fault:
            version = (answer.get("Invoice") or {}).get("SyncToken")
            for note in waiting:
                results[note.note_id] = NoteResult(note.note_id, ok=True,
                                                   remote_version=str(version))
            return False
        codes = mapping.fault_codes(fault) or [0]
        if mapping.STALE_OBJECT in codes:
            return True
        err = (fault.get("Error") or [{}])[0]
        if NOT_FOUND in codes:
            QuickBooksNotes._fail(waiting, results, retryable=False,
                                  error=f"invoice {inv_id} is not in QuickBooks (deleted)")
            return False
        mapped = mapping.map_sdk_error(qbx.QuickbooksException(
            err.get("Message", "batch item fault"), codes[0], err.get("Detail", "")))
        if isinstance(mapped, AuthError):
            raise mapped
        QuickBooksNotes._fail(waiting, results, retryable=mapped.retryable, error=str(mapped))
        return False
