"""The Xero sandbox's responses validated against Xero's official OpenAPI spec (openapi-core).

Two checks beyond openapi-core's schema validation: every field the sandbox sends must be one the
spec (or Xero's own examples) knows, since the schemas allow any extra property and would let a
misspelt field through; and every ``x-is-msdate`` / ``x-is-msdate-time`` field must be a
``/Date(...)/`` string (those are plain strings in the spec, so no format checker sees them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.validation.response.exceptions import InvalidData

from arsync.clock import SimClock
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.xero import XeroSandbox
from arsync.sandbox.xero_model import Organisation

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "xero" / \
    "xero_accounting.yaml"
TENANT = "3b0e8a2c-1f6b-4a0e-9a51-1c2d3e4f5a6b"
MSDATE = re.compile(r"/Date\(-?\d+([+-]\d{4})?\)/")
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
# Xero's own example payloads (from the same spec), and the operation each answers
EXAMPLES = {
    "xero_invoices_response.json": ("/Invoices", "GET", 200),
    "xero_invoice_by_id_response.json": ("/Invoices/{InvoiceID}", "GET", 200),
    "xero_payments_response.json": ("/Payments", "GET", 200),
    "xero_creditnotes_response.json": ("/CreditNotes", "GET", 200),
    "xero_online_invoice_response.json": ("/Invoices/{InvoiceID}/OnlineInvoice", "GET", 200),
    "xero_history_create_response.json": ("/Invoices/{InvoiceID}/History", "PUT", 200),
    "xero_history_get_response.json": ("/Invoices/{InvoiceID}/History", "GET", 200),
    "xero_validation_error_400.json": ("/Contacts", "PUT", 400),
}


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    # Xero's spec does not pass openapi-spec-validator itself (boolean fields with the string
    # default 'false'), so it is loaded without validating the spec.
    return OpenAPI.from_path(SPEC_PATH, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader


class Live:
    """A seeded sandbox behind a server, with an access token for its one organisation."""

    def __init__(self) -> None:
        clock = SimClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
        self.sandbox = XeroSandbox(clock=clock, rate_limits=False)
        self.sandbox.add_organisation(TENANT, name="Spec Check Ltd", contacts=40, invoices=300,
                                      seed=5)
        self.org: Organisation = self.sandbox.organisation(TENANT)
        self.server = SandboxServer(self.sandbox)
        self.server.start()
        refresh_token = self.sandbox.mint_refresh_token([TENANT])
        token = requests.post(f"{self.server.url}/connect/token", timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": "sandbox-xero-client", "client_secret": "sandbox-xero-secret"})
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}",
                        "xero-tenant-id": TENANT, "Accept": "application/json"}

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None) -> tuple[requests.PreparedRequest, requests.Response]:
        response = requests.request(method, f"{self.server.url}/api.xro/2.0/{path}",
                                    params=params, json=body, headers=self.headers, timeout=10)
        # the same request as Xero would have received it (the spec's server URL)
        query = f"?{urlencode(params)}" if params else ""
        as_xero = requests.Request(method, f"https://api.xero.com/api.xro/2.0/{path}{query}",
                                   json=body, headers=self.headers).prepare()
        return as_xero, response

    def invoice(self, test: Callable[[Any], bool]) -> str:
        return next(i.invoice_id for i in sorted(self.org.invoices.values(), key=lambda i: i.number)
                    if test(i))


@pytest.fixture(scope="module")
def known_extras(document: dict[str, Any]) -> frozenset[str]:
    """Keys that Xero's own examples carry although the schemas do not declare them."""
    problems: list[str] = []
    for name, (template, method, status) in EXAMPLES.items():
        body = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
        _walk(document, _response_schema(document, template, method, status), body, "$",
              problems)
    return frozenset(p.split(".")[-1].split(" ")[0] for p in problems)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    env = Live()
    yield env
    env.server.stop()


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _response_schema(document: dict[str, Any], template: str, method: str,
                     status: int) -> dict[str, Any]:
    response = _resolve(document, document["paths"][template][method.lower()]["responses"]
                        [str(status)])
    return _resolve(document, response["content"]["application/json"]["schema"])


def _walk(document: dict[str, Any], schema: dict[str, Any], value: Any, where: str,
          problems: list[str], known: frozenset[str] = frozenset()) -> None:
    """Report undeclared keys (other than ``known`` ones) and malformed /Date(...)/ values."""
    schema = _resolve(document, schema)
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            prop = schema["properties"].get(key)
            if prop is None:
                if key not in known:
                    problems.append(f"{where}.{key} is not in the spec")
                continue
            if key == "Elements":  # a 400 echoes the submitted element, whatever it held
                continue
            if (prop.get("x-is-msdate") or prop.get("x-is-msdate-time")) and not (
                    isinstance(item, str) and MSDATE.fullmatch(item)):
                problems.append(f"{where}.{key} = {item!r} is not a /Date(...)/ value")
            _walk(document, prop, item, f"{where}.{key}", problems, known)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _walk(document, schema["items"], item, f"{where}[{i}]", problems, known)


