"""The books of one emulated Xero organisation, and the rules Xero applies when they change.

Money is :class:`~decimal.Decimal` throughout. ``AmountPaid`` and ``AmountCredited`` are kept up to
date as payments and credit allocations are applied (as Xero does), and the sandbox tests recompute
them from the payments and allocations to check that the books balance.

Every change goes through :class:`Organisation` methods, which raise :class:`XeroRuleError` (with
the message Xero would give) for anything the real service refuses, and stamp ``UpdatedDateUTC``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
PAR = Decimal("1.000000")  # CurrencyRate of a base-currency document

INVOICE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED")
INVOICE_TYPES = ("ACCREC", "ACCPAY")
# Xero reports voided and deleted documents with nothing due.
CLOSED_STATUSES = ("VOIDED", "DELETED")
DRAFT_STATUSES = ("DRAFT", "SUBMITTED")

# Sales tax per organisation country: (tax type on sales, rate). Other countries: no tax.
SALES_TAX = {
    "GB": ("OUTPUT2", Decimal("0.20")),
    "NZ": ("OUTPUT2", Decimal("0.15")),
    "AU": ("OUTPUT", Decimal("0.10")),
}
PURCHASE_TAX = {
    "GB": ("INPUT2", Decimal("0.20")),
    "NZ": ("INPUT2", Decimal("0.15")),
    "AU": ("INPUT", Decimal("0.10")),
}
# Value of one unit in US dollars, to derive plausible CurrencyRates between any two currencies.
USD_VALUE = {
    "USD": Decimal("1.00"), "GBP": Decimal("1.27"), "EUR": Decimal("1.08"),
    "AUD": Decimal("0.66"), "NZD": Decimal("0.61"), "CAD": Decimal("0.74"),
}
BANK_ACCOUNTS = {"090": "Business Bank Account", "091": "Business Savings Account"}
SALES_ACCOUNT = "200"
PURCHASES_ACCOUNT = "400"


Day = date  # for annotations in classes that have a field called ``date``


class XeroRuleError(ValueError):
    """A change the real Xero refuses; the message is the validation message the API returns."""


def money(value: Decimal | int | str | float) -> Decimal:
    """Round to cents, half up (floats are converted through ``str`` so 0.1 stays 0.1)."""
    if isinstance(value, float):
        value = str(value)
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True)
class LineItem:
    line_item_id: str
    description: str
    quantity: Decimal
    unit_amount: Decimal
    account_code: str
    tax_type: str
    tax_amount: Decimal
    line_amount: Decimal


@dataclass(slots=True)
class ContactPerson:
    first_name: str
    last_name: str
    email: str
    include_in_emails: bool


@dataclass(slots=True)
class Contact:
    contact_id: str
    name: str
    first_name: str
    last_name: str
    email: str  # "" when the contact has none
    persons: list[ContactPerson]
    status: str  # ACTIVE | ARCHIVED
    is_customer: bool
    is_supplier: bool
    account_number: str
    phone: str
    city: str
    postcode: str
    updated: datetime


@dataclass(slots=True)
class Allocation:
    allocation_id: str
    credit_note_id: str
    invoice_id: str
    amount: Decimal
    date: Day


@dataclass(slots=True)
class Payment:
    payment_id: str
    amount: Decimal
    date: Day
    status: str  # AUTHORISED | DELETED
    payment_type: str  # ACCRECPAYMENT | ACCPAYPAYMENT | ARCREDITPAYMENT
    currency_rate: Decimal
    reference: str
    account_code: str
    updated: datetime
    invoice_id: str | None = None
    credit_note_id: str | None = None
    is_reconciled: bool = False


@dataclass(slots=True)
class HistoryRecord:
    changes: str
    details: str
    user: str
    at: datetime


@dataclass(slots=True)
class Invoice:
    invoice_id: str
    type: str
    number: str
    reference: str
    contact_id: str
    status: str
    currency: str
    currency_rate: Decimal
    date: Day
    due_date: Day | None
    lines: list[LineItem] | None  # None: seeded, regenerated from line_seed when rendered
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    created: datetime
    updated: datetime
    line_seed: int = 0
    amount_paid: Decimal = ZERO
    amount_credited: Decimal = ZERO
    # Tuples, not lists: most seeded invoices have none, and () costs nothing per invoice.
    payment_ids: tuple[str, ...] = ()  # AUTHORISED and DELETED, in order
    allocations: tuple[Allocation, ...] = ()
    fully_paid_on: Day | None = None
    sent_to_contact: bool = False
    created_by_app: bool = False
    line_amount_types: str = "Exclusive"
    notes: tuple[HistoryRecord, ...] = ()

    @property
    def amount_due(self) -> Decimal:
        if self.status in CLOSED_STATUSES:
            return ZERO
        return self.total - self.amount_paid - self.amount_credited


@dataclass(slots=True)
class CreditNote:
    credit_note_id: str
    type: str  # ACCRECCREDIT
    number: str
    reference: str
    contact_id: str
    status: str
    currency: str
    currency_rate: Decimal
    date: Day
    lines: list[LineItem]
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    updated: datetime
    allocations: tuple[Allocation, ...] = ()
    payment_ids: tuple[str, ...] = ()  # cash refunds
    fully_paid_on: Day | None = None

    def remaining_credit(self, payments: dict[str, Payment]) -> Decimal:
        if self.status in DRAFT_STATUSES:
            return self.total
        if self.status in CLOSED_STATUSES:
            return ZERO
        allocated = sum((a.amount for a in self.allocations), ZERO)
        refunded = sum((payments[p].amount for p in self.payment_ids
                        if payments[p].status == "AUTHORISED"), ZERO)
        return self.total - allocated - refunded


_MASK = (1 << 64) - 1
SALES_ITEMS = (
    "Consulting services", "Monthly retainer", "Installation", "Maintenance visit", "Design work",
    "Materials", "Delivery", "Training session", "Support hours", "Equipment hire",
)
BILL_ITEMS = ("Office supplies", "Software subscription", "Stock purchase", "Courier", "Rent")


def seeded_lines(line_seed: int, *, sales: bool, tax: tuple[str, Decimal]) -> list[LineItem]:
    """The line items of a seeded invoice, regenerated from its ``line_seed``.

    Seeded invoices keep only their totals (100,000 invoices' line items would cost ~100 MB);
    this cheap 64-bit LCG makes the same lines, with the same ids, every time.
    """
    x = line_seed & _MASK or 1

    def below(n: int) -> int:
        nonlocal x
        x = (x * 6364136223846793005 + 1442695040888963407) & _MASK
        return (x >> 16) % n

    tax_type, rate = tax
    items = SALES_ITEMS if sales else BILL_ITEMS
    count = 1 if below(10) < 6 else 2 + below(2)
    lines = []
    for _ in range(count):
        quantity = Decimal(1 + below(8))
        unit = Decimal(2_000 + below(248_001)).scaleb(-2)
        amount = quantity * unit
        hex_id = f"{below(1 << 48):012x}{below(1 << 48):012x}{below(1 << 32):08x}"
        line_id = f"{hex_id[:8]}-{hex_id[8:12]}-4{hex_id[13:16]}-a{hex_id[17:20]}-{hex_id[20:32]}"
        lines.append(LineItem(line_id, items[below(len(items))], quantity, unit,
                              SALES_ACCOUNT if sales else PURCHASES_ACCOUNT, tax_type,
                              money(amount * rate), amount))
    return lines


def build_lines(specs: list[dict[str, Any]], *, line_amount_types: str,
                default_tax: tuple[str, Decimal], taxes: dict[str, Decimal],
                default_account: str | None) -> list[LineItem]:
    """Turn request line items into :class:`LineItem` s, computing LineAmount and TaxAmount."""
    lines = []
    for spec in specs:
        quantity = Decimal(str(spec.get("Quantity", 1)))
        unit = spec.get("UnitAmount")
        line_amount = spec.get("LineAmount")
        if unit is None and line_amount is None:
            raise XeroRuleError("A line item requires a UnitAmount or a LineAmount.")
        if unit is None:
            unit_amount = Decimal(str(line_amount)) / (quantity or 1)
        else:
            unit_amount = Decimal(str(unit))
        amount = money(quantity * unit_amount) if line_amount is None else money(line_amount)
        untaxed = line_amount_types == "NoTax"
        tax_type = spec.get("TaxType") or ("NONE" if untaxed else default_tax[0])
        if tax_type not in taxes:
            raise XeroRuleError(f"The TaxType code '{tax_type}' does not exist or cannot be used "
                                "for this type of transaction.")
        rate = ZERO if untaxed else taxes[tax_type]
        if "TaxAmount" in spec and spec["TaxAmount"] is not None:
            tax = money(spec["TaxAmount"])
        elif line_amount_types == "Inclusive":
            tax = money(amount - amount / (1 + rate))
        else:
            tax = money(amount * rate)
        lines.append(LineItem(new_id(), str(spec.get("Description") or ""), quantity,
                              unit_amount, str(spec.get("AccountCode") or default_account or ""),
                              tax_type, tax, amount))
    return lines


def totals(lines: list[LineItem], line_amount_types: str) -> tuple[Decimal, Decimal, Decimal]:
    """(SubTotal, TotalTax, Total) as Xero computes them."""
    tax = sum((li.tax_amount for li in lines), ZERO)
    amounts = sum((li.line_amount for li in lines), ZERO)
    sub = amounts - tax if line_amount_types == "Inclusive" else amounts
    return money(sub), money(tax), money(sub + tax)


class Organisation:
    """One tenant: its settings, its records and the rules for changing them."""

    def __init__(self, tenant_id: str, *, name: str, country: str, currency: str, timezone: str,
                 created: datetime) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.country = country
        self.currency = currency
        self.timezone = timezone
        self.created = created
        self.short_code = "!" + tenant_id.replace("-", "")[:5]
        self.bank_account_ids = {code: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{code}"))
                                 for code in BANK_ACCOUNTS}
        self.contacts: dict[str, Contact] = {}
        self.invoices: dict[str, Invoice] = {}
        self.payments: dict[str, Payment] = {}
        self.credit_notes: dict[str, CreditNote] = {}
        self.invoice_numbers: dict[str, str] = {}  # ACCREC number -> id
        self.next_invoice_number = 1
        self.next_credit_note_number = 1
        self.version = 0  # bumped on every change; list caches key on it
        self.emails_sent: list[tuple[datetime, str, str]] = []  # (when, invoice id, address)
        self._balances: tuple[Any, dict[str, tuple[Decimal, Decimal, Decimal, Decimal]]] = (
            None, {})
        sales = SALES_TAX.get(country)
        purchases = PURCHASE_TAX.get(country)
        self.sales_tax = sales or ("NONE", ZERO)
        self.purchase_tax = purchases or ("NONE", ZERO)
        self.taxes = {"NONE": ZERO, "EXEMPTOUTPUT": ZERO, "EXEMPTINPUT": ZERO}
        self.taxes.update(dict(t for t in (sales, purchases) if t))

    # ----------------------------------------------------------------- helpers
    @property
    def currencies(self) -> set[str]:
        return set(USD_VALUE) | {self.currency}

    def rate_for(self, currency: str) -> Decimal:
        """Units of ``currency`` per unit of base currency (Xero's CurrencyRate)."""
        if currency == self.currency:
            return PAR
        base = USD_VALUE.get(self.currency, Decimal(1))
        return (base / USD_VALUE.get(currency, Decimal(1))).quantize(Decimal("0.000001"))

    def touch(self, record: Invoice | CreditNote | Contact | Payment, now: datetime) -> None:
        record.updated = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self.version += 1

    def lines_of(self, invoice: Invoice) -> list[LineItem]:
        if invoice.lines is not None:
            return invoice.lines
        sales = invoice.type == "ACCREC"
        return seeded_lines(invoice.line_seed, sales=sales,
                            tax=self.sales_tax if sales else self.purchase_tax)

    def invoice(self, invoice_id: str) -> Invoice:
        try:
            return self.invoices[invoice_id]
        except KeyError:
            raise KeyError(f"no invoice {invoice_id} in organisation {self.tenant_id}") from None

    def taken_number(self, number: str, but: str | None = None) -> bool:
        other = self.invoice_numbers.get(number)
        return other is not None and other != but and self.invoices[other].status != "DELETED"

    def allocate_invoice_number(self) -> str:
        while True:
            number = f"INV-{self.next_invoice_number:05d}"
            self.next_invoice_number += 1
            if number not in self.invoice_numbers:
                return number

    def allocate_credit_note_number(self) -> str:
        number = f"CN-{self.next_credit_note_number:05d}"
        self.next_credit_note_number += 1
        return number

    def add_invoice(self, invoice: Invoice) -> None:
        self.invoices[invoice.invoice_id] = invoice
        if invoice.type == "ACCREC" and invoice.number:
            self.invoice_numbers[invoice.number] = invoice.invoice_id
        self.version += 1

    def _settle(self, invoice: Invoice, on: date) -> None:
        """Move an invoice between AUTHORISED and PAID as its amount due reaches or leaves zero."""
        if invoice.status == "AUTHORISED" and invoice.amount_due == ZERO:
            invoice.status = "PAID"
            invoice.fully_paid_on = on
        elif invoice.status == "PAID" and invoice.amount_due > ZERO:
            invoice.status = "AUTHORISED"
            invoice.fully_paid_on = None

    # ------------------------------------------------------------------ rules
    def check_payment(self, invoice: Invoice, amount: Decimal, account_code: str, *,
                      pending: Decimal = ZERO) -> None:
        """Raise if Xero would refuse this payment (``pending``: earlier payments in a batch)."""
        if invoice.status != "AUTHORISED":
            raise XeroRuleError("Payments can only be made against Authorised documents")
        if amount <= ZERO:
            raise XeroRuleError("Payment amount must be greater than zero")
        if amount + pending > invoice.amount_due:
            raise XeroRuleError("Payment amount exceeds the amount outstanding on this document")
        if account_code not in BANK_ACCOUNTS:
            raise XeroRuleError(f"Account code '{account_code}' is not a bank account or enabled "
                                "for payments")

    def apply_payment(self, invoice: Invoice, amount: Decimal, *, on: date, now: datetime,
                      account_code: str = "090", reference: str = "",
                      currency_rate: Decimal | None = None) -> Payment:
        amount = money(amount)
        self.check_payment(invoice, amount, account_code)
        payment = Payment(new_id(), amount, on, "AUTHORISED",
                          "ACCRECPAYMENT" if invoice.type == "ACCREC" else "ACCPAYPAYMENT",
                          currency_rate or invoice.currency_rate, reference, account_code, now,
                          invoice_id=invoice.invoice_id)
        self.payments[payment.payment_id] = payment
        invoice.payment_ids += (payment.payment_id,)
        invoice.amount_paid += amount
        self._settle(invoice, on)
        self.touch(payment, now)
        self.touch(invoice, now)
        return payment

    def refund_credit_note(self, note: CreditNote, amount: Decimal, *, on: date, now: datetime,
                           account_code: str = "090", reference: str = "") -> Payment:
        if note.status != "AUTHORISED":
            raise XeroRuleError("Payments can only be made against Authorised documents")
        amount = money(amount)
        if amount <= ZERO or amount > note.remaining_credit(self.payments):
            raise XeroRuleError("Payment amount exceeds the amount outstanding on this document")
        payment = Payment(new_id(), amount, on, "AUTHORISED", "ARCREDITPAYMENT",
                          note.currency_rate, reference, account_code, now,
                          credit_note_id=note.credit_note_id)
        self.payments[payment.payment_id] = payment
        note.payment_ids += (payment.payment_id,)
        self._settle_credit_note(note, on)
        self.touch(payment, now)
        self.touch(note, now)
        return payment

    def delete_payment(self, payment: Payment, *, now: datetime) -> None:
        if payment.status == "DELETED":
            raise XeroRuleError("This payment has already been deleted")
        if payment.is_reconciled:
            raise XeroRuleError("Reconciled payments cannot be deleted")
        payment.status = "DELETED"
        self.touch(payment, now)
        if payment.invoice_id:
            invoice = self.invoices[payment.invoice_id]
            invoice.amount_paid -= payment.amount
            self._settle(invoice, payment.date)
            self.touch(invoice, now)
        elif payment.credit_note_id:
            note = self.credit_notes[payment.credit_note_id]
            self._settle_credit_note(note, payment.date)
            self.touch(note, now)

    def _settle_credit_note(self, note: CreditNote, on: date) -> None:
        remaining = note.remaining_credit(self.payments)
        if note.status == "AUTHORISED" and remaining == ZERO:
            note.status, note.fully_paid_on = "PAID", on
        elif note.status == "PAID" and remaining > ZERO:
            note.status, note.fully_paid_on = "AUTHORISED", None

    def allocate(self, note: CreditNote, invoice: Invoice, amount: Decimal, *, on: date,
                 now: datetime) -> Allocation:
        amount = money(amount)
        if note.status != "AUTHORISED":
            raise XeroRuleError("Credit notes can only be allocated when they are Authorised")
        if invoice.status != "AUTHORISED":
            raise XeroRuleError("Credit can only be allocated to Authorised invoices")
        if note.contact_id != invoice.contact_id:
            raise XeroRuleError("The credit note and the invoice must be for the same contact")
        if note.currency != invoice.currency:
            raise XeroRuleError("The credit note and the invoice must be in the same currency")
        if note.type != invoice.type + "CREDIT":
            raise XeroRuleError("The credit note type does not match the invoice type")
        if amount <= ZERO:
            raise XeroRuleError("Amount must be greater than zero")
        if amount > note.remaining_credit(self.payments):
            raise XeroRuleError("The amount to allocate exceeds the remaining credit")
        if amount > invoice.amount_due:
            raise XeroRuleError("The amount to allocate exceeds the amount due on the invoice")
        allocation = Allocation(new_id(), note.credit_note_id, invoice.invoice_id, amount, on)
        note.allocations += (allocation,)
        invoice.allocations += (allocation,)
        invoice.amount_credited += amount
        self._settle(invoice, on)
        self._settle_credit_note(note, on)
        self.touch(invoice, now)
        self.touch(note, now)
        return allocation

    def set_status(self, invoice: Invoice, status: str, *, now: datetime) -> None:
        """Change an invoice's status as Xero allows (approve, void, delete, submit)."""
        current = invoice.status
        if status == current:
            return
        if status not in INVOICE_STATUSES:
            raise XeroRuleError(f"Invalid status '{status}'")
        if status == "VOIDED":
            if current != "AUTHORISED":
                raise XeroRuleError("Only Authorised invoices can be voided; "
                                    f"this invoice is {current}")
            if invoice.amount_paid or invoice.amount_credited or any(
                    self.payments[p].status == "AUTHORISED" for p in invoice.payment_ids):
                raise XeroRuleError("This document cannot be voided because it has payments or "
                                    "credit notes allocated to it")
        elif status == "DELETED":
            if current not in DRAFT_STATUSES:
                raise XeroRuleError("Only Draft or Submitted invoices can be deleted; "
                                    f"this invoice is {current} (void it instead)")
        elif status == "PAID":
            raise XeroRuleError("Invoice status cannot be set to PAID; apply a payment instead")
        elif status in (*DRAFT_STATUSES, "AUTHORISED"):
            if current not in DRAFT_STATUSES:
                raise XeroRuleError(f"This document cannot be edited as it is {current}")
            if status == "AUTHORISED":
                self.check_approvable(invoice)
        invoice.status = status
        self.touch(invoice, now)

    def check_approvable(self, invoice: Invoice) -> None:
        lines = self.lines_of(invoice)
        if not lines:
            raise XeroRuleError("An invoice must have at least one line item to be approved")
        if invoice.due_date is None:
            raise XeroRuleError("Due Date is mandatory for an approved invoice")
        if any(not li.account_code for li in lines):
            raise XeroRuleError("Account code must be specified on every line of an approved "
                                "invoice")
        if invoice.total < ZERO:
            raise XeroRuleError("Invoice total cannot be negative")

    def add_note(self, invoice: Invoice, details: str, *, now: datetime,
                 user: str) -> HistoryRecord:
        record = HistoryRecord("Note", details, user, now)
        invoice.notes += (record,)
        # Unconfirmed whether Xero bumps UpdatedDateUTC for a note: the sandbox does, so that a
        # client must cope with its own notes coming back as invoice changes.
        self.touch(invoice, now)
        return record

    def balances(self, today: date) -> dict[str, tuple[Decimal, Decimal, Decimal, Decimal]]:
        """Per contact: (AR outstanding, AR overdue, AP outstanding, AP overdue), raw currency."""
        key = (self.version, today)
        if self._balances[0] != key:
            self._balances = (key, self._compute_balances(today))
        return self._balances[1]

    def _compute_balances(self, today: date) -> dict[str, tuple[Decimal, Decimal, Decimal,
                                                                 Decimal]]:
        out: dict[str, list[Decimal]] = {}
        for inv in self.invoices.values():
            if inv.status != "AUTHORISED":
                continue
            row = out.setdefault(inv.contact_id, [ZERO, ZERO, ZERO, ZERO])
            i = 0 if inv.type == "ACCREC" else 2
            due = inv.amount_due
            row[i] += due
            if inv.due_date is not None and inv.due_date < today:
                row[i + 1] += due
        return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}
