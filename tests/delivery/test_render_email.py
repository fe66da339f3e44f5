"""Every shipped email template renders, consolidated, in the customer's locale."""

from __future__ import annotations

from decimal import Decimal

import pytest

from arsync.render import ALIASES, NOTE_KINDS, RenderError, environment, render
from arsync.render_context import InvoiceLine, sample_contexts
from tests.delivery.conftest import TODAY, make_ctx

EMAIL_NAMES = ["before_due", "friendly", "firm", "urgent", "plan_offer", "final"]
POLICY_NAMES = ["reminder_due_soon", "instalment_due_soon", "overdue_1", "instalment_overdue",
                "overdue_7", "overdue_14", "promise_broken", "payment_plan_offer", "final_notice"]


def test_every_shipped_template_is_covered_here() -> None:
    shipped = {p for p in environment().list_templates(extensions=["j2"]) if "/_" not in p}
    expected = ({f"email/{n}.{part}.j2" for n in EMAIL_NAMES for part in ("subject", "html", "txt")}
                | {f"sms/{n}.txt.j2" for n in EMAIL_NAMES}
                | {f"note/{k}.txt.j2" for k in NOTE_KINDS})
    assert shipped == expected


@pytest.mark.parametrize("name", EMAIL_NAMES)
@pytest.mark.parametrize("sample", [0, 1, 2], ids=["rich", "bare", "huge"])
def test_each_template_renders_every_sample(name: str, sample: int) -> None:
    ctx = sample_contexts("email")[sample]
    email = render("email", name, ctx)
    assert email.subject and "\n" not in email.subject
    assert email.templates == tuple(f"email/{name}.{p}.j2" for p in ("subject", "html", "txt"))
    for inv in ctx.invoices:
        assert inv.number in email.text
        assert inv.number in email.html
    assert ctx.customer.name in email.text
    assert email.html.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("tone", ["friendly", "firm", "urgent", "final"])
@pytest.mark.parametrize("name", POLICY_NAMES)
def test_policy_names_resolve_via_alias_then_tone(name: str, tone: str) -> None:
    email = render("email", name, make_ctx(tone=tone))
    expected = ALIASES.get(name, tone)
    assert email.templates[0] == f"email/{expected}.subject.j2"


def test_plan_offer_and_final_say_what_they_are() -> None:
    assert "payment plan" in render("email", "payment_plan_offer", make_ctx()).text
    final = render("email", "final_notice", make_ctx(tone="final"))
    assert final.subject.startswith("Final notice")
    assert "final notice" in final.text


def test_consolidated_twenty_invoices_with_total() -> None:
    ctx = make_ctx(20, pay_links=False, amount="1250.00")
    email = render("email", "firm", ctx)
    for i in range(1, 21):
        assert f"Invoice INV-{i}," in email.text
        assert f"<td>INV-{i}</td>" in email.html
        assert f"({i} day{'s' if i > 1 else ''} overdue)" in email.text
    assert "Total due: $25,000.00" in email.text
    assert "$25,000.00" in email.html
    assert email.text.count("$1,250.00") == 20


def test_two_currencies_are_totalled_separately() -> None:
    ctx = make_ctx(4, currencies=("USD", "EUR"), amount="100.10")
    email = render("email", "firm", ctx)
    assert "Total due in EUR: €200.20" in email.text
    assert "Total due in USD: $200.20" in email.text
    assert "€200.20 + $200.20" in email.subject


def test_partly_paid_invoice_shows_balance_and_total() -> None:
    inv = InvoiceLine("INV-9", "USD", Decimal("800.00"), Decimal("300.50"), TODAY, 0)
    ctx = make_ctx(0).__class__(**{**make_ctx(0).__dict__, "invoices": (inv,)})
    text = render("email", "firm", ctx).text
    assert "$300.50 still due of $800.00" in text
    assert "(due today)" in text


