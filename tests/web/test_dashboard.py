"""The signed-in pages over the real app: dashboard figures, invoices, ledger, approvals,
the organisation switcher and the health check."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import Session

from arsync.context import AppContext
from arsync.models import Action, Connection
from arsync.web import accounts
from tests.factories import make_connection, make_customer, make_invoice
from tests.web.conftest import NOW, Browser, WebUser

_keys = itertools.count(1)
TODAY = NOW.date()


def make_action(ctx: AppContext, conn: Connection, *, customer: str = "C1",
                invoices: tuple[str, ...] = ("INV-1",), status: str = "awaiting_approval",
                kind: str = "message", stage: str = "reminder-7", days: int = 0,
                task_kind: str | None = None) -> int:
    with Session(ctx.engine) as db, db.begin():
        row = Action(connection_id=conn.id or 0, idempotency_key=f"k{next(_keys)}",
                     customer_external_id=customer, invoice_ids_json=json.dumps(list(invoices)),
                     stage=stage, channel="email" if kind == "message" else "task", kind=kind,
                     tone="firm", template="reminder", task_kind=task_kind, status=status,
                     planned_for=NOW + timedelta(days=days),
                     local_date=TODAY + timedelta(days=days),
                     covered_json="[]", reason_json="{}", created_at=NOW, updated_at=NOW)
        db.add(row)
        db.flush()
        return row.id or 0


def action_status(ctx: AppContext, action_id: int) -> tuple[str, str | None]:
    with Session(ctx.engine) as db:
        row = db.get(Action, action_id)
        assert row is not None
        return row.status, row.status_reason


@pytest.fixture
def books(web_ctx: AppContext, owner: WebUser,
          grant: Callable[[int, Connection | int], None]) -> dict[str, Connection]:
    """Acme's two companies (USD and EUR invoices), one needing reconnection."""
    eng = web_ctx.engine
    us = make_connection(eng, name="Acme US")
    eu = make_connection(eng, name="Acme Europe", status="needs_reconnect",
                         status_reason="refresh token expired")
    for conn in (us, eu):
        grant(owner.org_id, conn)
    make_customer(eng, us, "C1", name="Globex Corporation")
    make_customer(eng, eu, "E1", name="Initech GmbH")
    make_invoice(eng, us, "INV-1", "C1", due=TODAY - timedelta(days=10), amount="100.10",
                 issued=TODAY - timedelta(days=40))
    make_invoice(eng, us, "INV-2", "C1", due=TODAY - timedelta(days=45), amount="200.20",
                 issued=TODAY - timedelta(days=75))
    make_invoice(eng, us, "INV-3", "C1", due=TODAY + timedelta(days=5), amount="300.00",
                 balance="0", status="paid", issued=TODAY - timedelta(days=25))
    make_invoice(eng, eu, "EI-1", "E1", due=TODAY - timedelta(days=100), amount="999.99",
                 currency="EUR", issued=TODAY - timedelta(days=130))
    return {"us": us, "eu": eu}


def _row(html: str, marker: str) -> str:
    match = re.search(rf"<tr[^>]*{re.escape(marker)}[^>]*>(.*?)</tr>", html, re.S)
    assert match, f"no row {marker}"
    return match.group(1)


def test_dashboard_shows_connections_aging_per_currency_and_dso(
        signed_in: Browser, books: dict[str, Connection]) -> None:
    page = signed_in.get("/")
    assert page.status_code == 200
    html = page.text
    assert "Acme US" in html and "Acme Europe" in html
    # Only the dead connection gets a one-click reconnect.
    assert html.count('class="button reconnect"') == 1
    dead = _row(html, 'class="conn-needs_reconnect"')
    assert f'href="/connect/quickbooks?reconnect={books["eu"].id}"' in dead
    usd = re.sub(r"\s+", " ", _row(html, 'data-currency="USD"'))
    eur = re.sub(r"\s+", " ", _row(html, 'data-currency="EUR"'))
    # USD: 100.10 in 1-30, 200.20 in 31-60; total 300.30. Never mixed with EUR.
    assert re.findall(r'class="money">([^<]+)<', usd) == ["0.00", "100.10", "200.20", "0.00",
                                                         "0.00", "300.30"]
    assert re.findall(r'class="money">([^<]+)<', eur) == ["0.00", "0.00", "0.00", "0.00",
                                                         "999.99", "999.99"]
    # USD DSO: 300.30 owed / (100.10 + 200.20 + 300.00 invoiced in 90 days) x 90 = 45.0 days.
    assert "45.0 days" in usd
    assert "—" in eur  # EUR: no sales in the period, DSO undefined
    assert "1,300.29" not in html and "1300.29" not in html


