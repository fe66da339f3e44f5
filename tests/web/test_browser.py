"""The web app in a real browser: Playwright driving Debian's Chromium over real HTTP.

The real app is served by uvicorn on a free port in a thread, with the QuickBooks and Xero
sandboxes running as local HTTP servers (their consent pages redirect back, and they POST signed
webhooks after a change). The flows: sign-up and sign-in; connecting a QuickBooks and a Xero
company through the real redirect flow; a payment in QuickBooks arriving by webhook and the
dashboard updating; a payer opening their link, promising to pay, and the pending reminder
moving. Screenshots of the key pages go to ``tests/web/artifacts/`` (gitignored).

Chromium comes from Debian's ``chromium`` package (``scripts/test`` installs it); without it the
tests skip, except under ``CI``, where they fail.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from sqlmodel import Session

from arsync import links
from arsync.clock import SimClock
from arsync.config import Settings
from arsync.context import AppContext
from arsync.models import Action, Connection, Customer, Dispute, Promise
from arsync.models_payer import PayerRequest
from arsync.models_webhooks import WebhookEvent
from arsync.passes import plan_connection, run_pass
from arsync.queries import local_today
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.sandbox.xero import XeroSandbox
from arsync.syncing import sync_all
from arsync.web.app import create_app

CHROMIUM = Path(os.environ.get("ARSYNC_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).parent / "artifacts"
NOW = datetime(2026, 3, 16, 15, 0, tzinfo=UTC)  # Monday, 11:00 in New York
REALM = "9130355377215626"
ORG = "a3f6c1de-0b6e-4c8e-9f3e-7d1c2b3a4e5f"
PASSWORD = "correct horse battery staple"
WAIT = 20_000  # ms: generous, the machine is shared


def _chromium_problem() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    problem = _chromium_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; CI must run the browser tests")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """The served app, its context, and the sandboxes behind it."""

    base: str
    ctx: AppContext
    clock: SimClock
    qbo: QuickBooksSandbox
    xero: XeroSandbox
    invoices: dict[str, str]

    def connections(self) -> list[Connection]:
        with Session(self.ctx.engine) as s:
            return list(s.scalars(select(Connection).order_by(Connection.id)))

    def connection(self, provider: str) -> Connection:
        return next(c for c in self.connections() if c.provider == provider)

    def actions(self, cid: int, customer: str) -> list[Action]:
        with Session(self.ctx.engine) as s:
            return list(s.scalars(select(Action).where(
                Action.connection_id == cid, Action.customer_external_id == customer)
                .order_by(Action.id)))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("browser")
    clock = SimClock(NOW)
    qbo = QuickBooksSandbox(clock=clock, rate_limits=False)
    qbo.add_company(REALM, name="Maple Joinery", customers=3, invoices=0, seed=1,
                    timezone="America/New_York")
    invoices = {  # an overdue invoice for each of three customers
        "chased": qbo.create_invoice(REALM, "1", Decimal("500.00"), due_date=date(2026, 3, 2)),
        "paid": qbo.create_invoice(REALM, "2", Decimal("200.00"), due_date=date(2026, 3, 2)),
        "disputed": qbo.create_invoice(REALM, "3", Decimal("80.00"), due_date=date(2026, 3, 9)),
    }
    xero = XeroSandbox(clock=clock, rate_limits=False)
    xero.add_organisation(ORG, name="Kiwi Plumbing", country="NZ", currency="NZD",
                          timezone="NEWZEALANDSTANDARDTIME", contacts=3, invoices=4)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with SandboxServer(qbo) as q_server, SandboxServer(xero) as x_server:
        q, x = q_server.url, x_server.url
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, home=tmp / "home", secret_key="b" * 32,
            database_url=f"sqlite:///{tmp / 'web.db'}", public_url=base,
            quickbooks_client_id="sandbox-qbo-client",
            quickbooks_client_secret="sandbox-qbo-secret", quickbooks_api_url=q,
            quickbooks_auth_url=f"{q}/connect/oauth2",
            quickbooks_token_url=f"{q}/oauth2/v1/tokens/bearer",
            quickbooks_revoke_url=f"{q}/oauth2/v1/tokens/revoke",
            quickbooks_webhook_verifier="qbo-webhook-verifier-token",
            xero_client_id="sandbox-xero-client", xero_client_secret="sandbox-xero-secret",
            xero_api_url=x, xero_auth_url=f"{x}/identity/connect/authorize",
            xero_token_url=f"{x}/connect/token", xero_revoke_url=f"{x}/connect/revocation",
            xero_webhook_key="xero-webhook-signing-key")
        ctx = AppContext(settings, clock=clock)
        server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, name="arsync-web", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("uvicorn did not start")
            time.sleep(0.05)
        # Both services post signed change notifications to the app from now on.
        qbo.send_webhooks(f"{base}/webhooks/quickbooks", "qbo-webhook-verifier-token")
        hooks = xero.send_webhooks(f"{base}/webhooks/xero", "xero-webhook-signing-key")
        assert hooks.intent_to_receive_ok, "the app failed Xero's intent-to-receive check"
        try:
            yield Stack(base, ctx, clock, qbo, xero, invoices)
        finally:
            for sender in (qbo.webhooks, xero.webhooks):
                if sender is not None:
                    sender.stop()
            server.should_exit = True
            thread.join(timeout=10)
            ctx.engine.dispose()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def new_page(chromium: Any) -> Any:
    page = chromium.new_context().new_page()
    page.set_default_timeout(WAIT)
    return page


def sign_up(page: Any, base: str, email: str, org: str) -> None:
    page.goto(f"{base}/signup")
    page.fill("input[name=org_name]", org)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Create account')")
    page.wait_for_url(f"{base}/")


@pytest.fixture(scope="module")
def owner_page(chromium: Any, stack: Stack) -> Iterator[Any]:
    """A browser signed up (through the page) as the owner of Maple Accounts."""
    page = new_page(chromium)
    sign_up(page, stack.base, "owner@maple.example", "Maple Accounts")
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def connected(owner_page: Any, stack: Stack) -> Stack:
    """Both companies connected by clicking Connect (the redirect flow), then synced once."""
    for label in ("Connect QuickBooks", "Connect Xero"):
        owner_page.goto(f"{stack.base}/")
        owner_page.click(f"text={label}")  # → sandbox consent → callback → dashboard
        owner_page.wait_for_url(f"{stack.base}/")
    reports = sync_all(stack.ctx)  # what the worker does next
    assert all(not r.get("error") for r in reports), reports
    return stack


def test_sign_up_then_sign_out_and_in(chromium: Any, stack: Stack) -> None:
    page = new_page(chromium)
    sign_up(page, stack.base, "alice@birch.example", "Birch Bookkeeping")
    assert page.inner_text("h1") == "Birch Bookkeeping"
    assert "No company connected yet" in page.inner_text("#connections")
    shot(page, "01-dashboard-after-signup")
    page.click("button:has-text('Sign out')")
    page.wait_for_url(f"{stack.base}/login")
    page.goto(f"{stack.base}/")  # signed out: the dashboard sends us to sign in
    assert page.url.startswith(f"{stack.base}/login")
    page.fill("input[name=email]", "alice@birch.example")
    page.fill("input[name=password]", "wrong password here")
    page.click("button:has-text('Sign in')")
    assert page.url.startswith(f"{stack.base}/login")
    shot(page, "02-login-refused")
    page.fill("input[name=email]", "alice@birch.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{stack.base}/")
    assert page.inner_text("h1") == "Birch Bookkeeping"
    page.context.close()


def test_connecting_quickbooks_and_xero_through_the_redirect_flow(owner_page: Any,
                                                                   connected: Stack) -> None:
    conns = {c.provider: c for c in connected.connections()}
    assert (conns["quickbooks"].tenant_id, conns["quickbooks"].name) == (REALM, "Maple Joinery")
    assert (conns["xero"].tenant_id, conns["xero"].name) == (ORG, "Kiwi Plumbing")
    assert all(c.status == "active" and c.last_synced_at is not None for c in conns.values())
    owner_page.goto(f"{connected.base}/")
    listed = owner_page.inner_text("#connections")
    assert "Maple Joinery" in listed and "Kiwi Plumbing" in listed
    assert "NZD" in owner_page.inner_text("#aging")  # the Xero books made it to the dashboard
    shot(owner_page, "03-dashboard-connected")


def _usd_total(page: Any) -> Decimal:
    cells = page.locator("#aging tr[data-currency=USD] td.money")
    return Decimal(cells.nth(cells.count() - 1).inner_text().replace(",", ""))


def _eventually(check: Callable[[], bool], what: str,
                detail: Callable[[], str] = lambda: "", seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what} {detail()}")
        time.sleep(0.2)


def _webhook_log(s: Stack) -> str:
    """What was delivered and what became of it (for a failure message)."""
    sent = [(d.status, d.body[:200]) for d in (s.qbo.webhooks.deliveries if s.qbo.webhooks
                                               else [])]
    with Session(s.ctx.engine) as db:
        stored = [(e.entity, e.entity_id, e.status, e.error)
                  for e in db.scalars(select(WebhookEvent))]
    return f"(deliveries: {sent}; events: {stored})"


def test_a_webhook_arrives_and_the_dashboard_updates(owner_page: Any, connected: Stack) -> None:
    s = connected
    conn = s.connection("quickbooks")
    plan_connection(s.ctx, conn, s.clock.now())  # today's reminders, not yet sent
    [pending] = [a for a in s.actions(conn.id or 0, "2") if a.kind == "message"]
    assert pending.status == "planned"
    owner_page.goto(f"{s.base}/")
    before = _usd_total(owner_page)
    assert before >= Decimal("780.00")

    s.clock.advance(timedelta(minutes=5))  # time passes (records stamped at a later instant)
    s.qbo.record_payment(REALM, s.invoices["paid"])  # in QuickBooks; its webhook does the rest

    def dashboard_moved() -> bool:
        owner_page.reload()
        return _usd_total(owner_page) == before - Decimal("200.00")

    _eventually(dashboard_moved, "the dashboard to show the payment", lambda: _webhook_log(s))
    assert s.qbo.webhooks is not None
    assert any(d.status == 200 for d in s.qbo.webhooks.deliveries)
    # The reminder for the paid invoice was cancelled when the webhook came in, before any send.
    _eventually(lambda: s.actions(conn.id or 0, "2")[0].status == "cancelled",
                "the pending reminder to be cancelled")
    with Session(s.ctx.engine) as db:
        payer_name = db.scalar(select(Customer.name).where(Customer.connection_id == conn.id,
                                                           Customer.external_id == "2"))
    owner_page.reload()
    assert "cancelled" in owner_page.locator("#recent tr", has_text=payer_name).inner_text()
    shot(owner_page, "04-dashboard-after-webhook")


def _payer_link_in_outbox(outbox: Path, recipient: str, base: str) -> str:
    """The payer-page link in the reminder sent to ``recipient`` (parsed as a mail client would;
    the provider's own pay link and shortened display text are not it)."""
    found = []
    for path in sorted(outbox.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if recipient not in str(msg["To"]):
            continue
        for part in msg.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                found += [u for u in re.findall(re.escape(base) + r"/pay/[A-Za-z0-9_.-]+",
                                                part.get_content()) if "..." not in u]
    assert found, f"no payer link in the messages to {recipient} in {outbox}"
    assert len(set(found)) == 1, found
    return found[0]


def test_a_payer_promises_from_the_link_in_a_reminder(chromium: Any, connected: Stack) -> None:
    s = connected
    conn = s.connection("quickbooks")
    cid = conn.id or 0
    report = run_pass(s.ctx, cid, s.clock.now())  # today's reminder goes out (the .eml outbox)
    assert "error" not in report, report
    [first] = [a for a in s.actions(cid, "1") if a.kind == "message"]
    assert (first.status, first.stage) == ("sent", "overdue_14")
    url = _payer_link_in_outbox(s.ctx.settings.outbox_dir, first.recipient or "", s.base)
    assert url.startswith(f"{s.base}/pay/")

    # Weeks later the next reminder is planned, not yet sent, when the payer opens that link.
    s.clock.set(datetime(2026, 5, 1, 15, 0, tzinfo=UTC))  # Friday, 11:00 in New York
    now = s.clock.now()
    plan_connection(s.ctx, conn, now)
    [pending] = [a for a in s.actions(cid, "1") if a.status == "planned" and a.kind == "message"]
    assert pending.stage == "plan_offer_60"
    page = new_page(chromium)

    tampered = url[:-3] + ("abc" if not url.endswith("abc") else "xyz")
    response = page.goto(tampered)
    assert response is not None and response.status == 404
    assert "This link is not valid" in page.inner_text("main")
    assert "Maple" not in page.content() and "$" not in page.content()
    shot(page, "05-payer-link-tampered")

    page.goto(url)
    rows = page.inner_text("#invoices")
    assert "$500.00" in rows and "$200.00" not in rows  # only this customer's open invoice
    shot(page, "06-payer-page")
    promised = local_today(conn, now) + timedelta(days=7)
    page.select_option("#promise-invoice", s.invoices["chased"])
    page.fill("#promise-date", promised.isoformat())
    page.click("#promise-form button[type=submit]")
    page.wait_for_url("**/pay/*?done=promise")
    assert "promise to pay is recorded" in page.inner_text("#done")
    assert "Promised by" in page.inner_text("#invoices")
    shot(page, "07-payer-promised")
    page.reload()  # a refresh after the redirect posts nothing again

    with Session(s.ctx.engine) as db:
        promises = list(db.scalars(select(Promise).where(Promise.connection_id == cid)))
    assert [(p.invoice_external_id, p.promised_on) for p in promises] == [
        (s.invoices["chased"], promised)]
    # The pending reminder moved: cancelled at once, and nothing is planned while the promise
    # holds; the day after it, chasing resumes anchored on the promise date.
    after = {a.id: a for a in s.actions(cid, "1")}
    assert after[pending.id].status == "cancelled"
    for day in (3, 7):  # through the promise date itself
        plan_connection(s.ctx, conn, now + timedelta(days=day))
        assert not [a for a in s.actions(cid, "1")
                    if a.status == "planned" and a.kind == "message"]
    plan_connection(s.ctx, conn, now + timedelta(days=8))
    [new] = [a for a in s.actions(cid, "1") if a.status == "planned" and a.kind == "message"]
    reason = json.loads(new.reason_json)
    assert reason["invoices"][0]["promise_date"] == promised.isoformat()
    # The promise broke on Friday the 8th; the 9th is a Saturday, so Monday the 11th. The stage
    # is the most severe one due (plan_offer_60 supersedes promise_broken, as the rules say).
    assert (promised, new.local_date) == (date(2026, 5, 8), date(2026, 5, 11))
    assert new.stage == "plan_offer_60" and "promise_broken" in reason["invoices"][0]["superseded"]
    page.context.close()


def test_a_payer_disputes_and_asks_for_a_plan(chromium: Any, connected: Stack) -> None:
    s = connected
    conn = s.connection("quickbooks")
    cid = conn.id or 0
    page = new_page(chromium)
    page.goto(links.payer_url(s.ctx.settings, cid, "3", now=s.clock.now()))
    assert "$80.00" in page.inner_text("#invoices")
    page.fill("#dispute-reason", "The second visit was never made.")
    page.click("#dispute-form button[type=submit]")
    page.wait_for_url("**/pay/*?done=dispute")
    assert "Disputed" in page.inner_text("#invoices")
    page.fill("#plan-instalments", "1")  # the browser lets it through; the server does not
    page.eval_on_selector("#plan-form", "f => f.noValidate = true")
    page.click("#plan-form button[type=submit]")
    assert "between 2 and 24 instalments" in page.inner_text("#error")
    page.fill("#plan-instalments", "4")
    page.fill("#plan-proposal", "Four monthly payments.")
    page.click("#plan-form button[type=submit]")
    page.wait_for_url("**/pay/*?done=plan")
    assert "request for a payment plan is recorded" in page.inner_text("#done")
    shot(page, "08-payer-disputed-and-plan-requested")
    with Session(s.ctx.engine) as db:
        disputes = list(db.scalars(select(Dispute).where(Dispute.connection_id == cid)))
        requests = list(db.scalars(select(PayerRequest).where(
            PayerRequest.connection_id == cid, PayerRequest.customer_external_id == "3")))
    assert [(d.invoice_external_id, d.reason) for d in disputes] == [
        (s.invoices["disputed"], "payer: The second visit was never made.")]
    assert sorted(r.kind for r in requests) == ["dispute", "plan"]
    assert json.loads(next(r for r in requests if r.kind == "plan").details_json)[
        "instalments"] == 4
    page.context.close()
