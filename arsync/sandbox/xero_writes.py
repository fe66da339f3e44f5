"""Creating and changing invoices and payments from Xero-shaped request bodies.

Each function validates without touching the books and returns either a ready change or the list
of validation messages Xero would return, so that a batch can be all-or-nothing (Xero's default,
``summarizeErrors=true``) or reported element by element (``summarizeErrors=false``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from arsync.sandbox.xero_model import (
    DRAFT_STATUSES,
    INVOICE_TYPES,
    PURCHASES_ACCOUNT,
    SALES_ACCOUNT,
    ZERO,
    Contact,
    Invoice,
    Organisation,
    Payment,
    XeroRuleError,
    build_lines,
    money,
    new_id,
    totals,
)

_MSDATE = re.compile(r"/Date\((-?\d+)(?:[+-]\d{4})?\)/")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EDITABLE_WHEN_PAID = {"SentToContact", "InvoiceID", "Status", "ExpectedPaymentDate"}


def is_guid(text: str) -> bool:
    return bool(_GUID.fullmatch(text))


def parse_date(value: Any, name: str) -> date | None:
    """A date as Xero accepts it: ``2024-01-31``, ``2024-01-31T00:00:00`` or ``/Date(ms)/``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    m = _MSDATE.fullmatch(text)
    if m:
        return datetime.fromtimestamp(int(m.group(1)) / 1000, UTC).date()
    try:
        return date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
    except ValueError:
        raise XeroRuleError(f"'{text}' is not a valid {name}") from None


