"""QuickBooks specifics: a person's PrivateNote text survives, and a person's edit between our
read and our write (5010 stale SyncToken) is re-read and merged, not lost."""

from __future__ import annotations

import threading

from arsync.notes_queue import drain_notes
from connectors.quickbooks.notes import QuickBooksNotes
from tests.writeback.conftest import REALM, World, add_action


def test_person_text_survives_and_block_is_appended(qbo: World) -> None:
    [a] = qbo.open_invoices(1)
    qbo.sandbox.edit_invoice(REALM, a, PrivateNote="Call Bob before the 15th re: discount")
    add_action(qbo, [a])
    report = drain_notes(qbo.ctx, qbo.clock.now(), qbo.cid)
    assert report.written == 1
    text = qbo.private_note(a)
    assert text.startswith("Call Bob before the 15th re: discount\n--- arsync ---\n")
    assert len(qbo.notes_on(a)) == 1


def test_edit_between_read_and_write_is_retried(qbo: World) -> None:
    """The sandbox's own 5010: a person saves the invoice after our read, before our batch."""
    [a] = qbo.open_invoices(1)
    add_action(qbo, [a])
    # The person's save is slipped in right after the real read; everything else is real HTTP.

    edited = threading.Event()
    original = QuickBooksNotes._read

    def read_then_person_edits(self: QuickBooksNotes, ids):  # type: ignore[no-untyped-def]
        found = original(self, ids)
        if not edited.is_set():
            edited.set()
            qbo.sandbox.edit_invoice(REALM, a, PrivateNote="Disputed by phone — Ann")
        return found

    QuickBooksNotes._read = read_then_person_edits  # type: ignore[method-assign]
    try:
        report = drain_notes(qbo.ctx, qbo.clock.now(), qbo.cid)
    finally:
        QuickBooksNotes._read = original  # type: ignore[method-assign]
    assert edited.is_set() and report.written == 1
    text = qbo.private_note(a)
    assert text.startswith("Disputed by phone — Ann\n--- arsync ---\n")
    assert len(qbo.notes_on(a)) == 1
