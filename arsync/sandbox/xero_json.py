"""Xero's wire format: records to JSON (and XML) shaped exactly as the API's own payloads.

Field names, order and types follow the samples in ``tests/fixtures/samples/xero_*.json`` (taken
from Xero's OpenAPI spec). Dates are ``/Date(1541176290160+0000)/`` with ISO ``...String``
siblings; money is a JSON number with two decimals (``46.00``), which :func:`dumps` writes from
:class:`~decimal.Decimal` without going through float.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from arsync.sandbox.xero_model import (
    Contact,
    CreditNote,
    Invoice,
    Organisation,
    Payment,
)

PROVIDER_NAME = "arsync sandbox"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Decimals travel through json.dumps as strings between two control-character markers, and the
# quotes and markers are removed afterwards (json.dumps escapes control characters, so the
# markers come out as "\u001f<nonce>" and "\u001e<nonce>"). The nonce keeps a customer's text
# from ever being mistaken for a marker.
_NONCE = secrets.token_hex(4)
_OPEN, _CLOSE = f"\x1f{_NONCE}", f"\x1e{_NONCE}"
_OPEN_JSON, _CLOSE_JSON = f'"\\u001f{_NONCE}', f'\\u001e{_NONCE}"'


def num(value: Decimal, places: int = 2) -> str:
    """A Decimal to be written as a JSON number with ``places`` decimals."""
    return f"{_OPEN}{value:.{places}f}{_CLOSE}"


def rate(value: Decimal) -> str:
    """A CurrencyRate: as many decimals as it has (at least one), like Xero's ``1.0``."""
    text = format(value.normalize(), "f")
    return _OPEN + (text if "." in text else text + ".0") + _CLOSE


def _plain(value: Any) -> Any:
    """Request values echoed back (Decimals parsed from JSON, dates from a person's edit)."""
    if isinstance(value, Decimal):
        return _OPEN + format(value, "f") + _CLOSE
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(payload: Any) -> bytes:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_plain)
    return text.replace(_OPEN_JSON, "").replace(_CLOSE_JSON, "").encode("utf-8")


def _unmark(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_OPEN):
        return value[len(_OPEN):-len(_CLOSE)]
    return value


def ms(moment: datetime | date) -> int:
    if not isinstance(moment, datetime):
        return (moment - date(1970, 1, 1)).days * 86_400_000
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def msdate(moment: datetime | date, *, offset: bool = True) -> str:
    """``/Date(1541176290160+0000)/`` (``offset=False``: ``/Date(1541176290160)/``)."""
    return f"/Date({ms(moment)}{'+0000' if offset else ''})/"


def date_string(day: date) -> str:
    return f"{day.isoformat()}T00:00:00"