def test_without_any_pay_link_it_says_how_to_pay() -> None:
    email = render("email", "friendly", make_ctx(2, pay_links=False, portal=False))
    assert "Pay online" not in email.text
    assert "To pay, please contact us at ar@acme.example or on +1 555 0100." in email.text
    assert 'href="mailto:ar@acme.example"' in email.html
    bare = render("email", "friendly", make_ctx(1, pay_links=False, portal=False,
                                                company_email=None, company_phone=None))
    assert "To pay, please contact us by replying to this email." in bare.text


def test_portal_link_is_offered_when_present() -> None:
    email = render("email", "firm", make_ctx(2, pay_links=False))
    assert "https://ar.acme.example/p/tok" in email.text
    assert 'href="https://ar.acme.example/p/tok"' in email.html
    assert "contact us" not in email.text


def test_html_is_escaped_and_text_is_not() -> None:
    email = render("email", "firm", make_ctx(1, customer="<b>Tom & Jerry</b>"))
    assert "Dear &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;," in email.html
    assert "Dear <b>Tom & Jerry</b>," in email.text
    assert "<b>Tom" in email.subject or "Tom" not in email.subject  # subjects are never escaped


def test_text_part_is_tidy() -> None:
    text = render("email", "firm", make_ctx(3)).text
    assert "\n\n\n" not in text
    assert all(line == line.rstrip() for line in text.splitlines())
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_german_customer_gets_english_words_and_german_numbers() -> None:
    email = render("email", "firm", make_ctx(1, currencies=("EUR",), locale="de_DE"))
    assert email.locale == "de_DE"
    assert "Dear Globex" in email.text  # no German templates ship yet: English fallback
    assert "1.250,00\xa0€" in email.text
    assert "15.03.2026" in email.text  # due date in German format


def test_language_folder_wins_for_that_language_only() -> None:
    overrides = {"email/de/firm.subject.j2": "Zahlung überfällig: {{ totals|money_list }}"}
    de = render("email", "overdue_7", make_ctx(1, currencies=("EUR",), locale="de_AT"),
                overrides=overrides)
    assert de.subject == "Zahlung überfällig: € 1.250,00"
    assert de.templates[0] == "email/de/firm.subject.j2"
    en = render("email", "overdue_7", make_ctx(1, locale="en_GB"), overrides=overrides)
    assert en.subject.startswith("Payment overdue")


def test_float_money_is_refused() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        InvoiceLine("X", "USD", 1.5, Decimal("1.5"), TODAY, 0)  # type: ignore[arg-type]


def test_unknown_template_and_kind() -> None:
    ctx = make_ctx(tone="nonexistent")
    with pytest.raises(RenderError, match="no email template"):
        render("email", "nope", ctx)
    with pytest.raises(ValueError, match="unknown template kind"):
        render("fax", "firm", ctx)  # type: ignore[call-overload]


def test_signature_block() -> None:
    text = render("email", "firm", make_ctx(1)).text
    assert text.endswith("Kind regards,\nAcme Supplies\n+1 555 0100\n")
    ctx = make_ctx(1)
    signed = type(ctx)(**{**ctx.__dict__, "signature": "Alice, Accounts",
                          "unsubscribe_url": "https://ar.example/u/t"})
    text = render("email", "firm", signed).text
    assert "Kind regards,\nAlice, Accounts\nAcme Supplies\n+1 555 0100\n\n" in text
    assert text.endswith("To stop these reminders: https://ar.example/u/t\n")


def test_invoices_are_listed_oldest_first() -> None:
    text = render("email", "firm", make_ctx(3)).text
    assert text.index("INV-3,") < text.index("INV-2,") < text.index("INV-1,")


def test_line_from_a_rules_invoice_view() -> None:
    import datetime as dt

    from arsync.render_context import line_from
    from rules import InvoiceView

    view = InvoiceView(external_id="9", number="INV-9", currency="GBP", total=Decimal("100.00"),
                       balance=Decimal("40.00"), issue_date=dt.date(2026, 2, 1),
                       due_date=dt.date(2026, 3, 1), status="open")
    line = line_from(view, today=TODAY, pay_url=None)
    assert (line.amount, line.balance, line.days_overdue) == (Decimal("100.00"),
                                                              Decimal("40.00"), 15)