def test_dashboard_lists_approvals_tasks_and_recent_actions(
        signed_in: Browser, web_ctx: AppContext, books: dict[str, Connection]) -> None:
    waiting = make_action(web_ctx, books["us"], status="awaiting_approval")
    task = make_action(web_ctx, books["us"], kind="task", task_kind="call", status="planned",
                       stage="call-30")
    sent = make_action(web_ctx, books["us"], status="sent", stage="reminder-1")
    html = signed_in.get("/").text
    approvals = html.split('id="approvals"')[1].split("</section>")[0]
    tasks = html.split('id="tasks"')[1].split("</section>")[0]
    recent = html.split('id="recent"')[1].split("</section>")[0]
    assert f'data-action-id="{waiting}"' in approvals and "Globex Corporation" in approvals
    assert f"/actions/{waiting}/approve" in approvals
    assert f'data-action-id="{task}"' in tasks and f'data-action-id="{sent}"' not in tasks
    for action_id in (waiting, task, sent):
        assert f'data-action-id="{action_id}"' in recent


def test_actions_name_invoices_by_number_not_provider_id(
        signed_in: Browser, web_ctx: AppContext, books: dict[str, Connection]) -> None:
    guid = "2c534567-2db7-431e-8831-efe41a8c6f31"  # how Xero identifies an invoice
    make_invoice(web_ctx.engine, books["us"], guid, "C1", due=TODAY - timedelta(days=3),
                 number="INV-0042")
    task = make_action(web_ctx, books["us"], invoices=(guid, "GONE-1"), kind="task",
                       task_kind="call", status="planned", stage="call-30")
    html = signed_in.get("/").text
    row = _row(html, f'data-action-id="{task}"')
    assert "INV-0042" in row and guid not in row
    assert "GONE-1" in row  # an invoice no longer mirrored is still named by its id


def test_connection_page_lists_invoices_with_next_action(
        signed_in: Browser, web_ctx: AppContext, books: dict[str, Connection]) -> None:
    make_action(web_ctx, books["us"], invoices=("INV-1", "INV-2"), status="planned",
                stage="reminder-late", days=2)
    make_action(web_ctx, books["us"], invoices=("INV-1",), status="planned",
                stage="final-notice", days=9)
    html = signed_in.get(f"/connections/{books['us'].id}").text
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr>\s*<td>(INV-\d)</td>.*?</tr>",
                                                         html, re.S)}
    assert set(rows) == {"INV-1", "INV-2"}  # open only by default; INV-3 is paid
    expected = (TODAY + timedelta(days=2)).isoformat()
    assert f"reminder-late by email on {expected}" in rows["INV-1"]  # the earliest one
    assert "USD 100.10" in rows["INV-1"] and "Globex Corporation" in rows["INV-1"]
    all_rows = signed_in.get(f"/connections/{books['us'].id}?status=all").text
    assert "INV-3" in all_rows


def test_approve_and_reject_use_the_ledger(signed_in: Browser, web_ctx: AppContext,
                                           books: dict[str, Connection]) -> None:
    one = make_action(web_ctx, books["us"])
    two = make_action(web_ctx, books["us"], customer="C2")
    response = signed_in.post(f"/actions/{one}/approve", {"back": "/actions"})
    assert response.status_code == 303 and response.headers["location"] == "/actions"
    assert action_status(web_ctx, one) == ("planned", "approved by owner@acme.example")
    response = signed_in.post(f"/actions/{two}/reject", {"reason": "customer paid by phone"})
    assert response.status_code == 303
    assert action_status(web_ctx, two) == ("rejected",
                                           "customer paid by phone (owner@acme.example)")
    # Deciding twice is refused and changes nothing.
    assert signed_in.post(f"/actions/{one}/reject").status_code == 409
    assert signed_in.post(f"/actions/{two}/approve").status_code == 409
    assert action_status(web_ctx, one)[0] == "planned"
    assert action_status(web_ctx, two)[0] == "rejected"


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_approve_without_csrf_is_403_and_changes_nothing(
        signed_in: Browser, web_ctx: AppContext, books: dict[str, Connection],
        token: str | None) -> None:
    action = make_action(web_ctx, books["us"])
    data = {} if token is None else {"csrf_token": token}
    assert signed_in.client.post(f"/actions/{action}/approve", data=data).status_code == 403
    assert signed_in.client.post(f"/actions/{action}/reject", data=data).status_code == 403
    assert action_status(web_ctx, action) == ("awaiting_approval", None)


