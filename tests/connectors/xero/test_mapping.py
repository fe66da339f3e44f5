"""Xero's own samples (and the spec's examples) through mapping.py into arsync DTOs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import urllib3
import yaml
from xero_python.exceptions import HTTPStatusException
from xero_python.rest import RESTResponse

from arsync.domain import Application, InvoiceStatus
from arsync.errors import (
    AuthError,
    ConfigError,
    MalformedPayloadError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from connectors.xero import mapping
from connectors.xero.errors import map_error
from connectors.xero.settings import WINDOWS_TO_IANA
from tests.conftest import FIXTURES, SAMPLES, sample


@pytest.fixture(scope="module")
def spec() -> Any:
    with (FIXTURES / "specs" / "xero" / "xero_accounting.yaml").open() as f:
        return yaml.load(f, Loader=yaml.CSafeLoader)


def example(spec: Any, path: str) -> Any:
    # YAML reads 760.00 as a float; round-trip through JSON text so Decimal sees what Xero sends.
    doc = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    return mapping.loads(json.dumps(doc))


def load(name: str) -> Any:
    return mapping.loads((SAMPLES / name).read_bytes())


def test_invoices_sample_maps_three_invoices_with_exact_money() -> None:
    voided, paid, open_ = mapping.parse_records("Invoices", load("xero_invoices_response.json"))
    assert [i.status for i in (voided, paid, open_)] == [
        InvoiceStatus.VOIDED, InvoiceStatus.PAID, InvoiceStatus.OPEN]
    assert open_.external_id == "7ef31b20-de17-4312-8382-412f869b1510"
    assert open_.number == "INV-0003"
    assert open_.customer_external_id == "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7"
    assert open_.customer_name == "Barney Rubble-83203"
    assert (open_.currency, open_.total, open_.balance) == ("NZD", Decimal("115.00"),
                                                           Decimal("115.00"))
    assert str(open_.total) == "115.00"  # quantized to the currency, never a float
    assert open_.issue_date == date(2018, 11, 2)
    assert open_.due_date == date(2018, 11, 7)
    assert open_.updated_at == datetime(2018, 11, 2, 16, 37, 28, 927000, tzinfo=UTC)
    assert open_.exchange_rate == Decimal("1.0")
    assert open_.version is None
    assert voided.balance == Decimal("0.00")
    assert voided.total == Decimal("40.00")
    assert voided.updated_at == datetime(2018, 11, 2, 16, 31, 30, 160000, tzinfo=UTC)
    assert (paid.total, paid.balance) == (Decimal("46.00"), Decimal("0.00"))


def test_invoice_by_id_sample_carries_the_contact_email() -> None:
    [inv] = mapping.parse_records("Invoices", load("xero_invoice_by_id_response.json"))
    assert inv.status is InvoiceStatus.PAID
    assert inv.total == Decimal("148062.76")
    assert inv.balance == Decimal("0.00")
    assert inv.billing_email == "liam@rockstar.com"


def test_accpay_bills_are_ignored() -> None:
    payload = load("xero_invoices_response.json")
    payload["Invoices"][0]["Type"] = "ACCPAY"
    assert len(mapping.parse_records("Invoices", payload)) == 2


def test_payments_sample_maps_invoice_and_credit_note_targets() -> None:
    to_invoice, refund = mapping.parse_records("Payments", load("xero_payments_response.json"))
    assert to_invoice.external_id == "99ea7f6b-c513-4066-bc27-b7c65dcd76c2"
    assert to_invoice.applications == (
        Application("invoice", "046d8a6d-1ae1-4b4d-9340-5601bdf41b87", Decimal("46.00")),)
    assert (to_invoice.amount, to_invoice.unapplied, to_invoice.currency) == (
        Decimal("46.00"), Decimal("0.00"), "NZD")
    assert to_invoice.customer_external_id == "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7"
    assert to_invoice.paid_on == date(2018, 11, 29)
    assert not to_invoice.voided
    # ARCREDITPAYMENT: a cash refund of credit note CN-0005 (Xero nests it under "Invoice").
    assert refund.applications == (
        Application("credit_note", "249f15fa-f2a7-4acc-8769-0984103f2225", Decimal("2.00")),)


def test_deleted_payments_are_voided_and_bill_payments_ignored() -> None:
    payload = load("xero_payments_response.json")
    payload["Payments"][0]["Status"] = "DELETED"
    payload["Payments"][1]["PaymentType"] = "ACCPAYPAYMENT"
    [deleted] = mapping.parse_records("Payments", payload)
    assert deleted.voided
    assert deleted.applications == ()


def test_credit_notes_sample_keeps_sales_credit_only() -> None:
    [note] = mapping.parse_records("CreditNotes", load("xero_creditnotes_response.json"))
    assert note.external_id == "249f15fa-f2a7-4acc-8769-0984103f2225"
    assert (note.number, note.status, note.currency) == ("CN-0005", "open", "NZD")
    assert (note.total, note.remaining) == (Decimal("34.50"), Decimal("32.50"))
    assert note.issue_date == date(2019, 3, 5)
    assert note.applications == ()


def test_credit_note_allocations_become_applications() -> None:
    payload = load("xero_creditnotes_response.json")
    payload["CreditNotes"][0]["Allocations"] = [
        {"Amount": Decimal("10.5"), "Invoice": {"InvoiceID": "inv-1"}},
        {"Amount": Decimal("3"), "Invoice": {"InvoiceID": "inv-2"}, "IsDeleted": True}]
    [note] = mapping.parse_records("CreditNotes", payload)
    assert note.applications == (Application("invoice", "inv-1", Decimal("10.50")),)


def test_contacts_example_maps_email_phone_and_status(spec: Any) -> None:
    payload = example(spec, "/Contacts")
    payload["Contacts"][1]["ContactStatus"] = "ARCHIVED"
    kat, lisa = mapping.parse_records("Contacts", payload)
    assert kat.email == "kat.warren@clampett.com"
    assert kat.phone == "(626) 847-1294"
    assert kat.active
    assert not lisa.active
    assert kat.updated_at == datetime(2017, 8, 21, 20, 49, 4, 227000, tzinfo=UTC)


def test_contact_person_email_is_used_when_the_contact_has_none() -> None:
    [c] = mapping.parse_records("Contacts", {"Contacts": [{
        "ContactID": "c1", "Name": "Acme", "ContactStatus": "ACTIVE", "DefaultCurrency": "GBP",
        "ContactPersons": [{"EmailAddress": "no@x.io", "IncludeInEmails": False},
                           {"EmailAddress": "ap@acme.io", "IncludeInEmails": True}]}]})
    assert (c.email, c.currency, c.phone) == ("ap@acme.io", "GBP", None)


def test_organisation_example_maps_to_company_info(spec: Any) -> None:
    info = mapping.to_company(example(spec, "/Organisation"))
    assert (info.name, info.currency, info.country, info.timezone) == (
        "Dev Evangelist - Sid Test 3 (NZ-2016-02)", "NZD", "NZ", "Pacific/Auckland")


def test_every_xero_timezone_maps_to_a_real_iana_zone(spec: Any) -> None:
    enum = spec["components"]["schemas"]["TimeZone"]["enum"]
    assert set(enum) == set(WINDOWS_TO_IANA)
    for name in enum:
        ZoneInfo(mapping.iana_timezone(name))  # raises if the zone does not exist
    assert mapping.iana_timezone("UTC+12") == "Etc/GMT-12"


def test_unknown_timezone_falls_back_to_utc(caplog: pytest.LogCaptureFixture) -> None:
    assert mapping.iana_timezone("MARSSTANDARDTIME") == "UTC"
    assert "MARSSTANDARDTIME" in caplog.text


@pytest.mark.parametrize(("value", "expected"), [
    ("/Date(1541176290160+0000)/", datetime(2018, 11, 2, 16, 31, 30, 160000, tzinfo=UTC)),
    ("/Date(1551812506620)/", datetime(2019, 3, 5, 19, 1, 46, 620000, tzinfo=UTC)),
    ("/Date(1541176290160+1300)/", datetime(2018, 11, 2, 16, 31, 30, 160000, tzinfo=UTC)),
    ("2019-12-07T18:46:19.5165400", datetime(2019, 12, 7, 18, 46, 19, 516540, tzinfo=UTC)),
    ("2018-11-02T16:31:30Z", datetime(2018, 11, 2, 16, 31, 30, tzinfo=UTC)),
    (None, None), ("", None),
])
def test_parse_datetime(value: str | None, expected: datetime | None) -> None:
    assert mapping.parse_datetime(value) == expected


def test_money_is_exact_and_follows_the_currency() -> None:
    assert mapping.money(Decimal("0.1") + Decimal("0.2"), "NZD") == Decimal("0.30")
    assert str(mapping.money(0.1, "USD")) == "0.10"  # a float goes through str, not binary
    assert str(mapping.money(Decimal("1000.00"), "JPY")) == "1000"
    assert str(mapping.money(Decimal("1.2345"), "KWD")) == "1.235"


def test_unparseable_payloads_raise_malformed() -> None:
    with pytest.raises(MalformedPayloadError):
        mapping.loads(b"<html>502</html>")
    with pytest.raises(MalformedPayloadError):
        mapping.parse_records("Invoices", {"Invoices": [{"Type": "ACCREC", "Status": "X"}]})
    with pytest.raises(MalformedPayloadError):
        mapping.parse_records("Invoices", {"Nothing": []})


def _sdk_error(status: int, body: Any = None, headers: dict[str, str] | None = None,
               ) -> HTTPStatusException:
    raw = urllib3.HTTPResponse(body=json.dumps(body).encode() if body is not None else b"",
                               status=status, headers=headers or {}, preload_content=True)
    return HTTPStatusException(http_resp=RESTResponse(raw))


def _requests_error(status: int, body: Any) -> requests.HTTPError:
    resp = requests.Response()
    resp.status_code, resp._content = status, json.dumps(body).encode()
    return requests.HTTPError(response=resp)


def test_map_error_covers_every_documented_shape() -> None:
    m = map_error
    assert isinstance(m(_sdk_error(401, sample("xero_401_token_expired.json"))), AuthError)
    forbidden = m(_sdk_error(403, sample("xero_403_auth_unsuccessful.json")))
    assert isinstance(forbidden, AuthError)
    assert "AuthenticationUnsuccessful" in str(forbidden)
    limited = m(_sdk_error(429, {}, {"Retry-After": "37", "X-Rate-Limit-Problem": "Minute"}))
    assert isinstance(limited, RateLimitedError)
    assert (limited.retry_after, limited.problem) == (37.0, "minute")
    bad = m(_sdk_error(400, sample("xero_validation_error_400.json")))
    assert type(bad) is PermanentError
    assert "already assigned" in str(bad)
    assert isinstance(m(_sdk_error(503, None)), TransientError)
    assert isinstance(m(_sdk_error(400, None)), PermanentError)  # not JSON: still a 400
    assert isinstance(m(urllib3.exceptions.NewConnectionError(None, "refused")), TransientError)
    assert isinstance(m(requests.ConnectionError("reset")), TransientError)
    assert isinstance(m(_requests_error(400, sample("xero_oauth_invalid_grant.json"))), AuthError)
    assert isinstance(m(_requests_error(400, {"error": "invalid_client"})), ConfigError)
    assert isinstance(m(_requests_error(502, {})), TransientError)
