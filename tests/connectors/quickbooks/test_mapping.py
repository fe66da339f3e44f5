"""Every QuickBooks sample payload maps into arsync's types with the right values."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from quickbooks import exceptions as qbx

from arsync.domain import Application, InvoiceStatus
from arsync.errors import AuthError, ConflictError, MalformedPayloadError, RateLimitedError
from connectors.quickbooks import mapping
from tests.conftest import SAMPLES, sample


def usd() -> str:
    return "USD"


def test_invoice_read_sample() -> None:
    inv = mapping.to_invoice(sample("qbo_invoice_read.json")["Invoice"], usd)
    assert inv.external_id == "130" and inv.number == "1037"
    assert inv.customer_external_id == "24" and inv.customer_name == "Sonnenschein Family Store"
    assert inv.total == Decimal("362.07") and inv.balance == Decimal("362.07")
    assert inv.status is InvoiceStatus.OPEN
    assert inv.issue_date == date(2014, 9, 19) and inv.due_date == date(2014, 10, 19)
    assert inv.billing_email == "Familiystore@intuit.com"
    assert inv.version == "0"
    assert inv.updated_at is not None and inv.updated_at.utcoffset() is not None


def test_money_is_never_float() -> None:
    # Parsed the way python-quickbooks does with use_decimal=True.
    raw = json.loads((SAMPLES / "qbo_invoice_read.json").read_text(), parse_float=Decimal)
    inv = mapping.to_invoice(raw["Invoice"], usd)
    assert isinstance(inv.total, Decimal) and str(inv.total) == "362.07"


def test_query_response_sample() -> None:
    rows = sample("qbo_invoice_query_response.json")["QueryResponse"]["Invoice"]
    invoices = [mapping.to_invoice(r, usd) for r in rows]
    assert [i.external_id for i in invoices] == ["239"]
    assert invoices[0].total == Decimal("150")


def test_voided_invoice_sample_is_voided_not_paid() -> None:
    inv = mapping.to_invoice(sample("qbo_invoice_void_response.json")["Invoice"], usd)
    assert inv.status is InvoiceStatus.VOIDED
    assert inv.balance == 0 and inv.currency == "USD"  # no CurrencyRef: the home currency


def test_paid_invoice_is_paid() -> None:
    raw = dict(sample("qbo_invoice_read.json")["Invoice"], Balance=0)
    assert mapping.to_invoice(raw, usd).status is InvoiceStatus.PAID


def test_delete_response_sample_is_a_tombstone() -> None:
    assert mapping.is_deleted(sample("qbo_invoice_delete_response.json")["Invoice"])


def test_payment_sample_lists_what_it_paid() -> None:
    pay = mapping.to_payment(sample("qbo_payment_read.json")["Payment"], usd)
    assert pay.amount == Decimal("65") and pay.unapplied == Decimal("10")
    assert pay.applications == (Application("invoice", "70", Decimal("55")),)
    assert not pay.voided and pay.paid_on == date(2015, 1, 16)


def test_cdc_sample_splits_by_entity_and_flags_deletions() -> None:
    found = mapping.split_cdc(sample("qbo_cdc_response.json"), ["Customer", "Estimate", "Invoice"])
    assert [r["Id"] for r in found["Customer"]] == ["63", "99"]
    assert [mapping.is_deleted(r) for r in found["Estimate"]] == [False, False, True]
    assert found["Invoice"] == []
    # The documentation's sample abbreviates customers to their Id; a real CDC answer carries
    # the whole object, so a nameless customer is refused clearly rather than mirrored blank.
    with pytest.raises(MalformedPayloadError, match="Customer 63 has no DisplayName"):
        mapping.to_customer(found["Customer"][0])


@pytest.mark.parametrize("bad", [{"CDCResponse": []}, {"nope": 1}, {"CDCResponse": [None]}])
def test_malformed_cdc_is_refused(bad: dict) -> None:
    with pytest.raises(MalformedPayloadError):
        mapping.split_cdc(bad, ["Invoice"])


@pytest.mark.parametrize(("raw", "message"), [
    ({"Id": "1", "TotalAmt": "lots", "CustomerRef": {"value": "2"}}, "not an amount"),
    ({"Id": "1", "TotalAmt": 5, "CustomerRef": {"value": "2"}, "TxnDate": "2026-13-01"},
     "not a date"),
    ({"TotalAmt": 5}, "without an Id"),
    ({"Id": "1", "TotalAmt": 5}, "no CustomerRef"),
    ({"Id": "1", "TotalAmt": 5, "CustomerRef": {"value": "2"},
      "MetaData": {"LastUpdatedTime": "2026-01-01T10:00:00"}}, "no UTC offset"),
])
def test_malformed_invoice_is_refused(raw: dict, message: str) -> None:
    with pytest.raises(MalformedPayloadError, match=message):
        mapping.to_invoice(raw, usd)


@pytest.mark.parametrize(("exc", "kind"), [
    (qbx.QuickbooksException("Stale Object Error", 5010, "You and x were working"), ConflictError),
    (qbx.ValidationException("ThrottleExceeded", 3001, ""), RateLimitedError),
    (qbx.AuthorizationException("AuthenticationFailed", 3200, ""), AuthError),
    (qbx.QuickbooksException("Error reading json response: <html>", 10000),
     MalformedPayloadError),
])
def test_sdk_errors_map_to_retry_semantics(exc: qbx.QuickbooksException, kind: type) -> None:
    assert isinstance(mapping.map_sdk_error(exc), kind)


def test_fault_samples_carry_their_codes() -> None:
    assert mapping.fault_codes(sample("qbo_fault_stale_object_CONSTRUCTED.json")["Fault"]) == [5010]
    assert mapping.fault_codes(sample("qbo_fault_throttle_429_CONSTRUCTED.json")["Fault"]) == [3001]
    assert mapping.fault_codes(sample("qbo_fault_401_CONSTRUCTED.json")["fault"]) == [3200]
