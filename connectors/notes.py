"""Provider-neutral notes on invoices: what arsync asks a connector to write, and what happened.

A note records one dunning action (sent, escalated, promise, dispute, plan, cancelled) on one
invoice. The outbox hands a connector a batch of :class:`NoteRequest` s and gets one
:class:`NoteResult` per request back; how the note lands (QuickBooks ``PrivateNote`` block, Xero
History) is the connector's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class NoteRequest:
    """One note to put on one invoice."""

    #: Stable id from arsync's durable queue; a connector never writes the same id twice on an
    #: invoice, so a retry after an unknown outcome is harmless.
    note_id: str
    invoice_external_id: str
    text: str
    #: When arsync took the action (aware); its date is shown with the note.
    written_at: datetime


@dataclass(frozen=True)
class NoteResult:
    """The outcome of one :class:`NoteRequest`."""

    note_id: str
    ok: bool
    #: For a failure: may the same request succeed later (throttling, conflicts, outages)?
    retryable: bool = False
    error: str | None = None
    #: The invoice's version after the write (QuickBooks SyncToken), so the mirror can tell the
    #: echo of this write from a person's edit; None when the provider has no such version.
    remote_version: str | None = None


class NoteWriter(Protocol):
    """Something that can write notes on a connected company's invoices."""

    def write_notes(self, notes: Sequence[NoteRequest]) -> list[NoteResult]:
        """Write ``notes``; returns one result per request, in the same order.

        Notes already present (same ``note_id``) count as written. Per-note failures are
        reported in the results, never raised.

        Raises:
            AuthError: the grant is dead; no note can be written until a person reconnects.
        """
        ...