def test_actions_page_filters_by_status(signed_in: Browser, web_ctx: AppContext,
                                        books: dict[str, Connection]) -> None:
    waiting = make_action(web_ctx, books["us"])
    sent = make_action(web_ctx, books["us"], status="sent")
    everything = signed_in.get("/actions").text
    assert f'data-action-id="{waiting}"' in everything and f'data-action-id="{sent}"' in everything
    only = signed_in.get("/actions?status=sent").text
    assert f'data-action-id="{sent}"' in only and f'data-action-id="{waiting}"' not in only


def test_accountant_switches_between_client_organisations(
        web_ctx: AppContext, make_user: Callable[..., WebUser],
        sign_in: Callable[[WebUser], Browser],
        grant: Callable[[int, Connection | int], None]) -> None:
    accountant = make_user("cpa@ledgers.example", role="accountant", org_name="Bakery")
    other = make_user("owner@florist.example", org_name="Florist")
    stranger = make_user("owner@stranger.example", org_name="Stranger")
    with Session(web_ctx.engine) as db, db.begin():
        accounts.add_membership(db, accountant.user_id, other.org_id, "accountant",
                                now=web_ctx.clock.now())
    grant(accountant.org_id, make_connection(web_ctx.engine, name="Bakery Books"))
    grant(other.org_id, make_connection(web_ctx.engine, name="Florist Books"))
    browser = sign_in(accountant)
    first = browser.get("/").text
    assert 'id="org-switcher"' in first
    assert "Bakery Books" in first and "Florist Books" not in first
    assert browser.post("/org", {"org_id": other.org_id}).status_code == 303
    second = browser.get("/").text
    assert "Florist Books" in second and "Bakery Books" not in second
    # Not a member: 404, and the session stays where it was.
    assert browser.post("/org", {"org_id": stranger.org_id}).status_code == 404
    assert "Florist Books" in browser.get("/").text
    # A single-organisation user has no switcher.
    assert 'id="org-switcher"' not in sign_in(other).get("/").text


def test_healthz_checks_the_database(client: Browser) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_pages_escape_what_they_show(signed_in: Browser, web_ctx: AppContext, owner: WebUser,
                                     grant: Callable[[int, Connection | int], None]) -> None:
    conn = make_connection(web_ctx.engine, name="<script>alert(1)</script>")
    grant(owner.org_id, conn)
    html = signed_in.get("/").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_static_files_are_served_by_the_app(client: Browser) -> None:
    response = client.get("/static/app.css")
    assert response.status_code == 200 and "text/css" in response.headers["content-type"]


def test_grant_connection_is_idempotent_and_checks_ids(web_ctx: AppContext, owner: WebUser,
                                                       grant: Callable[..., None]) -> None:
    conn = make_connection(web_ctx.engine, name="Twice")
    grant(owner.org_id, conn)
    grant(owner.org_id, conn)
    with Session(web_ctx.engine) as db:
        with pytest.raises(accounts.InputError, match="no connection"):
            accounts.grant_connection(db, owner.org_id, 99999)
        with pytest.raises(accounts.InputError, match="no organisation"):
            accounts.grant_connection(db, 99999, conn.id or 0)


def test_staff_see_a_dead_connection_but_no_connect_buttons(
        web_ctx: AppContext, make_user: Callable[..., WebUser], owner: WebUser,
        sign_in: Callable[[WebUser], Browser], books: dict[str, Connection]) -> None:
    clerk = make_user("clerk@acme.example", role="staff", org_name="Acme Ltd")
    assert clerk.org_id == owner.org_id
    html = sign_in(clerk).get("/").text
    assert "Acme Europe" in html and "an owner must reconnect it" in html
    assert 'class="button reconnect"' not in html and 'href="/connect/xero"' not in html


def test_dashboard_queues_show_the_first_fifty_and_link_to_the_rest(
        signed_in: Browser, web_ctx: AppContext, books: dict[str, Connection]) -> None:
    for i in range(51):
        make_action(web_ctx, books["us"], customer=f"Q{i}")
    approvals = signed_in.get("/").text.split('id="approvals"')[1].split("</section>")[0]
    assert approvals.count("data-action-id=") == 50
    assert 'href="/actions?status=awaiting_approval"' in approvals
    ledger = signed_in.get("/actions?status=awaiting_approval").text
    assert ledger.count("data-action-id=") == 51