Case = Callable[[Live], tuple[str, str, str, dict[str, Any] | None, Any, int]]
# (method, spec path template, concrete path, query, JSON body, expected status)
CASES: dict[str, Case] = {
    "invoices paged": lambda e: ("GET", "/Invoices", "Invoices", {"page": 1, "pageSize": 40},
                                 None, 200),
    "invoices unpaged": lambda e: ("GET", "/Invoices", "Invoices",
                                   {"where": 'Type=="ACCREC"', "Statuses": "PAID,DELETED"},
                                   None, 200),
    "invoices summary": lambda e: ("GET", "/Invoices", "Invoices",
                                   {"summaryOnly": "true", "pageSize": 30}, None, 200),
    "invoice paid with credit": lambda e: (
        "GET", "/Invoices/{InvoiceID}",
        f"Invoices/{e.invoice(lambda i: i.status == 'PAID' and i.allocations)}", None, None, 200),
    "invoice part paid": lambda e: (
        "GET", "/Invoices/{InvoiceID}",
        f"Invoices/{e.invoice(lambda i: i.status == 'AUTHORISED' and i.amount_paid)}",
        {"unitdp": 4}, None, 200),
    "bill": lambda e: ("GET", "/Invoices/{InvoiceID}",
                       f"Invoices/{e.invoice(lambda i: i.type == 'ACCPAY')}", None, None, 200),
    "contacts": lambda e: ("GET", "/Contacts", "Contacts",
                           {"page": 1, "includeArchived": "true"}, None, 200),
    "contact": lambda e: ("GET", "/Contacts/{ContactID}",
                          f"Contacts/{next(iter(e.org.contacts))}", None, None, 200),
    "payments": lambda e: ("GET", "/Payments", "Payments", None, None, 200),
    "credit notes": lambda e: ("GET", "/CreditNotes", "CreditNotes", {"page": 1}, None, 200),
    "organisation": lambda e: ("GET", "/Organisation", "Organisation", None, None, 200),
    "online invoice": lambda e: (
        "GET", "/Invoices/{InvoiceID}/OnlineInvoice",
        f"Invoices/{e.invoice(lambda i: i.type == 'ACCREC' and i.status == 'AUTHORISED')}"
        "/OnlineInvoice", None, None, 200),
    "history": lambda e: (
        "GET", "/Invoices/{InvoiceID}/History",
        f"Invoices/{e.invoice(lambda i: i.status == 'PAID')}/History", None, None, 200),
    "history created": lambda e: (
        "PUT", "/Invoices/{InvoiceID}/History",
        f"Invoices/{e.invoice(lambda i: i.status == 'AUTHORISED')}/History", None,
        {"HistoryRecords": [{"Details": "Reminder 1 sent by arsync"}]}, 200),
    "history too long": lambda e: (
        "PUT", "/Invoices/{InvoiceID}/History",
        f"Invoices/{e.invoice(lambda i: i.status == 'AUTHORISED')}/History", None,
        {"HistoryRecords": [{"Details": "x" * 251}]}, 400),
    "invoice created": lambda e: (
        "PUT", "/Invoices", "Invoices", None,
        {"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": next(iter(e.org.contacts))},
                       "DueDate": "2026-12-20", "Status": "AUTHORISED",
                       "LineItems": [{"Description": "Service", "Quantity": 1,
                                      "UnitAmount": 99.5, "AccountCode": "200"}]}]}, 200),
    "invoice refused": lambda e: ("PUT", "/Invoices", "Invoices", None,
                                  {"Invoices": [{"Type": "ACCREC"}]}, 400),
    "payment created": lambda e: (
        "PUT", "/Payments", "Payments", None,
        {"Invoice": {"InvoiceID": e.invoice(lambda i: i.status == "AUTHORISED"
                                            and i.type == "ACCREC")},
         "Account": {"Code": "090"}, "Amount": 1.25, "Date": "2026-11-20"}, 200),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_response_matches_the_spec(case: str, live: Live, spec: OpenAPI,
                                   document: dict[str, Any],
                                   known_extras: frozenset[str]) -> None:
    method, template, path, params, body, status = CASES[case](live)
    request, response = live.call(method, path, params, body)
    assert response.status_code == status, response.text
    spec.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response))
    problems: list[str] = []
    _walk(document, _response_schema(document, template, method, status), response.json(),
          "$", problems, known_extras)
    assert problems == []


def test_the_checks_can_fail(spec: OpenAPI, document: dict[str, Any]) -> None:
    """openapi-core rejects a wrong type or enum, and the walk catches what schemas let through."""
    request = requests.Request("GET", "https://api.xero.com/api.xro/2.0/Invoices",
                               headers={"xero-tenant-id": TENANT}).prepare()
    wrong = requests.Response()
    wrong.status_code, wrong._content = 200, b'{"Invoices":[{"Status":"LOST","Total":"1.00"}]}'
    wrong.headers["Content-Type"] = "application/json"
    with pytest.raises(InvalidData):
        spec.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(wrong))
    schema = _response_schema(document, "/Invoices", "GET", 200)
    problems: list[str] = []
    _walk(document, schema, {"Invoices": [{"InvoiceNumbr": "INV-1", "DueDate": "2026-01-01",
                                           "UpdatedDateUTC": "/Date(1541176290160+0000)/"}]},
          "$", problems)
    assert problems == ["$.Invoices[0].InvoiceNumbr is not in the spec",
                        "$.Invoices[0].DueDate = '2026-01-01' is not a /Date(...)/ value"]
