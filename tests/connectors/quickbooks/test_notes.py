"""Dunning notes written into QuickBooks PrivateNote blocks, over real HTTP against the sandbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.notes import NoteRequest, NoteResult
from connectors.quickbooks import mapping
from connectors.quickbooks.connector import QuickBooksConnector
from connectors.quickbooks.note_block import END, MAX_UNITS, START, parse, tag_for, units
from connectors.quickbooks.notes import QuickBooksNotes, is_own_echo
from tests.connectors.quickbooks.conftest import REALM, QBOWorld

ACTIONS = ["sent", "escalated", "promise", "dispute", "plan", "cancelled"]
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def connector(world: QBOWorld) -> QuickBooksConnector:
    return world.ctx.connector_for(world.connect())  # type: ignore[return-value]


def editable(world: QBOWorld, n: int) -> list[str]:
    """Open invoices of active customers (QuickBooks refuses edits otherwise), Id order."""
    out = []
    for inv_id in world.sandbox.open_invoice_ids(REALM):
        inv = world.sandbox.get(REALM, "Invoice", inv_id)
        if world.sandbox.get(REALM, "Customer", inv["CustomerRef"]["value"]).get("Active", True):
            out.append(inv_id)
    assert len(out) >= n
    return out[:n]


def note(inv_id: str, action: str, when: datetime = T0, text: str | None = None) -> NoteRequest:
    return NoteRequest(f"{action}:{inv_id}:{when.isoformat()}", inv_id,
                       text or f"arsync: {action} for invoice {inv_id}.", when)


def private_note(world: QBOWorld, inv_id: str) -> str:
    return str(world.sandbox.get(REALM, "Invoice", inv_id).get("PrivateNote") or "")


def count_tag(text: str, note_id: str) -> int:
    return text.count(f"[ar:{tag_for(note_id)}]")


def calls(world: QBOWorld) -> tuple[int, int]:
    stats = world.sandbox.stats[REALM]
    return stats["query"], stats["batch"]


def test_notes_land_once_per_action_on_every_invoice(qbo: QBOWorld) -> None:
    qb = connector(qbo)
    ids = editable(qbo, 6)
    notes = [note(i, a, T0 + timedelta(hours=k)) for k, a in enumerate(ACTIONS) for i in ids]
    results = qb.write_notes(notes)
    assert [r.note_id for r in results] == [n.note_id for n in notes]
    assert all(r.ok for r in results), results
    for i in ids:
        text = private_note(qbo, i)
        for n in notes:
            assert count_tag(text, n.note_id) == (1 if n.invoice_external_id == i else 0)
        assert all(r.remote_version == qbo.sandbox.get(REALM, "Invoice", i)["SyncToken"]
                   for r, n in zip(results, notes, strict=True) if n.invoice_external_id == i)
        lines = parse(text).lines
        assert "cancelled" in lines[0] and "sent" in lines[-1]  # newest first
    before = {i: qbo.sandbox.get(REALM, "Invoice", i)["SyncToken"] for i in ids}
    queries, batches = calls(qbo)
    again = qb.write_notes(notes)  # a retry after an unknown outcome: nothing is written twice
    assert all(r.ok and r.remote_version is None for r in again)  # nothing written: no echo
    assert calls(qbo) == (queries + 1, batches)
    assert {i: qbo.sandbox.get(REALM, "Invoice", i)["SyncToken"] for i in ids} == before
    for i in ids:
        assert all(count_tag(private_note(qbo, i), n.note_id) <= 1 for n in notes)


def test_same_note_twice_in_one_call_is_written_once(qbo: QBOWorld) -> None:
    [inv] = editable(qbo, 1)
    n = note(inv, "sent")
    assert [r.ok for r in connector(qbo).write_notes([n, n])] == [True, True]
    assert count_tag(private_note(qbo, inv), n.note_id) == 1


@pytest.mark.parametrize("person", [
    "Call Bob before the 15th re: discount",
    "Zahlung zugesagt \u2013 Frau Müller ☎ 030/1234 🎉\nzweite Zeile\n",
    "  leading spaces and a trailing newline\n",
])
def test_a_persons_text_survives(qbo: QBOWorld, person: str) -> None:
    qb = connector(qbo)
    inv = editable(qbo, 1)[0]
    qbo.sandbox.edit_invoice(REALM, inv, PrivateNote=person)
    assert all(r.ok for r in qb.write_notes([note(inv, "sent")]))
    text = private_note(qbo, inv)
    assert text.startswith(person) and START in text and END in text
    assert parse(text).person_text() == person
    assert is_own_echo(person, text)
    # The person adds a line after our block; the next note keeps both of their texts.
    qbo.sandbox.edit_invoice(REALM, inv, PrivateNote=text + "\nPS: paid by cheque?")
    assert not is_own_echo(text, private_note(qbo, inv))
    assert all(r.ok for r in qb.write_notes([note(inv, "escalated", T0 + timedelta(days=1))]))
    final = private_note(qbo, inv)
    assert final.startswith(person) and final.endswith("\nPS: paid by cheque?")
    assert len(parse(final).lines) == 2


def test_near_the_limit_old_arsync_lines_roll_off_never_the_persons(qbo: QBOWorld) -> None:
    qb = connector(qbo)
    inv = editable(qbo, 1)[0]
    person = "Ü" * 3000 + " ✓ keep me"
    qbo.sandbox.edit_invoice(REALM, inv, PrivateNote=person)
    written = []
    for day in range(30):
        n = note(inv, "sent", T0 + timedelta(days=day), text="Reminder sent. " + "x" * 60)
        written.append(n)
        assert qb.write_notes([n])[0].ok
    text = private_note(qbo, inv)
    assert text.startswith(person) and units(text) <= MAX_UNITS
    assert count_tag(text, written[-1].note_id) == 1  # the newest is there
    assert count_tag(text, written[0].note_id) == 0  # the oldest rolled off
    kept = parse(text).lines
    assert 5 < len(kept) < 30 and kept[0].startswith((T0 + timedelta(days=29)).date().isoformat())


def test_no_room_beside_the_persons_text_is_a_permanent_failure(qbo: QBOWorld) -> None:
    inv = editable(qbo, 1)[0]
    person = "p" * (MAX_UNITS - 20)
    qbo.sandbox.edit_invoice(REALM, inv, PrivateNote=person)
    [result] = connector(qbo).write_notes([note(inv, "sent")])
    assert not result.ok and not result.retryable and "no room" in (result.error or "")
    assert private_note(qbo, inv) == person


class EditAfterRead(QuickBooksNotes):
    """A person saves the invoice right after arsync read it (once per invoice)."""

    def __init__(self, world: QBOWorld, qb: QuickBooksConnector, **kw: Any) -> None:
        super().__init__(qb._qb, clock=qb._clock, retry=qb._retry, **kw)
        self.world, self.edited = world, 0

    def _read(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        found = super()._read(ids)
        if self.edited == 0:
            for inv_id in ids:
                current = self.world.sandbox.get(REALM, "Invoice", inv_id).get("PrivateNote")
                self.world.sandbox.edit_invoice(REALM, inv_id, DueDate="2027-01-31",
                                                PrivateNote=f"{current or ''}\nAgreed: pay in Jan")
            self.edited += 1
        return found


def test_a_conflicting_edit_between_read_and_write_is_retried(qbo: QBOWorld) -> None:
    qb = connector(qbo)
    ids = editable(qbo, 3)
    writer = EditAfterRead(qbo, qb)
    queries, batches = calls(qbo)
    results = writer.write_notes([note(i, "promise") for i in ids])
    assert all(r.ok for r in results), results
    assert calls(qbo) == (queries + 2, batches + 2)  # read, 5010 on every item, re-read, write
    for i, r in zip(ids, results, strict=True):
        inv = qbo.sandbox.get(REALM, "Invoice", i)
        assert inv["DueDate"] == "2027-01-31" and "Agreed: pay in Jan" in inv["PrivateNote"]
        assert count_tag(inv["PrivateNote"], r.note_id) == 1
        assert r.remote_version == inv["SyncToken"]


def test_conflicts_are_bounded_and_retryable(qbo: QBOWorld) -> None:
    qb = connector(qbo)
    writer = EditAfterRead(qbo, qb, max_conflicts=0)
    [result] = writer.write_notes([note(editable(qbo, 1)[0], "dispute")])
    assert not result.ok and result.retryable and "5010" in (result.error or "")


def test_sixty_notes_take_two_batches_and_one_read(qbo: QBOWorld) -> None:
    ids = editable(qbo, 60)
    qb = connector(qbo)
    queries, batches = calls(qbo)
    api_calls = qbo.sandbox.stats[REALM]["api_calls"]
    results = qb.write_notes([note(i, "sent") for i in ids])
    assert all(r.ok for r in results)
    assert calls(qbo) == (queries + 1, batches + 2)
    assert qbo.sandbox.stats[REALM]["api_calls"] == api_calls + 3


def test_deleted_invoice_is_a_permanent_failure(qbo: QBOWorld) -> None:
    gone, kept = editable(qbo, 2)
    qbo.sandbox.delete_invoice(REALM, gone)
    bad, good = connector(qbo).write_notes([note(gone, "sent"), note(kept, "sent")])
    assert not bad.ok and not bad.retryable and "deleted" in (bad.error or "")
    assert good.ok


def test_invoice_deleted_between_read_and_write_is_a_permanent_failure(qbo: QBOWorld) -> None:
    inv = editable(qbo, 1)[0]

    class DeleteAfterRead(QuickBooksNotes):
        def _read(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
            found = super()._read(ids)
            qbo.sandbox.delete_invoice(REALM, inv)
            return found

    qb = connector(qbo)
    [result] = DeleteAfterRead(qb._qb, clock=qb._clock).write_notes([note(inv, "plan")])
    assert not result.ok and not result.retryable


def test_throttling_is_waited_out(qbo: QBOWorld) -> None:
    qb = connector(qbo)
    ids = editable(qbo, 2)
    qbo.sandbox.inject_faults(429, 2, realm_id=REALM)
    start = qbo.clock.now()
    assert all(r.ok for r in qb.write_notes([note(i, "sent") for i in ids]))
    assert qbo.clock.now() > start  # backed off, in simulated time
    assert all(count_tag(private_note(qbo, i), note(i, "sent").note_id) == 1 for i in ids)


def test_throttling_that_never_ends_leaves_notes_retryable(qbo: QBOWorld) -> None:
    qb = connector(qbo)
    qbo.sandbox.inject_faults(429, 100, realm_id=REALM)
    results = qb.write_notes([note(i, "sent") for i in editable(qbo, 2)])
    assert all(not r.ok and r.retryable for r in results)


def test_voided_invoice_keeps_its_void_mark(qbo: QBOWorld) -> None:
    qb = connector(qbo)
    inv = editable(qbo, 1)[0]
    assert qb.write_notes([note(inv, "sent")])[0].ok
    qbo.sandbox.void_invoice(REALM, inv)
    assert private_note(qbo, inv).startswith("Voided")
    assert qb.write_notes([note(inv, "cancelled", T0 + timedelta(days=2))])[0].ok
    raw = qbo.sandbox.get(REALM, "Invoice", inv)
    assert mapping.is_voided(raw) and len(parse(raw["PrivateNote"]).lines) == 2


def test_the_echo_of_our_write_is_recognisable(qbo: QBOWorld) -> None:
    qb = connector(qbo)
    inv = editable(qbo, 1)[0]
    qbo.sandbox.edit_invoice(REALM, inv, PrivateNote="Bob's note")
    before = private_note(qbo, inv)
    [result] = qb.write_notes([note(inv, "sent")])
    after = qbo.sandbox.get(REALM, "Invoice", inv)
    assert is_own_echo(before, after["PrivateNote"])
    assert result.remote_version == after["SyncToken"]  # CDC will report exactly this version
    assert not is_own_echo(before, "Bob's note, edited")
    assert not is_own_echo(after["PrivateNote"], "Voided - " + after["PrivateNote"])


def test_results_follow_the_protocol(qbo: QBOWorld) -> None:
    [result] = connector(qbo).write_notes([note(editable(qbo, 1)[0], "sent")])
    assert isinstance(result, NoteResult) and result.error is None


# --- the block itself (pure) ---------------------------------------------------------------------

def test_block_without_end_marker_keeps_the_text_after_our_lines() -> None:
    from connectors.quickbooks.note_block import compose

    first = compose("Bob", [("n1", "2026-11-20", "Sent.")]).text or ""
    broken = first.replace(f"\n{END}", "") + "\nperson typed here"
    again = compose(broken, [("n1", "2026-11-20", "Sent.")])
    assert again.text is None and again.present == {"n1"}
    text = compose(broken, [("n2", "2026-11-21", "Escalated.")]).text or ""
    assert text.startswith("Bob\n") and text.endswith(f"{END}\nperson typed here")
    assert len(parse(text).lines) == 2


def test_block_lines_are_single_short_lines_and_emoji_count_double() -> None:
    from connectors.quickbooks.note_block import MAX_LINE_UNITS, compose, note_line

    line = note_line("2026-11-20", "a\nb " + "é" * 5000 + START, "n")
    assert "\n" not in line and START not in line and units(line) <= MAX_LINE_UNITS
    assert units("🎉") == 2
    person = "🎉" * 1990  # 3980 units though only 1990 code points
    assert compose(person, [("n", "2026-11-20", "Sent.")]).no_room == {"n"}


def test_crlf_from_the_ui_is_tolerated() -> None:
    from connectors.quickbooks.note_block import compose

    text = compose("Bob", [("n1", "2026-11-20", "Sent.")]).text or ""
    crlf = text.replace("\n", "\r\n")
    assert parse(crlf).person_text() == "Bob" and is_own_echo("Bob", crlf)
    assert compose(crlf, [("n1", "2026-11-20", "Sent.")]).text is None


def test_a_resent_batch_is_replayed_not_applied_twice(qbo: QBOWorld) -> None:
    qb = connector(qbo)
    inv = editable(qbo, 1)[0]
    writer = QuickBooksNotes(qb._qb, clock=qb._clock)
    token = qbo.sandbox.get(REALM, "Invoice", inv)["SyncToken"]
    update = {"Id": inv, "SyncToken": token, "sparse": True, "PrivateNote": "x"}
    first = writer._send([update])  # the answer to this one is "lost"; the retry is identical
    second = writer._send([update])
    assert first == second and "Fault" not in second[inv]
    assert qbo.sandbox.get(REALM, "Invoice", inv)["SyncToken"] == str(int(token) + 1)