def parse_amount(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise XeroRuleError(f"'{value}' is not a valid {name}") from None


@dataclass
class Outcome:
    """A validated change (``invoice`` or ``payment`` set) or the reasons it was refused."""

    errors: list[str]
    invoice: Invoice | None = None
    new_contact: Contact | None = None


def _contact(org: Organisation, data: Any, now: datetime) -> tuple[Contact | None, Contact | None]:
    """(existing or new contact, the new one if it must be created)."""
    if not isinstance(data, dict):
        return None, None
    contact_id = str(data.get("ContactID") or "")
    if contact_id:
        return org.contacts.get(contact_id.lower()) or org.contacts.get(contact_id), None
    name = str(data.get("Name") or "").strip()
    if not name:
        return None, None
    for contact in org.contacts.values():
        if contact.name == name:
            return contact, None
    # as Xero does: an unknown contact name creates the contact
    created = Contact(new_id(), name, "", "", str(data.get("EmailAddress") or ""), [], "ACTIVE",
                      False, False, "", "", "", "", now)
    return created, created


def _lines(org: Organisation, kind: str, data: dict[str, Any], amount_types: str) -> list[Any]:
    sales = kind == "ACCREC"
    specs = data.get("LineItems") or []
    if not isinstance(specs, list) or not all(isinstance(li, dict) for li in specs):
        raise XeroRuleError("LineItems must be a list of line items")
    return build_lines(specs, line_amount_types=amount_types,
                       default_tax=org.sales_tax if sales else org.purchase_tax, taxes=org.taxes,
                       default_account=None if specs and "AccountCode" in specs[0] else
                       (SALES_ACCOUNT if sales else PURCHASES_ACCOUNT))


def new_invoice(org: Organisation, data: dict[str, Any], *, now: datetime, by_app: bool) -> Outcome:
    """Validate a new invoice (PUT/POST /Invoices without an InvoiceID)."""
    errors: list[str] = []
    kind = data.get("Type")
    if kind not in INVOICE_TYPES:
        errors.append("Invoice Type must be ACCREC or ACCPAY")
        kind = "ACCREC"
    contact, created = _contact(org, data.get("Contact"), now)
    if contact is None:
        errors.append("A Contact must be specified for this type of transaction")
    status = data.get("Status") or "DRAFT"
    if status not in (*DRAFT_STATUSES, "AUTHORISED"):
        errors.append(f"Invoices cannot be created with status {status}")
        status = "DRAFT"
    currency = data.get("CurrencyCode") or org.currency
    if currency not in org.currencies:
        errors.append(f"Organisation is not subscribed to currency {currency}")
    amount_types = data.get("LineAmountTypes") or "Exclusive"
    if amount_types not in ("Exclusive", "Inclusive", "NoTax"):
        errors.append(f"Invalid LineAmountTypes '{amount_types}'")
        amount_types = "Exclusive"
    lines: list[Any] = []
    issued: date | None = now.date()
    due: date | None = None
    rate = org.rate_for(currency) if currency in org.currencies else ZERO
    try:
        lines = _lines(org, str(kind), data, amount_types)
        issued = parse_date(data.get("Date"), "Date") or now.date()
        due = parse_date(data.get("DueDate"), "DueDate")
        if data.get("CurrencyRate") is not None:
            rate = parse_amount(data["CurrencyRate"], "CurrencyRate")
    except XeroRuleError as exc:
        errors.append(str(exc))
    number = str(data.get("InvoiceNumber") or "")
    if kind == "ACCREC" and number and org.taken_number(number):
        errors.append("Invoice # must be unique.")
    if errors:
        return Outcome(errors)
    assert contact is not None
    assert issued is not None
    sub, tax, total = totals(lines, amount_types)
    invoice = Invoice(
        invoice_id=new_id(), type=str(kind),
        number=number or (org.allocate_invoice_number() if kind == "ACCREC" else ""),
        reference=str(data.get("Reference") or ""), contact_id=contact.contact_id,
        status=status, currency=currency, currency_rate=rate, date=issued, due_date=due,
        lines=lines, sub_total=sub, total_tax=tax, total=total, created=now, updated=now,
        created_by_app=by_app, line_amount_types=amount_types,
        sent_to_contact=bool(data.get("SentToContact")) and status == "AUTHORISED",
    )
    if status == "AUTHORISED":
        try:
            org.check_approvable(invoice)
        except XeroRuleError as exc:
            return Outcome([str(exc)])
    return Outcome([], invoice, created)


def changed_invoice(org: Organisation, current: Invoice, data: dict[str, Any], *,
                    now: datetime) -> Outcome:
    """Validate an update (POST /Invoices with an InvoiceID, or a person's edit) on a copy."""
    errors: list[str] = []
    fields = {k for k in data if k != "InvoiceID"}
    if current.status in ("VOIDED", "DELETED") and fields - {"Status"}:
        return Outcome([f"This document cannot be edited as it is {current.status}"])
    settled = current.amount_paid > ZERO or current.amount_credited > ZERO
    if settled and fields - _EDITABLE_WHEN_PAID - {"Reference", "DueDate"}:
        return Outcome(["This document cannot be edited as it has a payment or credit note "
                        "allocated to it"])
    if current.status == "PAID" and fields - _EDITABLE_WHEN_PAID:
        return Outcome(["This document cannot be edited as it has a payment or credit note "
                        "allocated to it"])
    invoice = replace(current)
    created = None
    try:
        if "Contact" in data:
            contact, created = _contact(org, data["Contact"], now)
            if contact is None:
                raise XeroRuleError("A Contact must be specified for this type of transaction")
            invoice.contact_id = contact.contact_id
        if "Reference" in data:
            invoice.reference = str(data["Reference"] or "")
        if "Date" in data:
            invoice.date = parse_date(data["Date"], "Date") or invoice.date
        if "DueDate" in data:
            invoice.due_date = parse_date(data["DueDate"], "DueDate")
        if "InvoiceNumber" in data:
            number = str(data["InvoiceNumber"] or "")
            if invoice.type == "ACCREC" and (not number or org.taken_number(number,
                                                                            invoice.invoice_id)):
                raise XeroRuleError("Invoice # must be unique.")
            invoice.number = number
        if "CurrencyCode" in data:
            if data["CurrencyCode"] not in org.currencies:
                raise XeroRuleError(f"Organisation is not subscribed to currency "
                                    f"{data['CurrencyCode']}")
            invoice.currency = data["CurrencyCode"]
            invoice.currency_rate = org.rate_for(invoice.currency)
        if "CurrencyRate" in data:
            invoice.currency_rate = parse_amount(data["CurrencyRate"], "CurrencyRate")
        if "LineAmountTypes" in data:
            invoice.line_amount_types = str(data["LineAmountTypes"])
        if "LineItems" in data or "LineAmountTypes" in data:
            if "LineItems" in data:
                invoice.lines = _lines(org, invoice.type, data, invoice.line_amount_types)
            invoice.sub_total, invoice.total_tax, invoice.total = totals(
                org.lines_of(invoice), invoice.line_amount_types)
        if "SentToContact" in data:
            if data["SentToContact"] and invoice.status in DRAFT_STATUSES:
                raise XeroRuleError("Only approved invoices can be marked as sent")
            invoice.sent_to_contact = bool(data["SentToContact"])
        if data.get("Status") and data["Status"] != invoice.status:
            org.set_status(invoice, str(data["Status"]), now=now)
        elif invoice.status == "AUTHORISED":
            org.check_approvable(invoice)
    except XeroRuleError as exc:
        errors.append(str(exc))
    if errors:
        return Outcome(errors)
    org.touch(invoice, now)
    return Outcome([], invoice, created)


def commit_invoice(org: Organisation, outcome: Outcome) -> Invoice:
    invoice = outcome.invoice
    assert invoice is not None
    if outcome.new_contact is not None:
        org.contacts[outcome.new_contact.contact_id] = outcome.new_contact
    contact = org.contacts[invoice.contact_id]
    if invoice.type == "ACCREC":
        contact.is_customer = True
        old = org.invoices.get(invoice.invoice_id)
        if old is not None and old.number != invoice.number:
            org.invoice_numbers.pop(old.number, None)
    else:
        contact.is_supplier = True
    org.add_invoice(invoice)
    return invoice


@dataclass
class PaymentRequest:
    target: Invoice | None
    amount: Decimal
    on: date
    account_code: str
    reference: str
    rate: Decimal | None


def payment_request(org: Organisation, data: dict[str, Any], *, today: date,
                    pending: Callable[[Invoice], Decimal]) -> PaymentRequest:
    """Validate one element of PUT /Payments (``pending``: earlier amounts in the same batch)."""
    ref = data.get("Invoice") or {}
    if not isinstance(ref, dict):
        raise XeroRuleError("Invoice must be an object with an InvoiceID")
    target = None
    if ref.get("InvoiceID"):
        target = org.invoices.get(str(ref["InvoiceID"]).lower())
    elif ref.get("InvoiceNumber"):
        number_id = org.invoice_numbers.get(str(ref["InvoiceNumber"]))
        target = org.invoices.get(number_id) if number_id else None
    if target is None:
        raise XeroRuleError("Invoice could not be found")
    account = data.get("Account") or {}
    code = str(account.get("Code") or "") if isinstance(account, dict) else ""
    if not code and isinstance(account, dict) and account.get("AccountID"):
        code = next((c for c, aid in org.bank_account_ids.items()
                     if aid == str(account["AccountID"]).lower()), "?")
    if not code:
        raise XeroRuleError("An Account must be specified (Code or AccountID)")
    if data.get("Amount") is None:
        raise XeroRuleError("Amount is required")
    amount = money(parse_amount(data["Amount"], "Amount"))
    org.check_payment(target, amount, code, pending=pending(target))
    rate = parse_amount(data["CurrencyRate"], "CurrencyRate") if data.get("CurrencyRate") else None
    return PaymentRequest(target, amount, parse_date(data.get("Date"), "Date") or today, code,
                          str(data.get("Reference") or ""), rate)


def record(org: Organisation, request: PaymentRequest, *, now: datetime) -> Payment:
    assert request.target is not None
    return org.apply_payment(request.target, request.amount, on=request.on, now=now,
                             account_code=request.account_code, reference=request.reference,
                             currency_rate=request.rate)
