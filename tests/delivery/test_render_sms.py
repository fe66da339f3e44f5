"""SMS bodies: whitespace and typography normalised to GSM-7, segments counted."""

from __future__ import annotations

import pytest

from arsync.render import render
from arsync.render_sms import count_segments, normalize_sms
from tests.delivery.conftest import make_ctx


def test_nbsp_and_typography_become_gsm() -> None:
    raw = ("Acme:\u00a0pay\u202f1\u202f250,00\u00a0€ \u2014 it\u2019s \u201cdue\u201d\u2026"
           "\n\n  now\t!")
    assert normalize_sms(raw) == 'Acme: pay 1 250,00 € - it\'s "due"... now !'


@pytest.mark.parametrize(("text", "encoding", "segments"), [
    ("", "GSM-7", 0),
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("a" * 306, "GSM-7", 2),
    ("a" * 307, "GSM-7", 3),
    ("€" * 80, "GSM-7", 1),          # extension characters cost two septets each
    ("€" * 81, "GSM-7", 2),
    ("a" * 152 + "€" + "a" * 10, "GSM-7", 2),  # the escape pair is never split
    ("ą" * 70, "UCS-2", 1),
    ("ą" * 71, "UCS-2", 2),
    ("ą" * 134, "UCS-2", 2),
    ("ą" * 135, "UCS-2", 3),
])
def test_segment_count(text: str, encoding: str, segments: int) -> None:
    assert count_segments(text) == (encoding, segments)


@pytest.mark.parametrize("name", ["before_due", "friendly", "firm", "urgent", "plan_offer",
                                  "final"])
def test_french_amounts_stay_gsm7(name: str) -> None:
    sms = render("sms", name, make_ctx(2, currencies=("EUR",), locale="fr_FR"))
    assert "\u202f" not in sms.text and "\xa0" not in sms.text
    assert "2 500,00 €" in sms.text
    assert sms.encoding == "GSM-7"
    assert sms.segments == count_segments(sms.text)[1] <= 2
    assert "  " not in sms.text and "\n" not in sms.text


def test_sms_pay_instructions_fall_back() -> None:
    assert "https://ar.acme.example/p/tok" in render("sms", "firm", make_ctx(1)).text
    one = render("sms", "firm", make_ctx(1, portal=False)).text
    assert "Pay: https://pay.example/inv-1" in one
    none = render("sms", "firm", make_ctx(2, portal=False, pay_links=False)).text
    assert "To pay, call +1 555 0100." in none


def test_non_gsm_letters_are_kept_and_priced_as_ucs2() -> None:
    sms = render("sms", "firm", make_ctx(1, customer="x").__class__(
        **{**make_ctx(1).__dict__,
           "company": make_ctx(1).company.__class__("Zakład Łódź", None, None, "pl_PL")}))
    assert sms.text.startswith("Zakład Łódź:")
    assert sms.encoding == "UCS-2"
