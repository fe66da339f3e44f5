"""The webhook routes over HTTP: signatures for every format, ITR, de-duplication, end to end.

Signatures are checked with the real samples and their documented signatures
(``tests/fixtures/samples/*.signature.json``). The end-to-end test runs the app on a real server
(uvicorn) and lets the QuickBooks sandbox deliver its own signed webhook after a payment.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Action, Connection, Invoice
from arsync.models_webhooks import WebhookEvent
from arsync.passes import run_pass
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.sandbox.xero import XeroSandbox
from arsync.web.app import create_app
from arsync.webhooks import signature
from tests.conftest import SAMPLES, sample
from tests.web.conftest import NOW, Browser

QBO_SIG = sample("qbo_webhook_legacy.signature.json")
XERO_SIG = sample("xero_webhook_itr.signature.json")
VERIFIER = QBO_SIG["verifier_token"]
XERO_KEY = XERO_SIG["webhook_key_MADE_UP"]


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, home=tmp_path / "home", secret_key="w" * 32,  # type: ignore[call-arg]
                    database_url=f"sqlite:///{tmp_path / 'web.db'}",
                    quickbooks_webhook_verifier=VERIFIER, xero_webhook_key=XERO_KEY)


def raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def stored(ctx: AppContext) -> int:
    with Session(ctx.engine) as s:
        return s.scalar(select(func.count()).select_from(WebhookEvent)) or 0


def test_quickbooks_legacy_sample_with_its_documented_signature(client: Browser,
                                                                web_ctx: AppContext) -> None:
    body = raw(QBO_SIG["body_file"])
    answer = client.client.post("/webhooks/quickbooks", content=body,
                                headers={"intuit-signature": QBO_SIG["intuit-signature"],
                                         "content-type": "application/json"})
    assert answer.status_code == 200 and answer.content == b""
    assert "set-cookie" not in answer.headers
    assert stored(web_ctx) == 1  # stored (as ignored: realm 1185883450 is not connected)


@pytest.mark.parametrize("name", ["qbo_webhook_legacy.json", "qbo_webhook_legacy_blog.json",
                                  "qbo_webhook_cloudevents.json"])
def test_quickbooks_bad_signature_is_401_and_stores_nothing(client: Browser, web_ctx: AppContext,
                                                            name: str) -> None:
    body = raw(name)
    tampered = body.replace(b"Create", b"Delete").replace(b"created", b"deleted")
    for content, sig in [(body, signature("not-the-verifier", body)),
                         (tampered, signature(VERIFIER, body)), (body, None)]:
        headers = {"content-type": "application/json"}
        if sig:
            headers["intuit-signature"] = sig
        answer = client.client.post("/webhooks/quickbooks", content=content, headers=headers)
        assert answer.status_code == 401 and answer.content == b""
    assert stored(web_ctx) == 0


@pytest.mark.parametrize("name", ["qbo_webhook_legacy_blog.json", "qbo_webhook_cloudevents.json"])
def test_quickbooks_both_formats_accepted_when_signed(client: Browser, web_ctx: AppContext,
                                                      name: str) -> None:
    body = raw(name)
    ctype = "application/cloudevents+json" if "cloudevents" in name else "application/json"
    for _ in range(2):  # the same delivery twice (a retry): stored once
        answer = client.client.post("/webhooks/quickbooks", content=body,
                                    headers={"intuit-signature": signature(VERIFIER, body),
                                             "content-type": ctype})
        assert answer.status_code == 200 and answer.content == b""
    assert stored(web_ctx) == 1


def test_xero_intent_to_receive(client: Browser, web_ctx: AppContext) -> None:
    body = raw(XERO_SIG["body_file"])
    good = client.client.post("/webhooks/xero", content=body,
                              headers={"x-xero-signature": XERO_SIG["x-xero-signature"]})
    assert good.status_code == 200 and good.content == b""
    bad = client.client.post("/webhooks/xero", content=body,
                             headers={"x-xero-signature": signature("wrong-key", body)})
    assert bad.status_code == 401 and bad.content == b""
    assert stored(web_ctx) == 0


@pytest.mark.parametrize("name", ["xero_webhook_contact_event.json",
                                  "xero_webhook_creditnote_event.json",
                                  "xero_webhook_invoice_event_CONSTRUCTED.json"])
def test_xero_events_signed_and_deduplicated(client: Browser, web_ctx: AppContext,
                                             name: str) -> None:
    body = raw(name)
    bad = client.client.post("/webhooks/xero", content=body,
                             headers={"x-xero-signature": signature("wrong", body)})
    assert bad.status_code == 401 and stored(web_ctx) == 0
    for _ in range(2):
        ok = client.client.post("/webhooks/xero", content=body,
                                headers={"x-xero-signature": signature(XERO_KEY, body)})
        assert ok.status_code == 200 and ok.content == b""
    assert stored(web_ctx) == 1


def test_unconfigured_secret_refuses_everything(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path / "h", secret_key="w" * 32,  # type: ignore[call-arg]
                        database_url=f"sqlite:///{tmp_path / 'x.db'}")
    ctx = AppContext(settings, clock=SimClock(NOW))
    browser = Browser(create_app(ctx))
    body = raw(XERO_SIG["body_file"])
    answer = browser.client.post("/webhooks/xero", content=body,
                                 headers={"x-xero-signature": signature("", body)})
    assert answer.status_code == 401


# --- end to end: a payment in QuickBooks cancels the pending reminder ----------------------------

REALM = "4620816365282547610"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_app(web_ctx: AppContext) -> Iterator[str]:
    """The app on a real HTTP server, so the sandbox can POST to it."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(web_ctx), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _qbo_settings(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={
        "quickbooks_client_id": "sandbox-qbo-client",
        "quickbooks_client_secret": SecretStr("sandbox-qbo-secret"),
        "quickbooks_api_url": url, "quickbooks_token_url": f"{url}/oauth2/v1/tokens/bearer",
        "quickbooks_revoke_url": f"{url}/oauth2/v1/tokens/revoke",
        "quickbooks_auth_url": f"{url}/connect/oauth2"})