def utc_string(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(now: datetime, request_id: str, **body: Any) -> dict[str, Any]:
    return {"Id": request_id, "Status": "OK", "ProviderName": PROVIDER_NAME,
            "DateTimeUTC": msdate(now, offset=False), **body}


# --------------------------------------------------------------------------- errors
def validation_error(messages: list[str], element: dict[str, Any] | None = None) -> dict[str, Any]:
    """Xero's 400 ``ValidationException`` (shape of ``xero_validation_error_400.json``)."""
    item = dict(element or {})
    item["ValidationErrors"] = [{"Message": m} for m in messages]
    if element is not None:
        item["HasValidationErrors"] = True
    return {"ErrorNumber": 10, "Type": "ValidationException",
            "Message": "A validation exception occurred", "Elements": [item]}


def query_parse_error(message: str) -> dict[str, Any]:
    return {"ErrorNumber": 16, "Type": "QueryParseException", "Message": message}


def problem(status: int, title: str, detail: str, instance: str, *,
            extensions: bool = True) -> dict[str, Any]:
    """The problem-details body of Xero's 401/403 (``xero_401_token_expired.json``)."""
    body: dict[str, Any] = {"Type": None, "Title": title, "Status": status, "Detail": detail,
                            "Instance": instance}
    if extensions:
        body["Extensions"] = {}
    return body


# ------------------------------------------------------------------------- records
_EMPTY_CONTACT_LISTS: dict[str, list[Any]] = {
    "Addresses": [], "Phones": [], "ContactGroups": [], "ContactPersons": []}


def contact_summary(contact: Contact) -> dict[str, Any]:
    return {"ContactID": contact.contact_id, "Name": contact.name, **_EMPTY_CONTACT_LISTS,
            "HasValidationErrors": False}


def render_contact(org: Organisation, contact: Contact, *, summary: bool = False,
                   balances: tuple[Decimal, Decimal, Decimal, Decimal] | None = None
                   ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ContactID": contact.contact_id,
        "ContactStatus": contact.status,
        "Name": contact.name,
        "FirstName": contact.first_name,
        "LastName": contact.last_name,
        "EmailAddress": contact.email,
        "AccountNumber": contact.account_number,
        "BankAccountDetails": "",
    }
    if not summary:
        body["Addresses"] = [
            {"AddressType": "STREET", "City": "", "Region": "", "PostalCode": "", "Country": "",
             "AttentionTo": ""},
            {"AddressType": "POBOX", "AddressLine1": "PO Box " + contact.postcode[:3],
             "City": contact.city, "Region": "", "PostalCode": contact.postcode,
             "Country": org.country, "AttentionTo": ""},
        ]
        body["Phones"] = [
            {"PhoneType": kind, "PhoneNumber": contact.phone if kind == "DEFAULT" else "",
             "PhoneAreaCode": "", "PhoneCountryCode": ""}
            for kind in ("DEFAULT", "DDI", "FAX", "MOBILE")
        ]
    body["UpdatedDateUTC"] = msdate(contact.updated)
    if not summary:
        body["ContactGroups"] = []
    body["IsSupplier"] = contact.is_supplier
    body["IsCustomer"] = contact.is_customer
    if not summary:
        body["SalesTrackingCategories"] = []
        body["PurchasesTrackingCategories"] = []
        body["ContactPersons"] = [
            {"FirstName": p.first_name, "LastName": p.last_name, "EmailAddress": p.email,
             "IncludeInEmails": p.include_in_emails}
            for p in contact.persons
        ]
    if balances is not None:
        ar_out, ar_over, ap_out, ap_over = balances
        body["Balances"] = {
            "AccountsReceivable": {"Outstanding": num(ar_out), "Overdue": num(ar_over)},
            "AccountsPayable": {"Outstanding": num(ap_out), "Overdue": num(ap_over)},
        }
    body["HasAttachments"] = False
    body["HasValidationErrors"] = False
    return body


def _line_items(org: Organisation, invoice: Invoice | CreditNote, unitdp: int) -> list[Any]:
    lines = org.lines_of(invoice) if isinstance(invoice, Invoice) else invoice.lines or []
    return [
        {"Description": li.description, "UnitAmount": num(li.unit_amount, unitdp),
         "TaxType": li.tax_type, "TaxAmount": num(li.tax_amount), "LineAmount": num(li.line_amount),
         "AccountCode": li.account_code, "Tracking": [], "Quantity": num(li.quantity, 4),
         "LineItemID": li.line_item_id, "ValidationErrors": []}
        for li in lines
    ]


def _payment_ref(payment: Payment, *, full: bool) -> dict[str, Any]:
    ref: dict[str, Any] = {"PaymentID": payment.payment_id, "Date": msdate(payment.date),
                           "Amount": num(payment.amount)}
    if full and payment.reference:
        ref["Reference"] = payment.reference
    ref.update({"CurrencyRate": rate(payment.currency_rate), "HasAccount": False,
                "HasValidationErrors": False})
    return ref


def render_invoice(org: Organisation, invoice: Invoice, *, detail: str = "paged",
                   unitdp: int = 2) -> dict[str, Any]:
    """One invoice. ``detail``: ``summary`` (summaryOnly), ``list`` (unpaged list: no line
    items), ``paged`` (a page of a paged list) or ``full`` (GET /Invoices/{id})."""
    full = detail == "full"
    contact = org.contacts[invoice.contact_id]
    body: dict[str, Any] = {
        "Type": invoice.type,
        "InvoiceID": invoice.invoice_id,
        "InvoiceNumber": invoice.number,
        "Reference": invoice.reference,
    }
    if detail != "summary":
        body["Payments"] = [_payment_ref(org.payments[p], full=full) for p in invoice.payment_ids
                            if org.payments[p].status == "AUTHORISED"]
        body["CreditNotes"] = [
            {"CreditNoteID": a.credit_note_id,
             "CreditNoteNumber": org.credit_notes[a.credit_note_id].number,
             "AppliedAmount": num(a.amount), "DateString": date_string(a.date),
             "Date": msdate(a.date), "Total": num(org.credit_notes[a.credit_note_id].total),
             "HasErrors": False}
            for a in invoice.allocations
        ]
        body["Prepayments"] = []
        body["Overpayments"] = []
    body["AmountDue"] = num(invoice.amount_due)
    body["AmountPaid"] = num(invoice.amount_paid)
    body["AmountCredited"] = num(invoice.amount_credited)
    if full or invoice.sent_to_contact:
        body["SentToContact"] = invoice.sent_to_contact
    body["CurrencyRate"] = rate(invoice.currency_rate)
    body["HasErrors"] = False
    body["IsDiscounted"] = False
    body["HasAttachments"] = False
    body["Contact"] = (render_contact(org, contact) if full else contact_summary(contact))
    body["DateString"] = date_string(invoice.date)
    body["Date"] = msdate(invoice.date)
    if invoice.due_date is not None:
        body["DueDateString"] = date_string(invoice.due_date)
        body["DueDate"] = msdate(invoice.due_date)
    body["Status"] = invoice.status
    body["LineAmountTypes"] = invoice.line_amount_types
    if detail in ("paged", "full"):
        body["LineItems"] = _line_items(org, invoice, unitdp)
    body["SubTotal"] = num(invoice.sub_total)
    body["TotalTax"] = num(invoice.total_tax)
    body["Total"] = num(invoice.total)
    body["UpdatedDateUTC"] = msdate(invoice.updated)
    body["UpdatedDateUTCString"] = utc_string(invoice.updated)
    body["CurrencyCode"] = invoice.currency
    if invoice.status == "PAID" and invoice.fully_paid_on:
        body["FullyPaidOnDate"] = msdate(invoice.fully_paid_on)
    return body


def _document_ref(org: Organisation, kind: str, doc_id: str, number: str, currency: str,
                  contact_id: str) -> dict[str, Any]:
    contact = org.contacts[contact_id]
    return {
        "Type": kind, "InvoiceID": doc_id, "InvoiceNumber": number, "Payments": [],
        "CreditNotes": [], "Prepayments": [], "Overpayments": [], "HasErrors": False,
        "IsDiscounted": False,
        "Contact": {"ContactID": contact.contact_id, "ContactNumber": "", "Name": contact.name,
                    **_EMPTY_CONTACT_LISTS, "HasValidationErrors": False},
        "LineItems": [], "CurrencyCode": currency,
    }


def render_payment(org: Organisation, payment: Payment) -> dict[str, Any]:
    """A payment as GET /Payments shows it. A cash refund of a credit note is listed, as in
    Xero's own example, with the credit note under ``Invoice`` (``Type: ACCRECCREDIT``)."""
    if payment.invoice_id:
        inv = org.invoices[payment.invoice_id]
        doc = _document_ref(org, inv.type, inv.invoice_id, inv.number, inv.currency,
                            inv.contact_id)
    else:
        note = org.credit_notes[payment.credit_note_id or ""]
        doc = _document_ref(org, note.type, note.credit_note_id, note.number, note.currency,
                            note.contact_id)
    return {
        "PaymentID": payment.payment_id,
        "Date": msdate(payment.date),
        "BankAmount": num(payment.amount),
        "Amount": num(payment.amount),
        "Reference": payment.reference,
        "CurrencyRate": rate(payment.currency_rate),
        "PaymentType": payment.payment_type,
        "Status": payment.status,
        "UpdatedDateUTC": msdate(payment.updated),
        "UpdatedDateUTCString": utc_string(payment.updated),
        "HasAccount": True,
        "IsReconciled": payment.is_reconciled,
        "Account": {"AccountID": org.bank_account_ids[payment.account_code],
                    "Code": payment.account_code},
        "Invoice": doc,
        "HasValidationErrors": False,
    }


def render_credit_note(org: Organisation, note: CreditNote, *,
                       lines: bool = True) -> dict[str, Any]:
    contact = org.contacts[note.contact_id]
    body: dict[str, Any] = {
        "CreditNoteID": note.credit_note_id,
        "CreditNoteNumber": note.number,
        "Payments": [_payment_ref(org.payments[p], full=True) for p in note.payment_ids
                     if org.payments[p].status == "AUTHORISED"],
        "ID": note.credit_note_id,
        "CurrencyRate": rate(note.currency_rate),
        "Type": note.type,
        "Reference": note.reference,
        "RemainingCredit": num(note.remaining_credit(org.payments)),
        "Allocations": [
            {"AllocationID": a.allocation_id, "Amount": num(a.amount), "Date": msdate(a.date),
             "Invoice": {"InvoiceID": a.invoice_id,
                         "InvoiceNumber": org.invoices[a.invoice_id].number, "Payments": [],
                         "CreditNotes": [], "Prepayments": [], "Overpayments": [],
                         "HasErrors": False, "IsDiscounted": False, "LineItems": []},
             "IsDeleted": False}
            for a in note.allocations
        ],
        "HasAttachments": False,
        "Contact": contact_summary(contact),
        "DateString": date_string(note.date),
        "Date": msdate(note.date),
        "Status": note.status,
        "LineAmountTypes": "Exclusive",
    }
    if lines:
        body["LineItems"] = _line_items(org, note, 2)
    body.update({
        "SubTotal": num(note.sub_total), "TotalTax": num(note.total_tax), "Total": num(note.total),
        "UpdatedDateUTC": msdate(note.updated), "UpdatedDateUTCString": utc_string(note.updated),
        "CurrencyCode": note.currency,
    })
    if note.status == "PAID" and note.fully_paid_on:
        body["FullyPaidOnDate"] = msdate(note.fully_paid_on)
    return body


_VERSIONS = {"GB": "UK", "NZ": "NZ", "AU": "AU", "US": "US"}


def render_organisation(org: Organisation) -> dict[str, Any]:
    return {
        "OrganisationID": org.tenant_id,
        "Name": org.name,
        "LegalName": org.name,
        "PaysTax": org.sales_tax[0] != "NONE",
        "Version": _VERSIONS.get(org.country, "GLOBAL"),
        "OrganisationType": "COMPANY",
        "BaseCurrency": org.currency,
        "CountryCode": org.country,
        "IsDemoCompany": False,
        "OrganisationStatus": "ACTIVE",
        "FinancialYearEndDay": 31,
        "FinancialYearEndMonth": 3,
        "SalesTaxBasis": "ACCRUALS" if org.country in ("GB", "AU") else "INVOICE",
        "SalesTaxPeriod": "QUARTERLY1" if org.country == "GB" else "TWOMONTHS",
        "DefaultSalesTax": "Tax Exclusive",
        "DefaultPurchasesTax": "Tax Exclusive",
        "CreatedDateUTC": msdate(org.created, offset=False),
        "OrganisationEntityType": "COMPANY",
        "Timezone": org.timezone,
        "ShortCode": org.short_code,
        "Class": "STANDARD",
        "Edition": "BUSINESS",
        "Addresses": [],
        "Phones": [],
        "ExternalLinks": [],
        "PaymentTerms": {},
    }


def history_records(org: Organisation, invoice: Invoice) -> list[dict[str, Any]]:
    """An invoice's history, newest first: system records derived from its state, plus notes."""
    contact = org.contacts[invoice.contact_id].name
    events: list[tuple[datetime, str, str, str]] = [
        (invoice.created, "Created", f"{invoice.number or 'Bill'} to {contact} for "
                                     f"{invoice.total:.2f}.", "Sandbox User"),
    ]
    if invoice.status not in ("DRAFT", "SUBMITTED", "DELETED"):
        events.append((invoice.created, "Approved", f"{invoice.number} approved.", "Sandbox User"))
    for pid in invoice.payment_ids:
        p = org.payments[pid]
        events.append((p.updated, "Payment Received",
                       f"Payment received from {contact} on {p.date:%d %B %Y} for {p.amount:.2f}.",
                       "Sandbox User"))
    for a in invoice.allocations:
        events.append((org.credit_notes[a.credit_note_id].updated, "Credit Applied",
                       f"Credit applied for {a.amount:.2f}.", "Sandbox User"))
    if invoice.status in ("VOIDED", "DELETED"):
        events.append((invoice.updated, invoice.status.title(),
                       f"{invoice.number} {invoice.status.lower()}.", "Sandbox User"))
    events.extend((n.at, n.changes, n.details, n.user) for n in invoice.notes)
    events.sort(key=lambda e: e[0], reverse=True)
    return [{"Changes": changes, "DateUTCString": at.strftime("%Y-%m-%dT%H:%M:%S"),
             "DateUTC": msdate(at), "User": user, "Details": details}
            for at, changes, details, user in events]


# ----------------------------------------------------------------------------- XML
_SINGULAR = {"Addresses": "Address", "HistoryRecords": "HistoryRecord", "Elements": "Element"}


def _xml(name: str, value: Any, out: list[str]) -> None:
    value = _unmark(value)
    if isinstance(value, dict):
        out.append(f"<{name}>")
        for k, v in value.items():
            if k != "pagination":
                _xml(k, v, out)
        out.append(f"</{name}>")
    elif isinstance(value, list):
        out.append(f"<{name}>")
        item = _SINGULAR.get(name, name[:-1] if name.endswith("s") else name)
        for v in value:
            _xml(item, v, out)
        out.append(f"</{name}>")
    elif value is None:
        out.append(f"<{name} />")
    else:
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out.append(f"<{name}>{escape(text)}</{name}>")


def to_xml(payload: dict[str, Any], root: str = "Response") -> bytes:
    """What Xero answers when the client did not ask for JSON (``Accept`` without it)."""
    out = ['<?xml version="1.0" encoding="utf-8"?>']
    _xml(root, payload, out)
    return "".join(out).encode("utf-8")
