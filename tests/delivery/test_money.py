"""Money and dates are formatted by Babel for the reader's locale, from Decimal only."""

from __future__ import annotations

from decimal import Decimal

import pytest

from arsync.render import render
from arsync.render_context import InvoiceLine, MessageContext
from tests.delivery.conftest import TODAY, make_ctx


def _one(currency: str, locale: str, amount: str = "1250.00") -> MessageContext:
    base = make_ctx(0, locale=locale)
    inv = InvoiceLine("INV-1", currency, Decimal(amount), Decimal(amount), TODAY, 5)
    return MessageContext(**{**base.__dict__, "invoices": (inv,)})


@pytest.mark.parametrize(("locale", "currency", "expected"), [
    ("en_US", "USD", "$1,250.00"),
    ("en_GB", "GBP", "£1,250.00"),
    ("de_DE", "EUR", "1.250,00\xa0€"),
    ("fr_FR", "EUR", "1\u202f250,00\xa0€"),
    ("en_US", "EUR", "€1,250.00"),
    ("en_GB", "USD", "US$1,250.00"),
])
def test_money_per_locale(locale: str, currency: str, expected: str) -> None:
    email = render("email", "firm", _one(currency, locale))
    assert f"): {expected}" in email.text
    assert expected in email.html


@pytest.mark.parametrize(("locale", "expected"), [
    ("en_US", "Mar 16, 2026"), ("en_GB", "16 Mar 2026"), ("de_DE", "16.03.2026"),
    ("fr_FR", "16 mars 2026")])
def test_dates_per_locale(locale: str, expected: str) -> None:
    assert f"due {expected} (5 days overdue)" in render("email", "firm", _one("EUR", locale)).text


def test_cents_are_exact_for_large_sums() -> None:
    # 0.1 + 0.2 style drift would show here if anything went through float.
    ctx = make_ctx(30, amount="0.10")
    assert "Total due: $3.00" in render("email", "firm", ctx).text
    big = _one("USD", "en_US", "12345678901234.57")
    assert "$12,345,678,901,234.57" in render("email", "firm", big).text


def test_unknown_locale_falls_back_to_english_templates() -> None:
    email = render("email", "firm", _one("USD", "xx_YY"))
    assert "Dear Globex" in email.text


def test_hyphenated_locale_is_understood() -> None:
    assert "1.250,00\xa0€" in render("email", "firm", _one("EUR", "de-DE")).text