@pytest.mark.parametrize("cloudevents", [False, True], ids=["legacy", "cloudevents"])
def test_payment_in_quickbooks_cancels_the_pending_reminder(
        web_ctx: AppContext, web_clock: SimClock, live_app: str, cloudevents: bool) -> None:
    sandbox = QuickBooksSandbox(clock=web_clock, rate_limits=False)
    sandbox.add_company(REALM, name="Harbour Cafe", customers=2, invoices=0)
    overdue = sandbox.create_invoice(REALM, "1", Decimal("640.00"),
                                     due_date=NOW.date() - timedelta(days=9))
    with SandboxServer(sandbox) as server:
        web_ctx.settings = _qbo_settings(web_ctx.settings, server.url)
        [conn] = connect_with_refresh_token(web_ctx, "quickbooks",
                                            sandbox.mint_refresh_token(REALM), tenant_id=REALM)
        with Session(web_ctx.engine) as s, s.begin():
            row = s.get(Connection, conn.id)
            assert row is not None
            row.pilot_mode = True  # reminders wait for approval: pending, not sent
        report = run_pass(web_ctx, conn.id or 0, NOW)
        assert "error" not in report, report
        pending = _actions(web_ctx, "1")
        assert pending and all(a.status == "awaiting_approval" for a in pending)

        sender = sandbox.send_webhooks(f"{live_app}/webhooks/quickbooks", VERIFIER,
                                       cloudevents=cloudevents)
        try:
            started = time.monotonic()
            sandbox.record_payment(REALM, overdue)  # a person records the payment
            while any(a.status != "cancelled" for a in _actions(web_ctx, "1")):
                assert time.monotonic() - started < 10, (
                    "reminder not cancelled in 10 s", _debug(web_ctx, sender))
                time.sleep(0.05)
            elapsed = time.monotonic() - started
        finally:
            sender.stop()
    assert elapsed < 5, elapsed
    delivered = [d for d in sender.deliveries if d.status == 200]
    assert delivered
    body = json.loads(delivered[0].body)
    assert isinstance(body, list) if cloudevents else "eventNotifications" in body
    with Session(web_ctx.engine) as s:
        inv = s.scalars(select(Invoice).where(Invoice.external_id == overdue)).one()
        assert (inv.balance, inv.status) == (Decimal("0"), "paid")
        assert s.scalar(select(func.count()).select_from(WebhookEvent)
                        .where(WebhookEvent.status == "pending")) == 0
    print(f"payment -> reminder cancelled in {elapsed:.3f} s ({len(sender.deliveries)} "
          f"deliveries)")


def _actions(ctx: AppContext, customer: str) -> list[Action]:
    with Session(ctx.engine) as s:
        return list(s.scalars(select(Action).where(Action.customer_external_id == customer)))


def test_xero_sandbox_registers_and_delivers(web_ctx: AppContext, web_clock: SimClock,
                                            live_app: str) -> None:
    """The Xero sandbox's intent-to-receive check passes against the app; a bad key fails it."""
    sandbox = XeroSandbox(clock=web_clock, rate_limits=False)
    wrong = sandbox.send_webhooks(f"{live_app}/webhooks/xero", "not-the-key", background=False)
    assert not wrong.intent_to_receive_ok
    sender = sandbox.send_webhooks(f"{live_app}/webhooks/xero", XERO_KEY, background=False)
    assert sender.intent_to_receive_ok
    assert [d.status for d in sender.deliveries] == [200, 401]


def _debug(ctx: AppContext, sender: object) -> object:
    with Session(ctx.engine) as s:
        events = [(e.entity, e.entity_id, e.operation, e.status, e.error)
                  for e in s.scalars(select(WebhookEvent))]
    return ([(d.status, d.body[:300]) for d in sender.deliveries],  # type: ignore[attr-defined]
            events, [(a.id, a.status, a.status_reason) for a in _actions(ctx, "1")])
