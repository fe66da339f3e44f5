"""Webhook logic: signatures on the real samples, parsing, storing once, the targeted refresh."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.errors import InputError, WebhookSignatureError
from arsync.models import Connection, CreditNote, Invoice
from arsync.models_webhooks import WebhookEvent
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.sandbox.xero import XeroSandbox
from arsync.sync import sync_connection
from arsync.webhooks import (
    MAX_ATTEMPTS,
    parse_quickbooks,
    parse_xero,
    process_webhook_events,
    record_events,
    signature,
    verify_signature,
)
from tests.conftest import SAMPLES, sample

NOW = datetime(2026, 3, 17, 15, 0, tzinfo=UTC)
REALM = "9341453050417211"
TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"


def raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# --- signatures and parsing (pure) ---------------------------------------------------------------


def test_documented_signatures_verify() -> None:
    qbo = sample("qbo_webhook_legacy.signature.json")
    body = raw(qbo["body_file"])
    verify_signature(qbo["verifier_token"], body, qbo["intuit-signature"])
    xero = sample("xero_webhook_itr.signature.json")
    verify_signature(xero["webhook_key_MADE_UP"], raw(xero["body_file"]), xero["x-xero-signature"])
    assert signature(qbo["verifier_token"], body) == qbo["intuit-signature"]


@pytest.mark.parametrize(("secret", "body", "given"), [
    ("b5771f19b12ddb4bcdb9f08bdc50bc63878a", b"{}", "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="),
    ("wrong", raw("qbo_webhook_legacy.json"), "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="),
    ("b5771f19b12ddb4bcdb9f08bdc50bc63878a", raw("qbo_webhook_legacy.json"), None),
    ("b5771f19b12ddb4bcdb9f08bdc50bc63878a", raw("qbo_webhook_legacy.json"), "é"),
    (None, raw("qbo_webhook_legacy.json"), "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="),
])
def test_bad_signatures_fail(secret: str | None, body: bytes, given: str | None) -> None:
    with pytest.raises(WebhookSignatureError):
        verify_signature(secret, body, given)


def test_parse_quickbooks_legacy_and_cloudevents() -> None:
    [legacy] = parse_quickbooks(raw("qbo_webhook_legacy.json"))
    assert (legacy.tenant_id, legacy.entity, legacy.entity_id, legacy.operation) == (
        "1185883450", "Customer", "1", "Create")
    assert legacy.occurred_at == datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC)
    [blog] = parse_quickbooks(raw("qbo_webhook_legacy_blog.json"))
    assert (blog.tenant_id, blog.entity, blog.operation) == ("310687", "Account", "Create")
    [ce] = parse_quickbooks(raw("qbo_webhook_cloudevents.json"))
    assert (ce.tenant_id, ce.entity, ce.entity_id, ce.operation) == (
        "310687", "account", "1234", "created")
    assert ce.dedupe_key == "ce:88cd52aa-33b6-4351-9aa4-47572edbd068"
    assert ce.occurred_at == datetime(2025, 9, 10, 21, 31, 25, 179851, tzinfo=UTC)


def test_parse_quickbooks_merge_reports_the_merged_away_record() -> None:
    body = json.dumps({"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [
        {"name": "Customer", "id": "7", "operation": "Merge", "deletedId": "9",
         "lastUpdated": "2026-01-01T00:00:00.000Z"}]}}]}).encode()
    events = parse_quickbooks(body)
    assert [(e.entity_id, e.operation) for e in events] == [("7", "Merge"), ("9", "Delete")]


def test_parse_xero_samples() -> None:
    [contact] = parse_xero(raw("xero_webhook_contact_event.json"))
    assert (contact.entity, contact.operation, contact.tenant_id) == ("CONTACT", "UPDATE", TENANT)
    assert contact.occurred_at == datetime(2024, 6, 21, 1, 15, 39, 902000, tzinfo=UTC)
    [note] = parse_xero(raw("xero_webhook_creditnote_event.json"))
    assert (note.entity, note.operation) == ("CREDITNOTE", "CREATE")
    assert parse_xero(raw("xero_webhook_itr.json")) == []
    [inv] = parse_xero(raw("xero_webhook_invoice_event_CONSTRUCTED.json"))
    assert inv.entity_id == "d4956132-ed94-4dd7-9eaa-aa22dfdf06f2"


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"events": 3}', b"[{}]",
                                  b'[{"id": "x", "type": "nonsense"}]'])
def test_unparseable_bodies_are_input_errors(body: bytes) -> None:
    with pytest.raises(InputError):
        parse_xero(body) if body.startswith(b'{"events"') else parse_quickbooks(body)


# --- storing once (both databases) ---------------------------------------------------------------


@pytest.fixture
def db_ctx(engine: Engine, tmp_path: Path) -> AppContext:
    """An AppContext over the parametrized real database (SQLite, then PostgreSQL)."""
    ctx = AppContext(Settings(_env_file=None, home=tmp_path / "h",  # type: ignore[call-arg]
                              secret_key="s" * 32), clock=SimClock(NOW))
    ctx.__dict__["engine"] = engine  # the cached_property's slot
    with Session(engine) as s, s.begin():
        s.add(Connection(provider="xero", tenant_id=TENANT, name="Kiwi", created_at=NOW))
    return ctx


def count(ctx: AppContext, status: str | None = None) -> int:
    query = select(func.count()).select_from(WebhookEvent)
    if status:
        query = query.where(WebhookEvent.status == status)
    with Session(ctx.engine) as s:
        return s.scalar(query) or 0


def test_events_are_stored_once(db_ctx: AppContext) -> None:
    events = parse_xero(raw("xero_webhook_contact_event.json"))
    assert record_events(db_ctx, "xero", events, NOW) == 1
    assert record_events(db_ctx, "xero", events, NOW) == 0
    assert record_events(db_ctx, "xero", events + events, NOW) == 0
    assert count(db_ctx, "pending") == 1


def test_concurrent_deliveries_of_one_event_store_it_once(db_ctx: AppContext) -> None:
    events = parse_xero(raw("xero_webhook_invoice_event_CONSTRUCTED.json"))
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        record_events(db_ctx, "xero", events, NOW))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 1 and count(db_ctx) == 1


def test_unknown_company_and_unmirrored_entities_are_ignored(db_ctx: AppContext) -> None:
    assert record_events(db_ctx, "xero", parse_xero(raw("xero_webhook_creditnote_event.json")),
                         NOW) == 1  # tenant aef86862... is not connected
    assert record_events(db_ctx, "quickbooks", parse_quickbooks(raw(
        "qbo_webhook_cloudevents.json")), NOW) == 1
    assert count(db_ctx, "ignored") == 2 and count(db_ctx, "pending") == 0
    report = process_webhook_events(db_ctx, NOW)
    assert report.events == 0 and not report.errors  # nothing to do, no error loop


# --- the targeted refresh, against the sandboxes over HTTP ---------------------------------------


def _qbo_ctx(url: str, tmp_path: Path, clock: SimClock) -> AppContext:
    return AppContext(Settings(  # type: ignore[call-arg]
        _env_file=None, home=tmp_path / "home", secret_key="q" * 32,
        quickbooks_client_id="sandbox-qbo-client", quickbooks_client_secret="sandbox-qbo-secret",
        quickbooks_api_url=url, quickbooks_token_url=f"{url}/oauth2/v1/tokens/bearer",
        quickbooks_revoke_url=f"{url}/oauth2/v1/tokens/revoke",
        quickbooks_auth_url=f"{url}/connect/oauth2"), clock=clock)


@pytest.fixture
def qbo_world(tmp_path: Path) -> Iterator[tuple[QuickBooksSandbox, AppContext, int]]:
    clock = SimClock(NOW)
    sandbox = QuickBooksSandbox(clock=clock, rate_limits=False)
    sandbox.add_company(REALM, name="Birch Studio", customers=5, invoices=40)
    with SandboxServer(sandbox) as server:
        ctx = _qbo_ctx(server.url, tmp_path, clock)
        [conn] = connect_with_refresh_token(ctx, "quickbooks", sandbox.mint_refresh_token(REALM),
                                            tenant_id=REALM)
        sync_connection(ctx.engine, conn.id or 0, ctx.connector_for(conn), clock)
        clock.advance(timedelta(minutes=1))
        yield sandbox, ctx, conn.id or 0


def legacy(*entities: tuple[str, str, str]) -> bytes:
    return json.dumps({"eventNotifications": [{"realmId": REALM, "dataChangeEvent": {
        "entities": [{"name": n, "id": i, "operation": op,
                      "lastUpdated": "2026-03-17T15:01:00.000Z"} for n, i, op in entities]}}]
    }).encode()


def mirrored(ctx: AppContext, invoice_id: str) -> Invoice:
    with Session(ctx.engine) as s:
        return s.scalars(select(Invoice).where(Invoice.external_id == invoice_id)).one()


def test_payment_event_refreshes_the_payment_and_the_invoice_it_pays(
        qbo_world: tuple[QuickBooksSandbox, AppContext, int]) -> None:
    sandbox, ctx, _ = qbo_world
    invoice_id = sandbox.open_invoice_ids(REALM)[0]
    assert mirrored(ctx, invoice_id).balance > 0
    payment_id = sandbox.record_payment(REALM, invoice_id)
    calls = sandbox.stats[REALM]["api_calls"]
    # Only the Payment is announced: the invoice it pays is read anyway.
    record_events(ctx, "quickbooks", parse_quickbooks(legacy(("Payment", payment_id, "Create"))),
                  ctx.clock.now())
    report = process_webhook_events(ctx)
    assert (report.events, report.errors) == (1, [])
    inv = mirrored(ctx, invoice_id)
    assert (inv.balance, inv.status) == (Decimal("0"), "paid")
    assert sandbox.stats[REALM]["api_calls"] - calls == 2  # payment, then its invoice
    assert count(ctx, "done") == 1


def test_deleted_payment_reopens_the_invoice_it_paid(
        qbo_world: tuple[QuickBooksSandbox, AppContext, int]) -> None:
    sandbox, ctx, _ = qbo_world
    invoice_id = sandbox.open_invoice_ids(REALM)[0]
    owed = mirrored(ctx, invoice_id).balance
    payment_id = sandbox.record_payment(REALM, invoice_id)
    record_events(ctx, "quickbooks", parse_quickbooks(legacy(("Payment", payment_id, "Create"))),
                  ctx.clock.now())
    process_webhook_events(ctx)
    assert mirrored(ctx, invoice_id).status == "paid"
    sandbox.delete_payment(REALM, payment_id)
    # Only the deleted payment is announced; the mirror remembers which invoice it paid.
    body = legacy(("Payment", payment_id, "Delete")).replace(b"15:01:00", b"15:02:00")
    record_events(ctx, "quickbooks", parse_quickbooks(body), ctx.clock.now())
    assert process_webhook_events(ctx).errors == []
    inv = mirrored(ctx, invoice_id)
    assert (inv.balance, inv.status) == (owed, "open")


def test_customer_and_credit_memo_events_are_fetched_by_id(
        qbo_world: tuple[QuickBooksSandbox, AppContext, int]) -> None:
    sandbox, ctx, _ = qbo_world
    invoice_id = sandbox.open_invoice_ids(REALM)[0]
    memo = sandbox.apply_credit_memo(REALM, invoice_id, Decimal("5.00"))
    record_events(ctx, "quickbooks", parse_quickbooks(legacy(
        ("Customer", "1", "Update"), ("CreditMemo", memo, "Create"))), ctx.clock.now())
    report = process_webhook_events(ctx)
    assert report.errors == [] and report.records == 2
    with Session(ctx.engine) as s:
        note = s.scalars(select(CreditNote).where(CreditNote.external_id == memo)).one()
    assert note.total == Decimal("5.00")


def test_delete_event_marks_the_invoice_deleted(
        qbo_world: tuple[QuickBooksSandbox, AppContext, int]) -> None:
    sandbox, ctx, _ = qbo_world
    invoice_id = sandbox.open_invoice_ids(REALM)[-1]
    sandbox.delete_invoice(REALM, invoice_id)
    record_events(ctx, "quickbooks", parse_quickbooks(legacy(("Invoice", invoice_id, "Delete"),
                                                             ("Estimate", "5", "Create"))),
                  ctx.clock.now())
    assert count(ctx, "ignored") == 1  # estimates are not mirrored
    process_webhook_events(ctx)
    assert mirrored(ctx, invoice_id).status == "deleted"


def test_outage_retries_then_gives_up_and_dead_grant_fails_at_once(
        qbo_world: tuple[QuickBooksSandbox, AppContext, int]) -> None:
    sandbox, ctx, _ = qbo_world
    invoice_id = sandbox.open_invoice_ids(REALM)[0]
    record_events(ctx, "quickbooks", parse_quickbooks(legacy(("Invoice", invoice_id, "Update"))),
                  ctx.clock.now())
    sandbox.inject_faults(503, 1000, realm_id=REALM)  # the connector's own retries fail too
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report = process_webhook_events(ctx)
        assert report.errors, attempt
        expected = "failed" if attempt == MAX_ATTEMPTS else "pending"
        assert count(ctx, expected) == 1, (attempt, expected)


def test_crashed_worker_claim_expires_and_is_taken_over(
        qbo_world: tuple[QuickBooksSandbox, AppContext, int]) -> None:
    sandbox, ctx, _ = qbo_world
    invoice_id = sandbox.open_invoice_ids(REALM)[0]
    sandbox.record_payment(REALM, invoice_id)
    record_events(ctx, "quickbooks", parse_quickbooks(legacy(("Invoice", invoice_id, "Update"))),
                  ctx.clock.now())
    with Session(ctx.engine) as s, s.begin():  # a worker claimed it, then died
        s.execute(update(WebhookEvent).values(status="processing", claim_owner="dead",
                                              claim_until=ctx.clock.now() + timedelta(minutes=5)))
    assert process_webhook_events(ctx).events == 0  # still claimed: left alone
    ctx.clock.advance(timedelta(minutes=6))  # type: ignore[attr-defined]
    assert process_webhook_events(ctx).events == 1
    assert mirrored(ctx, invoice_id).status == "paid" and count(ctx, "done") == 1


def test_revoked_grant_fails_the_events_without_a_loop(
        qbo_world: tuple[QuickBooksSandbox, AppContext, int]) -> None:
    sandbox, ctx, cid = qbo_world
    invoice_id = sandbox.open_invoice_ids(REALM)[0]
    record_events(ctx, "quickbooks", parse_quickbooks(legacy(("Invoice", invoice_id, "Update"))),
                  ctx.clock.now())
    sandbox.revoke_refresh_tokens(REALM)
    report = process_webhook_events(ctx)
    assert report.errors and count(ctx, "failed") == 1
    assert ctx.connection(cid).status == "needs_reconnect"
    assert process_webhook_events(ctx).events == 0


def test_xero_invoice_event_refreshes_just_that_invoice(tmp_path: Path) -> None:
    clock = SimClock(NOW)
    sandbox = XeroSandbox(clock=clock, rate_limits=False)
    sandbox.add_organisation(TENANT, name="Kiwi Plumbing", contacts=5, invoices=30)
    with SandboxServer(sandbox) as server:
        url = server.url
        ctx = AppContext(Settings(  # type: ignore[call-arg]
            _env_file=None, home=tmp_path / "home", secret_key="x" * 32,
            xero_client_id="sandbox-xero-client", xero_client_secret="sandbox-xero-secret",
            xero_api_url=url, xero_token_url=f"{url}/connect/token",
            xero_revoke_url=f"{url}/connect/revocation",
            xero_auth_url=f"{url}/identity/connect/authorize"), clock=clock)
        [conn] = connect_with_refresh_token(ctx, "xero", sandbox.mint_refresh_token([TENANT]))
        sync_connection(ctx.engine, conn.id or 0, ctx.connector_for(conn), clock)
        clock.advance(timedelta(minutes=1))
        invoice_id = sandbox.open_invoice_ids(TENANT)[0]
        sandbox.record_payment(TENANT, invoice_id)
        before = sandbox.stats[TENANT]["api_calls"]
        body = json.dumps({"events": [{
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice_id}",
            "resourceId": invoice_id, "eventDateUtc": "2026-03-17T15:01:00.000",
            "eventType": "UPDATE", "eventCategory": "INVOICE", "tenantId": TENANT,
            "tenantType": "ORGANISATION"}], "firstEventSequence": 1, "lastEventSequence": 1,
            "entropy": "ABCDEFGHIJKLMNOPQRST"}).encode()
        record_events(ctx, "xero", parse_xero(body), clock.now())
        report = process_webhook_events(ctx)
        assert (report.events, report.records, report.errors) == (1, 1, [])
        assert sandbox.stats[TENANT]["api_calls"] - before == 1  # one GET /Invoices?IDs=
        contact = sandbox.get(TENANT, "Invoices", invoice_id)["Contact"]["ContactID"]
        note = sandbox.create_credit_note(TENANT, contact, Decimal("3.00"))
        others = json.dumps({"events": [
            {"resourceId": contact, "eventDateUtc": "2026-03-17T15:02:00.000",
             "eventType": "UPDATE", "eventCategory": "CONTACT", "tenantId": TENANT},
            {"resourceId": note, "eventDateUtc": "2026-03-17T15:02:00.000",
             "eventType": "CREATE", "eventCategory": "CREDITNOTE", "tenantId": TENANT}]}).encode()
        record_events(ctx, "xero", parse_xero(others), clock.now())
        report = process_webhook_events(ctx)
        assert (report.events, report.records, report.errors) == (2, 2, [])
    inv = mirrored(ctx, invoice_id)
    assert (inv.balance, inv.status) == (Decimal("0"), "paid")
