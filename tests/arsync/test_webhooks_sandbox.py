"""The sandboxes' webhook senders: format, signature, who gets notified, retries, ITR."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from arsync.clock import SimClock
from arsync.sandbox._http import Request, Response, SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.sandbox.xero import XeroSandbox
from arsync.webhooks import parse_quickbooks, parse_xero, verify_signature

NOW = datetime(2026, 3, 17, 15, 0, tzinfo=UTC)
REALM, OTHER = "1234567890", "2222222222"
TENANT = "5b4a0a58-3e0c-4c29-9a55-0d9bb1f1f0aa"
VERIFIER, KEY = "verifier-for-tests", "xero-key-for-tests"


class Receiver:
    """A webhook endpoint: records what arrives, answers ``status`` (or checks a signature)."""

    def __init__(self) -> None:
        self.received: list[Request] = []
        self.status = 200
        self.check_key: str | None = None

    def __call__(self, request: Request) -> Response:
        self.received.append(request)
        if self.check_key is not None:
            try:
                verify_signature(self.check_key, request.body,
                                 request.headers.get("x-xero-signature"))
            except Exception:
                return Response(401, b"", {})
        return Response(self.status, b"", {})


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with SandboxServer(rec) as server:
        yield rec, f"{server.url}/hook"


@pytest.fixture
def qbo() -> QuickBooksSandbox:
    sandbox = QuickBooksSandbox(clock=SimClock(NOW), rate_limits=False)
    sandbox.add_company(REALM, name="Connected Co", customers=2, invoices=3)
    sandbox.add_company(OTHER, name="Not Connected Co", customers=2, invoices=3, seed=2)
    sandbox.mint_refresh_token(REALM)  # only REALM is connected to the app
    return sandbox


def test_quickbooks_legacy_batch_is_signed_and_only_for_connected_realms(
        qbo: QuickBooksSandbox, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    sender = qbo.send_webhooks(url, VERIFIER, background=False)
    assert sender.flush() == 0 and rec.received == []  # existing books are not news
    inv = qbo.create_invoice(REALM, "1", Decimal("10.00"), due_date=date(2026, 4, 1))
    qbo.record_payment(REALM, inv)
    qbo.create_invoice(OTHER, "1", Decimal("10.00"), due_date=date(2026, 4, 1))
    assert sender.flush() == 1
    [request] = rec.received
    verify_signature(VERIFIER, request.body, request.headers.get("intuit-signature"))
    events = parse_quickbooks(request.body)
    assert {e.tenant_id for e in events} == {REALM}
    ops = {(e.entity, e.entity_id, e.operation) for e in events}
    assert ("Invoice", inv, "Create") in ops and any(e[0] == "Payment" for e in ops)
    assert sender.flush() == 0  # nothing new


def test_quickbooks_cloudevents_and_void_delete(qbo: QuickBooksSandbox,
                                                receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    sender = qbo.send_webhooks(url, VERIFIER, cloudevents=True, background=False)
    open_ids = qbo.open_invoice_ids(REALM)
    qbo.void_invoice(REALM, open_ids[0])
    sender.flush()
    [request] = rec.received
    assert request.headers.get("content-type") == "application/cloudevents+json"
    body = json.loads(request.body)
    assert isinstance(body, list) and body[0]["specversion"] == "1.0"
    assert body[0]["type"] == "qbo.invoice.voided.v1"
    assert body[0]["intuitaccountid"] == REALM and body[0]["intuitentityid"] == open_ids[0]


def test_quickbooks_failed_delivery_is_retried_in_order(qbo: QuickBooksSandbox,
                                                       receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.status = 500
    sender = qbo.send_webhooks(url, VERIFIER, background=False)
    first = qbo.create_invoice(REALM, "1", Decimal("1.00"), due_date=date(2026, 4, 1))
    assert sender.flush() == 0 and sender.undelivered == 1
    second = qbo.create_invoice(REALM, "2", Decimal("2.00"), due_date=date(2026, 4, 1))
    rec.status = 200
    assert sender.flush() == 2 and sender.undelivered == 0
    ids = [e.entity_id for r in rec.received[1:] for e in parse_quickbooks(r.body)]
    assert ids == [first, second]  # the retried delivery first


def test_xero_intent_to_receive_gates_delivery(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    sandbox = XeroSandbox(clock=SimClock(NOW), rate_limits=False)
    sandbox.add_organisation(TENANT, name="Kiwi", contacts=3, invoices=12)
    sandbox.mint_refresh_token([TENANT])
    # An endpoint that answers 200 to everything fails the check: it must refuse bad signatures.
    lax = sandbox.send_webhooks(url, KEY, background=False)
    assert not lax.intent_to_receive_ok
    sandbox.record_payment(TENANT, sandbox.open_invoice_ids(TENANT)[0], Decimal("1.00"))
    assert lax.flush() == 0 and len(rec.received) == 2  # just the two ITR requests
    body = json.loads(rec.received[0].body)
    assert body["events"] == [] and body["firstEventSequence"] == 0

    rec.check_key = KEY
    sender = sandbox.send_webhooks(url, KEY, background=False)
    assert sender.intent_to_receive_ok
    paid = sandbox.open_invoice_ids(TENANT)[0]
    sandbox.record_payment(TENANT, paid, Decimal("1.00"))
    assert sender.flush() == 1
    last = rec.received[-1]
    verify_signature(KEY, last.body, last.headers.get("x-xero-signature"))
    events = parse_xero(last.body)
    assert ("INVOICE", paid, "UPDATE") in {(e.entity, e.entity_id, e.operation) for e in events}
    doc = json.loads(last.body)
    assert doc["firstEventSequence"] == 1 and doc["lastEventSequence"] == len(events)


def test_xero_not_connected_organisation_gets_no_events(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.check_key = KEY
    sandbox = XeroSandbox(clock=SimClock(NOW), rate_limits=False)
    sandbox.add_organisation(TENANT, name="Kiwi", contacts=3, invoices=3)
    sender = sandbox.send_webhooks(url, KEY, background=False)
    sandbox.record_payment(TENANT, sandbox.open_invoice_ids(TENANT)[0])
    assert sender.flush() == 0 and len(rec.received) == 2  # ITR only
