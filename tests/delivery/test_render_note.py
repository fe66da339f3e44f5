"""Write-back notes fit Xero's 250-character History note for any input."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from arsync.render import NOTE_KINDS, NOTE_LIMIT, numbers, render
from arsync.render_context import EventCtx, sample_contexts
from tests.delivery.conftest import TODAY, make_ctx


@pytest.mark.parametrize("kind", NOTE_KINDS)
def test_fifty_invoices_fit_without_the_safety_cut(kind: str) -> None:
    ctx = make_ctx(50, note=True)
    ctx = dataclasses.replace(ctx, event=EventCtx(
        on=TODAY, channel="email", recipient="a" * 80 + "@example.com",
        promise_date=TODAY, amount=Decimal("1250.00"), currency="USD", instalments=6,
        reason="The goods arrived late and damaged " * 10, by="Alice Accountant"))
    note = render("note", kind, ctx)
    assert len(note) <= NOTE_LIMIT
    assert "INV-50, INV-49" in note and "more" in note  # oldest first
    assert "\n" not in note


@pytest.mark.parametrize("kind", NOTE_KINDS)
@pytest.mark.parametrize("sample", [0, 1, 2])
def test_notes_render_every_sample(kind: str, sample: int) -> None:
    note = render("note", kind, sample_contexts("note")[sample])
    assert note.startswith("arsync: ") and len(note) <= NOTE_LIMIT


def test_sent_note_reads_well() -> None:
    note = render("note", "sent", make_ctx(2, note=True))
    assert note == ("arsync: firm reminder (overdue_7) sent by email to ap@globex.example on "
                    "Mar 16, 2026 for INV-2, INV-1; due $2,500.00.")


def test_notes_use_the_company_locale_not_the_customers() -> None:
    note = render("note", "sent", make_ctx(1, locale="de_DE", note=True))
    assert "$1,250.00" in note and "Mar 16, 2026" in note


def test_numbers_filter_counts_the_rest() -> None:
    invoices = make_ctx(50).invoices
    text = numbers(invoices, 40)
    assert len(text) <= 40
    shown = text.split(" +")[0].split(", ")
    assert text.endswith(f"+{50 - len(shown)} more")
    assert numbers(invoices[:2], 40) == "INV-50, INV-49"


def test_an_override_that_runs_long_is_still_cut() -> None:
    note = render("note", "sent", make_ctx(1, note=True),
                  overrides={"note/sent.txt.j2": "{{ 'x' * 400 }}"})
    assert len(note) == NOTE_LIMIT and note.endswith("…")
