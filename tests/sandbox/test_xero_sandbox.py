"""The Xero sandbox over real HTTP, driven by the real xero-python SDK where it works.

Calls that must see a 429 use plain ``requests``: xero-python's urllib3 sleeps ``Retry-After``
(real seconds) and retries 429s by itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from xero_python.accounting import (
    Account,
    AccountingApi,
    Contact,
    HistoryRecord,
    HistoryRecords,
    Invoice,
    Invoices,
    LineItem,
    Payment,
)
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi
from xero_python.exceptions import AccountingBadRequestException, HTTPStatusException
from xero_python.identity import IdentityApi

from arsync.clock import SimClock
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.xero import XeroSandbox, serve
from arsync.sandbox.xero_model import ZERO, Organisation, XeroRuleError

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TENANT = "3b0e8a2c-1f6b-4a0e-9a51-1c2d3e4f5a6b"
OTHER = "9d2f4c1e-7a3b-4c5d-8e6f-0a1b2c3d4e5f"
CLIENT_ID, CLIENT_SECRET = "sandbox-xero-client", "sandbox-xero-secret"
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


def _sandbox(clock: SimClock, **kw: Any) -> XeroSandbox:
    sandbox = XeroSandbox(clock=clock, **kw)
    sandbox.add_organisation(TENANT, name="Harbour Plumbing Ltd", contacts=60, invoices=1200,
                             seed=7)
    sandbox.add_organisation(OTHER, name="Kiwi Design", country="NZ", currency="NZD",
                             timezone="NEWZEALANDSTANDARDTIME", contacts=20, invoices=60, seed=8)
    return sandbox


@pytest.fixture
def sandbox(clock: SimClock) -> XeroSandbox:
    return _sandbox(clock, rate_limits=False)


@pytest.fixture
def server(sandbox: XeroSandbox) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox) as srv:
        yield srv


def token_call(server: SandboxServer, **form: str) -> requests.Response:
    form.setdefault("client_id", CLIENT_ID)
    form.setdefault("client_secret", CLIENT_SECRET)
    return requests.post(f"{server.url}/connect/token", data=form, timeout=10)


def refresh(server: SandboxServer, refresh_token: str) -> requests.Response:
    return token_call(server, grant_type="refresh_token", refresh_token=refresh_token)


def bearer(access_token: str, tenant: str | None = TENANT) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    if tenant:
        headers["xero-tenant-id"] = tenant
    return headers


@pytest.fixture
def access(sandbox: XeroSandbox, server: SandboxServer) -> str:
    response = refresh(server, sandbox.mint_refresh_token([TENANT]))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def api_get(server: SandboxServer, access: str, path: str, tenant: str | None = TENANT,
            **params: Any) -> requests.Response:
    return requests.get(f"{server.url}/api.xro/2.0/{path}", params=params,
                        headers=bearer(access, tenant), timeout=10)


class Sdk:
    """xero-python wired to the sandbox, with a token store it refreshes through."""

    def __init__(self, server: SandboxServer, refresh_token: str) -> None:
        self.token: dict[str, Any] = {
            "access_token": "not-yet", "refresh_token": refresh_token, "token_type": "Bearer",
            "scope": ["offline_access", "accounting.transactions", "accounting.contacts",
                      "accounting.settings"],
            "expires_in": 1800, "expires_at": time.time() - 1,  # forces a refresh first
        }
        self.saved = 0
        # Configuration's metaclass returns a copy of the first instance ever built and ignores
        # constructor arguments after that, so the token is set on the copy.
        config = Configuration()
        config.oauth2_token = OAuth2Token(CLIENT_ID, CLIENT_SECRET)
        client = ApiClient(config, pool_threads=1)
        client.oauth2_token_getter(lambda: self.token)
        client.oauth2_token_saver(self._save)
        self.accounting = AccountingApi(client, base_url=f"{server.url}/api.xro/2.0")
        self.identity = IdentityApi(client, base_url=server.url)

    def _save(self, token: dict[str, Any]) -> None:
        self.token = token
        self.saved += 1


@pytest.fixture
def sdk(sandbox: XeroSandbox, server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Sdk:
    monkeypatch.setattr(TokenApi, "refresh_token_url", f"{server.url}/connect/token")
    return Sdk(server, sandbox.mint_refresh_token([TENANT]))


def load_sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def value(field: Any) -> Any:
    """An SDK enum's value (the SDK returns some enums as plain strings)."""
    return getattr(field, "value", field)


def books(sandbox: XeroSandbox, tenant: str = TENANT) -> Organisation:
    return sandbox.organisation(tenant)


def open_sales_invoice(org: Organisation, *, paid: bool = False) -> str:
    for inv in sorted(org.invoices.values(), key=lambda i: i.number):
        if inv.type == "ACCREC" and inv.status == "AUTHORISED" and (inv.amount_paid > 0) == paid \
                and not inv.allocations:
            return inv.invoice_id
    raise AssertionError("no such invoice in the seed")


# ------------------------------------------------------------------------ seed data
def assert_books_balance(org: Organisation) -> None:
    payments = org.payments
    for inv in org.invoices.values():
        lines = org.lines_of(inv)
        assert inv.sub_total == sum(li.line_amount for li in lines), inv.number
        assert inv.total_tax == sum(li.tax_amount for li in lines)
        assert inv.total == inv.sub_total + inv.total_tax
        active = [payments[p] for p in inv.payment_ids if payments[p].status == "AUTHORISED"]
        assert inv.amount_paid == sum((p.amount for p in active), ZERO), inv.number
        assert inv.amount_credited == sum((a.amount for a in inv.allocations), ZERO)
        if inv.status in ("VOIDED", "DELETED"):
            assert inv.amount_due == ZERO
            assert not active
            assert not inv.allocations
        else:
            assert inv.amount_due == inv.total - inv.amount_paid - inv.amount_credited
        if inv.status == "PAID":
            assert inv.amount_due == ZERO
            assert inv.fully_paid_on is not None
        elif inv.status == "AUTHORISED":
            assert inv.amount_due > ZERO
        for a in inv.allocations:
            assert a in org.credit_notes[a.credit_note_id].allocations
    for note in org.credit_notes.values():
        remaining = note.remaining_credit(payments)
        assert remaining >= ZERO
        assert note.total == note.sub_total + note.total_tax
        if note.status == "AUTHORISED":
            assert remaining > ZERO
        if note.status == "PAID":
            assert remaining == ZERO
        for a in note.allocations:
            assert a in org.invoices[a.invoice_id].allocations
    for p in payments.values():
        assert (p.invoice_id is None) != (p.credit_note_id is None)


def test_seed_is_realistic_and_balances(clock: SimClock) -> None:
    sandbox = XeroSandbox(clock=clock)
    sandbox.add_organisation(TENANT, name="Big Ltd", contacts=300, invoices=4000, seed=3)
    org = books(sandbox)
    assert_books_balance(org)
    sales = [i for i in org.invoices.values() if i.type == "ACCREC"]
    share = Counter(("PARTIAL" if i.status == "AUTHORISED" and i.amount_paid else i.status)
                    for i in sales)
    n = len(sales)
    assert 0.36 < share["PAID"] / n < 0.44
    assert 0.07 < share["PARTIAL"] / n < 0.13
    assert 0.015 < share["VOIDED"] / n < 0.045
    assert 0.01 < share["DELETED"] / n < 0.035
    assert 0.03 < (share["DRAFT"] + share["SUBMITTED"]) / n < 0.07
    assert 0.03 < (len(org.invoices) - n) / len(org.invoices) < 0.07  # ACCPAY bills
    today = START.date()
    open_ = [i for i in sales if i.status == "AUTHORISED"]
    assert any(i.due_date < today for i in open_)
    assert any(i.due_date >= today for i in open_)
    assert {i.currency for i in sales} >= {"GBP", "USD", "EUR", "AUD"}
    assert all(i.currency_rate == 1 for i in sales if i.currency == "GBP")
    assert any(i.allocations for i in sales)
    assert any(p.status == "DELETED" for p in org.payments.values())
    assert any(p.payment_type == "ARCREDITPAYMENT" for p in org.payments.values())
    contacts = list(org.contacts.values())
    assert any(not c.email for c in contacts)
    assert any(c.persons for c in contacts)
    assert 0 < sum(c.status == "ARCHIVED" for c in contacts) < len(contacts) * 0.1
    moments = [i.updated for i in org.invoices.values()] + [c.updated for c in contacts]
    assert max(moments) <= START


def test_seed_is_deterministic_and_relative_to_the_clock() -> None:
    def make(start: datetime) -> Organisation:
        sandbox = XeroSandbox(clock=SimClock(start))
        sandbox.add_organisation(TENANT, name="Same Ltd", contacts=30, invoices=200, seed=11)
        return books(sandbox)

    a, b = make(START), make(START + timedelta(days=10))
    assert list(a.invoices) == list(b.invoices)
    for inv_a, inv_b in zip(a.invoices.values(), b.invoices.values(), strict=True):
        assert inv_a.total == inv_b.total
        assert inv_a.status == inv_b.status
        assert inv_b.date - inv_a.date == timedelta(days=10)
        assert org_lines_ids(a, inv_a) == org_lines_ids(b, inv_b)


def org_lines_ids(org: Organisation, inv: Any) -> list[str]:
    return [li.line_item_id for li in org.lines_of(inv)]


def test_seeding_is_fast(clock: SimClock) -> None:
    sandbox = XeroSandbox(clock=clock)
    started = time.perf_counter()
    sandbox.add_organisation(TENANT, name="Busy Ltd", contacts=500, invoices=20_000)
    assert time.perf_counter() - started < 5  # 100,000 invoices take about 6 s
    assert len(books(sandbox).invoices) == 20_000


# ------------------------------------------------------------------------- reading
def test_sdk_pages_through_every_invoice(sdk: Sdk, sandbox: XeroSandbox) -> None:
    org = books(sandbox)
    expected = {i.invoice_id for i in org.invoices.values() if i.status != "DELETED"}
    seen: list[str] = []
    page = 1
    while True:
        result = sdk.accounting.get_invoices(TENANT, page=page, page_size=250)
        assert result.pagination.page == page
        assert result.pagination.page_size == 250
        assert result.pagination.item_count == len(expected)
        seen += [str(i.invoice_id) for i in result.invoices]
        if page >= result.pagination.page_count:
            break
        page += 1
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    assert sdk.saved == 1  # the SDK refreshed once, through the sandbox
    updated = [org.invoices[i].updated for i in seen]
    assert updated == sorted(updated)


def test_page_size_is_capped_at_1000_and_defaults_to_100(sdk: Sdk, sandbox: XeroSandbox) -> None:
    capped = sdk.accounting.get_invoices(TENANT, page=1, page_size=5000)
    assert capped.pagination.page_size == 1000
    assert len(capped.invoices) == 1000 < capped.pagination.item_count
    assert capped.pagination.page_count == 2
    default = sdk.accounting.get_invoices(TENANT, page=3)
    assert default.pagination.page_size == 100
    assert len(default.invoices) == 100
    beyond = sdk.accounting.get_invoices(TENANT, page=99, page_size=1000)
    assert beyond.invoices == []
    assert beyond.pagination.page == 99


def test_unpaged_lists_have_no_pagination_and_no_line_items(server: SandboxServer,
                                                           access: str) -> None:
    unpaged = api_get(server, access, "Invoices").json()
    assert "pagination" not in unpaged
    assert all("LineItems" not in i for i in unpaged["Invoices"])
    paged = api_get(server, access, "Invoices", page=1, pageSize=5).json()
    assert all(i["LineItems"] for i in paged["Invoices"])
    assert api_get(server, access, "Invoices", page="x").status_code == 400
    assert api_get(server, access, "Invoices", page=0).status_code == 400


def test_invoice_json_follows_xero(server: SandboxServer, access: str) -> None:
    raw = api_get(server, access, "Invoices", page=1, pageSize=50).text
    for key in ("Total", "SubTotal", "TotalTax", "AmountDue", "AmountPaid", "AmountCredited"):
        values = re.findall(rf'"{key}":([-0-9.]+)', raw)
        assert values, key
        assert all(re.fullmatch(r"-?\d+\.\d\d", v) for v in values), key
    item = json.loads(raw)["Invoices"][0]
    sample = load_sample("xero_invoices_response.json")["Invoices"][2]
    assert set(sample) - {"SentToContact"} <= set(item)
    assert set(item["Contact"]) == set(sample["Contact"])  # a summary: no EmailAddress
    assert re.fullmatch(r"/Date\(\d+\+0000\)/", item["UpdatedDateUTC"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", item["UpdatedDateUTCString"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00", item["DateString"])
    full = api_get(server, access, f"Invoices/{item['InvoiceID']}").json()["Invoices"][0]
    assert "EmailAddress" in full["Contact"]
    assert full["LineItems"]
    number = api_get(server, access, f"Invoices/{item['InvoiceNumber']}").json()
    assert number["Invoices"][0]["InvoiceID"] == item["InvoiceID"]
    missing = api_get(server, access, "Invoices/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


def test_bills_are_listed_too(server: SandboxServer, access: str) -> None:
    types = Counter(i["Type"] for i in api_get(server, access, "Invoices").json()["Invoices"])
    assert types["ACCREC"] > 0
    assert types["ACCPAY"] > 0
    bills = api_get(server, access, "Invoices", where='Type=="ACCPAY"').json()["Invoices"]
    assert len(bills) == types["ACCPAY"]


def test_if_modified_since(sdk: Sdk, sandbox: XeroSandbox, server: SandboxServer, access: str,
                           clock: SimClock) -> None:
    since = clock.advance(timedelta(minutes=1))
    clock.advance(timedelta(seconds=1))
    invoice_id = open_sales_invoice(books(sandbox))
    payment_id = sandbox.record_payment(TENANT, invoice_id, Decimal("10.00"))
    changed = sdk.accounting.get_invoices(TENANT, if_modified_since=since)
    assert [str(i.invoice_id) for i in changed.invoices] == [invoice_id]
    http_date = api_get(server, access, "Invoices")  # no header: everything
    assert len(http_date.json()["Invoices"]) > 1
    response = requests.get(f"{server.url}/api.xro/2.0/Invoices", timeout=10, headers={
        **bearer(access), "If-Modified-Since": format_datetime(since, usegmt=True)})
    assert [i["InvoiceID"] for i in response.json()["Invoices"]] == [invoice_id]
    payments = sdk.accounting.get_payments(TENANT, if_modified_since=since).payments
    assert [str(p.payment_id) for p in payments] == [payment_id]
    later = sdk.accounting.get_invoices(TENANT, if_modified_since=clock.now())
    assert later.invoices == []
    bad = requests.get(f"{server.url}/api.xro/2.0/Invoices", timeout=10,
                       headers={**bearer(access), "If-Modified-Since": "yesterday"})
    assert bad.status_code == 400


def test_statuses_and_deleted_invoices(sdk: Sdk, sandbox: XeroSandbox, server: SandboxServer,
                                       access: str) -> None:
    org = books(sandbox)
    deleted = {i.invoice_id for i in org.invoices.values() if i.status == "DELETED"}
    assert deleted
    everything = {str(i.invoice_id) for i in sdk.accounting.get_invoices(TENANT).invoices}
    assert not everything & deleted  # only when asked for
    asked = sdk.accounting.get_invoices(TENANT, statuses=["DELETED"]).invoices
    assert {str(i.invoice_id) for i in asked} == deleted
    mixed = sdk.accounting.get_invoices(TENANT, statuses=["PAID", "AUTHORISED"]).invoices
    assert {value(i.status) for i in mixed} == {"PAID", "AUTHORISED"}
    by_where = api_get(server, access, "Invoices", where='Status=="DELETED"').json()["Invoices"]
    assert {i["InvoiceID"] for i in by_where} == deleted
    assert api_get(server, access, "Invoices", Statuses="PAID,LOST").status_code == 400
    assert api_get(server, access, "Invoices", IDs="INV-00001").status_code == 400
    some = sorted(deleted)[:2]
    by_ids = api_get(server, access, "Invoices", IDs=",".join(some), Statuses="DELETED")
    assert sorted(i["InvoiceID"] for i in by_ids.json()["Invoices"]) == some


def test_where_filters(server: SandboxServer, access: str, sandbox: XeroSandbox) -> None:
    org = books(sandbox)

    def ids(where: str) -> set[str]:
        response = api_get(server, access, "Invoices", where=where)
        assert response.status_code == 200, response.text
        return {i["InvoiceID"] for i in response.json()["Invoices"]}

    expected = {i.invoice_id for i in org.invoices.values()
                if i.type == "ACCREC" and i.status == "AUTHORISED"}
    assert ids('Type=="ACCREC" AND Status=="AUTHORISED"') == expected
    assert ids('Type == "ACCREC" && Status == "AUTHORISED"') == expected
    contact = next(iter(org.invoices.values())).contact_id
    assert ids(f'Contact.ContactID==Guid("{contact}") AND AmountDue > 0') == {
        i.invoice_id for i in org.invoices.values()
        if i.contact_id == contact and i.amount_due > 0 and i.status != "DELETED"}
    cutoff = START.date() - timedelta(days=30)
    assert ids(f"Date >= DateTime({cutoff.year}, {cutoff.month:02d}, {cutoff.day:02d})") == {
        i.invoice_id for i in org.invoices.values() if i.date >= cutoff and i.status != "DELETED"}
    bad = api_get(server, access, "Invoices", where='Colour=="red"')
    assert bad.status_code == 400
    assert bad.json()["Type"] == "QueryParseException"
    assert api_get(server, access, "Invoices", where='Total=="ten"').status_code == 400
    ordered = api_get(server, access, "Invoices", page=1, order="InvoiceNumber DESC").json()
    numbers = [i["InvoiceNumber"] for i in ordered["Invoices"] if i["Type"] == "ACCREC"]
    assert numbers == sorted(numbers, reverse=True)


def test_heavy_requests_are_refused_above_the_high_volume_threshold(
        server: SandboxServer, access: str, sandbox: XeroSandbox) -> None:
    sandbox.HIGH_VOLUME_THRESHOLD = 500
    ors = api_get(server, access, "Invoices", page=1, where='Status=="PAID" OR Status=="VOIDED"')
    assert ors.status_code == 400
    assert "Statuses" in ors.text
    unpaged = api_get(server, access, "Invoices")
    assert unpaged.status_code == 400
    assert api_get(server, access, "Invoices", page=1, Statuses="PAID,VOIDED").status_code == 200


def test_archived_contacts_only_with_include_archived(sdk: Sdk, sandbox: XeroSandbox) -> None:
    archived = {c.contact_id for c in books(sandbox).contacts.values() if c.status == "ARCHIVED"}
    assert archived
    default = {str(c.contact_id) for c in sdk.accounting.get_contacts(TENANT).contacts}
    assert default
    assert not default & archived
    every = {str(c.contact_id)
             for c in sdk.accounting.get_contacts(TENANT, include_archived=True).contacts}
    assert every == default | archived
    paged = sdk.accounting.get_contacts(TENANT, page=1, page_size=10, include_archived=True)
    assert paged.pagination.item_count == len(every)
    where = sdk.accounting.get_contacts(TENANT, where='ContactStatus=="ARCHIVED"').contacts
    assert {str(c.contact_id) for c in where} == archived


def test_contact_balances_agree_with_invoices(server: SandboxServer, access: str,
                                              sandbox: XeroSandbox) -> None:
    org = books(sandbox)
    contacts = api_get(server, access, "Contacts", includeArchived="true").json()["Contacts"]
    for contact in contacts:
        due = sum((i.amount_due for i in org.invoices.values() if i.type == "ACCREC"
                   and i.status == "AUTHORISED" and i.contact_id == contact["ContactID"]), ZERO)
        outstanding = contact["Balances"]["AccountsReceivable"]["Outstanding"]
        assert Decimal(str(outstanding)).quantize(Decimal("0.01")) == due


def test_payments_credit_notes_and_organisation(sdk: Sdk, sandbox: XeroSandbox) -> None:
    org = books(sandbox)
    payments = sdk.accounting.get_payments(TENANT).payments
    assert len(payments) == len(org.payments)
    assert {value(p.status) for p in payments} == {"AUTHORISED", "DELETED"}
    notes = sdk.accounting.get_credit_notes(TENANT, page=1).credit_notes
    allocated = next(n for n in notes if n.allocations)
    assert allocated.allocations[0].invoice.invoice_id
    assert all(n.remaining_credit >= 0 for n in notes)
    organisation = sdk.accounting.get_organisations(TENANT).organisations[0]
    assert (organisation.name, value(organisation.base_currency),
            value(organisation.country_code), value(organisation.timezone)) == (
        "Harbour Plumbing Ltd", "GBP", "GB", "GMTSTANDARDTIME")
    nz = sandbox.organisation(OTHER)
    assert (nz.currency, nz.timezone) == ("NZD", "NEWZEALANDSTANDARDTIME")


def test_xml_unless_json_is_asked_for(server: SandboxServer, access: str) -> None:
    headers = bearer(access)
    del headers["Accept"]
    response = requests.get(f"{server.url}/api.xro/2.0/Invoices?page=1&pageSize=2",
                            headers=headers, timeout=10)
    assert response.headers["Content-Type"].startswith("text/xml")
    assert response.text.startswith("<?xml")
    assert "<Invoices><Invoice>" in response.text


# ------------------------------------------------------------------ tenants and auth
def test_tenant_header_rules(sandbox: XeroSandbox, server: SandboxServer, access: str) -> None:
    sample = load_sample("xero_403_auth_unsuccessful.json")
    for tenant in (None, "00000000-0000-0000-0000-000000000000", OTHER):
        response = api_get(server, access, "Organisation", tenant=tenant)
        assert response.status_code == 403
        body = response.json()
        assert set(body) == set(sample)
        assert body["Detail"] == "AuthenticationUnsuccessful"
    both = refresh(server, sandbox.mint_refresh_token([TENANT, OTHER])).json()["access_token"]
    assert api_get(server, both, "Organisation", tenant=OTHER).status_code == 200
    connections = requests.get(f"{server.url}/connections", headers=bearer(both, None),
                               timeout=10).json()
    assert {c["tenantId"] for c in connections} == {TENANT, OTHER}
    assert len({c["authEventId"] for c in connections}) == 1


def test_expired_or_unknown_access_token_is_401(server: SandboxServer, access: str,
                                                clock: SimClock) -> None:
    sample = load_sample("xero_401_token_expired.json")
    assert api_get(server, access, "Organisation").status_code == 200
    clock.advance(timedelta(minutes=30))
    response = api_get(server, access, "Organisation")
    assert response.status_code == 401
    assert set(response.json()) == set(sample)
    assert response.json()["Detail"].startswith("TokenExpired: token expired at ")
    assert api_get(server, "made-up", "Organisation").status_code == 401


def test_access_token_looks_like_xero_s(server: SandboxServer, sandbox: XeroSandbox) -> None:
    body = refresh(server, sandbox.mint_refresh_token([TENANT])).json()
    assert body["expires_in"] == 1800
    assert body["token_type"] == "Bearer"
    assert "offline_access" in body["scope"].split()
    payload = body["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["authentication_event_id"]
    assert claims["exp"] - claims["nbf"] == 1800
    connections = requests.get(f"{server.url}/connections", timeout=10,
                               headers=bearer(body["access_token"], None))
    assert connections.json()[0]["authEventId"] == claims["authentication_event_id"]


def test_scopes_are_enforced(sandbox: XeroSandbox, server: SandboxServer) -> None:
    rt = sandbox.mint_refresh_token([TENANT], scope="offline_access accounting.contacts.read")
    body = refresh(server, rt).json()
    assert api_get(server, body["access_token"], "Contacts").status_code == 200
    denied = api_get(server, body["access_token"], "Invoices")
    assert denied.status_code == 401
    assert denied.json()["Detail"] == "AuthorizationUnsuccessful"
    wider = token_call(server, grant_type="refresh_token", refresh_token=body["refresh_token"],
                       scope="offline_access accounting.transactions")
    assert wider.status_code == 400
    assert wider.json() == {"error": "invalid_scope"}


def test_sdk_refresh_rotates_and_the_old_token_has_a_grace_period(
        sdk: Sdk, sandbox: XeroSandbox, server: SandboxServer, clock: SimClock) -> None:
    first_rt = sdk.token["refresh_token"]
    sdk.accounting.get_organisations(TENANT)  # refreshes through the sandbox
    assert sdk.saved == 1
    assert sdk.token["refresh_token"] != first_rt
    sdk_access, sdk_rt = sdk.token["access_token"], sdk.token["refresh_token"]
    clock.advance(timedelta(minutes=20))
    # the response was "lost": the old token is tried again within the grace period
    again = refresh(server, first_rt)
    assert again.status_code == 200
    pair = again.json()
    assert pair["refresh_token"] not in (first_rt, sdk_rt)
    assert api_get(server, pair["access_token"], "Organisation").status_code == 200
    # and the pair from the first use is gone
    assert api_get(server, sdk_access, "Organisation").status_code == 401
    assert refresh(server, sdk_rt).json() == {"error": "invalid_grant"}
    clock.advance(timedelta(minutes=10))  # 30 minutes after the first use
    expired = refresh(server, first_rt)
    assert expired.status_code == 400
    assert expired.json() == load_sample("xero_oauth_invalid_grant.json")
    assert refresh(server, pair["refresh_token"]).status_code == 200


def test_concurrent_refreshes_are_serialised(sandbox: XeroSandbox, server: SandboxServer) -> None:
    rt = sandbox.mint_refresh_token([TENANT])
    results: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: results.append(refresh(server, rt)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 4
    alive = [r for r in results
             if api_get(server, r.json()["access_token"], "Organisation").status_code == 200]
    assert len(alive) == 1  # each grace re-use replaced the previous pair


def test_unused_refresh_token_expires_after_60_days(sandbox: XeroSandbox, server: SandboxServer,
                                                    clock: SimClock) -> None:
    kept = sandbox.mint_refresh_token([TENANT])
    unused = sandbox.mint_refresh_token([TENANT])
    clock.advance(timedelta(days=59))
    kept = refresh(server, kept).json()["refresh_token"]
    clock.advance(timedelta(days=1))
    assert refresh(server, unused).json() == {"error": "invalid_grant"}
    assert refresh(server, kept).status_code == 200


def test_client_authentication(sandbox: XeroSandbox, server: SandboxServer) -> None:
    rt = sandbox.mint_refresh_token([TENANT])
    wrong = token_call(server, grant_type="refresh_token", refresh_token=rt, client_secret="no")
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_client"}
    basic = requests.post(f"{server.url}/connect/token", auth=(CLIENT_ID, CLIENT_SECRET),
                          data={"grant_type": "refresh_token", "refresh_token": rt}, timeout=10)
    assert basic.status_code == 200
    assert refresh(server, "never-issued").json() == {"error": "invalid_grant"}
    assert sandbox.stats["token_calls"] == 3


def test_revocation_ends_the_grant(sdk: Sdk, sandbox: XeroSandbox, server: SandboxServer) -> None:
    sdk.accounting.get_organisations(TENANT)
    rt, at = sdk.token["refresh_token"], sdk.token["access_token"]
    response = requests.post(f"{server.url}/connect/revocation", timeout=10,
                             data={"token": rt, "client_id": CLIENT_ID,
                                   "client_secret": CLIENT_SECRET})
    assert response.status_code == 200
    assert sdk.identity.get_connections() == []
    assert api_get(server, at, "Organisation").status_code == 403
    assert refresh(server, rt).json() == {"error": "invalid_grant"}
    other = sandbox.mint_refresh_token([TENANT])
    sandbox.revoke(other)
    assert refresh(server, other).json() == {"error": "invalid_grant"}


def test_deleting_a_connection(sdk: Sdk, sandbox: XeroSandbox, server: SandboxServer) -> None:
    connections = sdk.identity.get_connections()
    assert [(c.tenant_id, c.tenant_type) for c in connections] == [(TENANT, "ORGANISATION")]
    filtered = sdk.identity.get_connections(auth_event_id=connections[0].auth_event_id)
    assert len(filtered) == 1
    sdk.identity.delete_connection(connections[0].id)
    assert sdk.identity.get_connections() == []
    with pytest.raises(HTTPStatusException) as err:
        sdk.accounting.get_organisations(TENANT)
    assert err.value.status == 403


def test_authorization_code_flow_with_pkce(sandbox: XeroSandbox, server: SandboxServer) -> None:
    verifier = "a-long-random-code-verifier-string-of-43-chars-or-more"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()) \
        .rstrip(b"=").decode()
    redirect = "http://127.0.0.1:8000/oauth/xero/callback"
    response = requests.get(f"{server.url}/identity/connect/authorize", timeout=10,
                            allow_redirects=False, params={
                                "response_type": "code", "client_id": CLIENT_ID,
                                "redirect_uri": redirect, "state": "s-123",
                                "scope": "openid offline_access accounting.invoices "
                                         "accounting.payments accounting.contacts",
                                "code_challenge": challenge, "code_challenge_method": "S256"})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    assert query["state"] == "s-123"

    def exchange(verifier: str) -> requests.Response:
        return token_call(server, grant_type="authorization_code", code=query["code"],
                          redirect_uri=redirect, code_verifier=verifier)

    assert exchange("wrong-verifier").json() == {"error": "invalid_grant"}
    code = sandbox.authorize_code([TENANT, OTHER], redirect, code_challenge=challenge)
    query["code"] = code
    tokens = exchange(verifier)
    assert tokens.status_code == 200
    assert tokens.json()["refresh_token"]
    assert exchange(verifier).json() == {"error": "invalid_grant"}  # single use
    assert api_get(server, tokens.json()["access_token"], "Organisation",
                   tenant=OTHER).status_code == 200
    online = sandbox.authorize_code([TENANT], redirect, scope="accounting.invoices")
    no_rt = token_call(server, grant_type="authorization_code", code=online, redirect_uri=redirect)
    assert no_rt.status_code == 200
    assert "refresh_token" not in no_rt.json()
    bad_scope = requests.get(f"{server.url}/identity/connect/authorize", timeout=10,
                             allow_redirects=False, params={
                                 "response_type": "code", "client_id": CLIENT_ID,
                                 "redirect_uri": redirect, "scope": "everything"})
    assert "error=invalid_scope" in bad_scope.headers["Location"]


# ---------------------------------------------------------------------- rate limits
def limited(clock: SimClock, **limits: Any) -> tuple[XeroSandbox, SandboxServer, str]:
    sandbox = _sandbox(clock, **limits)
    server = SandboxServer(sandbox)
    server.start()
    at = refresh(server, sandbox.mint_refresh_token([TENANT, OTHER])).json()["access_token"]
    return sandbox, server, at


def fresh_token(sandbox: XeroSandbox, server: SandboxServer) -> str:
    return str(refresh(server, sandbox.mint_refresh_token([TENANT])).json()["access_token"])


def test_minute_limit(clock: SimClock) -> None:
    sandbox, server, at = limited(clock)
    try:
        remaining = []
        for _ in range(60):
            response = api_get(server, at, "Organisation")
            assert response.status_code == 200
            remaining.append(int(response.headers["X-MinLimit-Remaining"]))
        assert remaining == list(range(59, -1, -1))
        assert response.headers["X-DayLimit-Remaining"] == "4940"
        clock.advance(timedelta(seconds=15))
        throttled = api_get(server, at, "Organisation")
        assert throttled.status_code == 429
        assert throttled.headers["X-Rate-Limit-Problem"] == "minute"
        assert throttled.headers["Retry-After"] == "45"
        assert throttled.headers["X-MinLimit-Remaining"] == "0"
        assert "X-AppMinLimit-Remaining" in throttled.headers
        assert api_get(server, at, "Organisation", tenant=OTHER).status_code == 200
        clock.advance(timedelta(seconds=45))
        assert api_get(server, at, "Organisation").status_code == 200
        assert sandbox.stats[TENANT]["throttled"] == 1
    finally:
        server.stop()


def test_day_limit_is_a_fixed_window_per_tenant(clock: SimClock) -> None:
    sandbox, server, at = limited(clock, day_limit=10)
    try:
        for _ in range(5):
            assert api_get(server, at, "Organisation").status_code == 200
        clock.advance(timedelta(hours=23))
        at = fresh_token(sandbox, server)
        for _ in range(5):
            assert api_get(server, at, "Organisation").status_code == 200
        day = api_get(server, at, "Organisation")
        assert day.status_code == 429
        assert day.headers["X-Rate-Limit-Problem"] == "day"
        assert day.headers["Retry-After"] == str(3600)
        assert day.headers["X-DayLimit-Remaining"] == "0"
        clock.advance(timedelta(hours=1))  # the window resets 24 h after the first call
        fresh = api_get(server, fresh_token(sandbox, server), "Organisation")
        assert fresh.status_code == 200
        assert fresh.headers["X-DayLimit-Remaining"] == "9"
    finally:
        server.stop()


def test_app_minute_limit_spans_tenants_and_connections(clock: SimClock) -> None:
    _, server, at = limited(clock, app_minute_limit=4)
    try:
        assert api_get(server, at, "Organisation").status_code == 200
        assert api_get(server, at, "Organisation", tenant=OTHER).status_code == 200
        connections = requests.get(f"{server.url}/connections", headers=bearer(at, None),
                                   timeout=10)
        assert connections.status_code == 200
        assert connections.headers["X-AppMinLimit-Remaining"] == "1"
        assert "X-MinLimit-Remaining" not in connections.headers
        assert api_get(server, at, "Organisation").status_code == 200
        app = api_get(server, at, "Organisation", tenant=OTHER)
        assert app.status_code == 429
        assert app.headers["X-Rate-Limit-Problem"] == "appminute"
        assert app.headers["Retry-After"] == "60"
        clock.advance(timedelta(seconds=60))
        assert api_get(server, at, "Organisation", tenant=OTHER).status_code == 200
    finally:
        server.stop()


def test_token_and_connection_calls_do_not_use_tenant_limits(clock: SimClock) -> None:
    sandbox, server, at = limited(clock, minute_limit=2, day_limit=2)
    try:
        rt = sandbox.mint_refresh_token([TENANT])
        for _ in range(3):
            rt = refresh(server, rt).json()["refresh_token"]
            requests.get(f"{server.url}/connections", headers=bearer(at, None), timeout=10)
        assert api_get(server, at, "Organisation").headers["X-MinLimit-Remaining"] == "1"
        assert api_get(server, at, "Organisation").status_code == 200
        both = api_get(server, at, "Organisation")
        assert both.headers["X-Rate-Limit-Problem"] == "day"  # day frees last: it is reported
    finally:
        server.stop()


def test_concurrent_limit(clock: SimClock) -> None:
    sandbox, server, at = limited(clock)
    try:
        codes: list[int] = []
        with sandbox.holding_requests() as gate:
            threads = [threading.Thread(
                target=lambda: codes.append(api_get(server, at, "Organisation").status_code))
                for _ in range(5)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            while sandbox.in_flight(TENANT) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            sixth = api_get(server, at, "Organisation")
            assert sixth.status_code == 429
            assert sixth.headers["X-Rate-Limit-Problem"] == "concurrent"
            assert sixth.headers["Retry-After"] == "1"
            gate.set()
            for t in threads:
                t.join()
        assert codes == [200] * 5
        assert api_get(server, at, "Organisation").status_code == 200
    finally:
        server.stop()


def test_injected_faults(sandbox: XeroSandbox, server: SandboxServer, access: str) -> None:
    sandbox.inject_faults(503, 2, tenant_id=TENANT)
    assert [api_get(server, access, "Organisation").status_code for _ in range(3)] == [503, 503,
                                                                                        200]
    assert sandbox.stats[TENANT]["faults"] == 2
    sandbox.inject_faults(401, 1)
    expired = api_get(server, access, "Organisation")
    assert expired.status_code == 401
    assert expired.json()["Detail"].startswith("TokenExpired")


# ------------------------------------------------------------------- writing back
def put_history(server: SandboxServer, access: str, invoice_id: str, details: str,
                key: str | None = None) -> requests.Response:
    headers = {**bearer(access), "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return requests.put(f"{server.url}/api.xro/2.0/Invoices/{invoice_id}/History",
                        json={"HistoryRecords": [{"Details": details}]}, headers=headers,
                        timeout=10)


def test_history_notes_and_their_250_character_limit(sdk: Sdk, sandbox: XeroSandbox,
                                                     clock: SimClock) -> None:
    invoice_id = open_sales_invoice(books(sandbox))
    before = books(sandbox).invoices[invoice_id].updated
    clock.advance(timedelta(seconds=5))
    created = sdk.accounting.create_invoice_history(
        TENANT, invoice_id, HistoryRecords(history_records=[HistoryRecord(details="x" * 250)]))
    assert created.history_records[0].details == "x" * 250
    assert books(sandbox).invoices[invoice_id].updated > before  # a note is a change
    with pytest.raises(AccountingBadRequestException) as err:
        sdk.accounting.create_invoice_history(
            TENANT, invoice_id, HistoryRecords(history_records=[HistoryRecord(details="y" * 251)]))
    assert err.value.error_data["Type"] == "ValidationException"
    assert "250" in err.value.error_data["Elements"][0]["ValidationErrors"][0]["Message"]
    notes = [h for h in sandbox.history(TENANT, invoice_id) if h["Changes"] == "Note"]
    assert [n["Details"] for n in notes] == ["x" * 250]
    listed = sdk.accounting.get_invoice_history(TENANT, invoice_id).history_records
    assert listed[0].details == "x" * 250
    assert len(listed) > 1


def test_idempotency_key_replays_within_six_minutes(
        sandbox: XeroSandbox, server: SandboxServer, access: str, clock: SimClock) -> None:
    invoice_id = open_sales_invoice(books(sandbox))
    first = put_history(server, access, invoice_id, "Reminder 1 sent", key="note-1")
    replay = put_history(server, access, invoice_id, "Reminder 1 sent", key="note-1")
    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()  # the very same response, Id included
    clash = put_history(server, access, invoice_id, "Something else", key="note-1")
    assert clash.status_code == 400
    assert put_history(server, access, invoice_id, "z", key="k" * 129).status_code == 400
    notes = [h for h in sandbox.history(TENANT, invoice_id) if h["Changes"] == "Note"]
    assert len(notes) == 1
    clock.advance(timedelta(minutes=6))
    assert put_history(server, access, invoice_id, "Reminder 1 sent", key="note-1").json() \
        != first.json()
    assert len([h for h in sandbox.history(TENANT, invoice_id) if h["Changes"] == "Note"]) == 2
    assert sandbox.stats[TENANT]["notes"] == 2


def test_a_lost_response_is_recovered_with_the_idempotency_key(
        sandbox: XeroSandbox, server: SandboxServer, access: str) -> None:
    invoice_id = open_sales_invoice(books(sandbox))
    sandbox.inject_faults(504, 1, after=True)
    lost = put_history(server, access, invoice_id, "Final notice", key="final-1")
    assert lost.status_code == 504
    retried = put_history(server, access, invoice_id, "Final notice", key="final-1")
    assert retried.status_code == 200
    notes = [h for h in sandbox.history(TENANT, invoice_id) if h["Changes"] == "Note"]
    assert [n["Details"] for n in notes] == ["Final notice"]


def test_email_and_online_invoice(sdk: Sdk, sandbox: XeroSandbox, server: SandboxServer,
                                  access: str) -> None:
    org = books(sandbox)
    invoice_id = next(i.invoice_id for i in org.invoices.values()
                      if i.type == "ACCREC" and i.status == "AUTHORISED"
                      and org.contacts[i.contact_id].email)
    sdk.accounting.email_invoice(TENANT, invoice_id, {})
    assert org.invoices[invoice_id].sent_to_contact
    assert org.emails_sent[-1][1] == invoice_id
    url = sdk.accounting.get_online_invoice(TENANT, invoice_id).online_invoices[0]
    assert url.online_invoice_url.startswith("https://in.xero.com/")
    draft = next(i.invoice_id for i in org.invoices.values() if i.status == "DRAFT")
    response = requests.post(f"{server.url}/api.xro/2.0/Invoices/{draft}/Email", json={},
                             timeout=10, headers=bearer(access))
    assert response.status_code == 400
    assert api_get(server, access, f"Invoices/{draft}/OnlineInvoice").status_code == 400
    no_email = next(i for i in org.invoices.values()
                    if i.type == "ACCREC" and i.status == "AUTHORISED")
    org.contacts[no_email.contact_id].email = ""
    response = requests.post(f"{server.url}/api.xro/2.0/Invoices/{no_email.invoice_id}/Email",
                             json={}, headers=bearer(access), timeout=10)
    assert response.status_code == 400
    assert "email address" in response.text
    sandbox.EMAIL_DAY_LIMIT = 1
    with pytest.raises(AccountingBadRequestException):
        sdk.accounting.email_invoice(TENANT, invoice_id, {})


def test_creating_updating_and_paying_invoices_through_the_api(
        sdk: Sdk, sandbox: XeroSandbox, server: SandboxServer, access: str) -> None:
    org = books(sandbox)
    contact_id = next(c.contact_id for c in org.contacts.values() if c.status == "ACTIVE")
    created = sdk.accounting.create_invoices(TENANT, Invoices(invoices=[Invoice(
        type="ACCREC", contact=Contact(contact_id=contact_id), status="AUTHORISED",
        date=date(2026, 11, 1), due_date=date(2026, 12, 1),
        line_items=[LineItem(description="Boiler service", quantity=2.0, unit_amount=150.0,
                             account_code="200")])])).invoices[0]
    assert (created.sub_total, created.total_tax, created.total) == (300, 60, 360)
    mine = sdk.accounting.get_invoices(TENANT, created_by_my_app=True).invoices
    assert [i.invoice_id for i in mine] == [created.invoice_id]
    paid = sdk.accounting.create_payment(TENANT, Payment(
        invoice=Invoice(invoice_id=created.invoice_id), account=Account(code="090"),
        amount=360.0, date=date(2026, 11, 20))).payments[0]
    assert paid.amount == 360
    again = sdk.accounting.get_invoice(TENANT, created.invoice_id).invoices[0]
    assert value(again.status) == "PAID"
    assert again.amount_due == 0
    assert again.fully_paid_on_date
    with pytest.raises(AccountingBadRequestException):  # a paid invoice cannot be voided
        sdk.accounting.update_invoice(TENANT, created.invoice_id, Invoices(invoices=[
            Invoice(invoice_id=created.invoice_id, status="VOIDED")]))
    with pytest.raises(AccountingBadRequestException):  # Invoice # must be unique
        sdk.accounting.create_invoices(TENANT, Invoices(invoices=[Invoice(
            type="ACCREC", contact=Contact(contact_id=contact_id),
            invoice_number=created.invoice_number, line_items=[LineItem(
                description="x", quantity=1.0, unit_amount=1.0, account_code="200")])]))
    overpay = requests.put(f"{server.url}/api.xro/2.0/Payments", headers=bearer(access),
                           timeout=10, json={"Invoice": {"InvoiceID": open_sales_invoice(org)},
                                             "Account": {"Code": "090"}, "Amount": 10 ** 7})
    assert overpay.status_code == 400
    assert "exceeds" in overpay.text
    mixed = requests.post(f"{server.url}/api.xro/2.0/Invoices?summarizeErrors=false",
                          headers=bearer(access), timeout=10, json={"Invoices": [
                              {"Type": "ACCREC", "Contact": {"ContactID": contact_id},
                               "LineItems": [{"Description": "ok", "UnitAmount": 5,
                                              "AccountCode": "200"}]},
                              {"Type": "ACCREC"}]})
    assert mixed.status_code == 200
    assert [i.get("HasErrors") for i in mixed.json()["Invoices"]] == [False, True]
    assert_books_balance(org)


def test_a_person_s_actions_follow_xero_s_rules(sandbox: XeroSandbox, clock: SimClock) -> None:
    org = books(sandbox)
    part_paid = open_sales_invoice(org, paid=True)
    with pytest.raises(XeroRuleError):
        sandbox.void_invoice(TENANT, part_paid)
    with pytest.raises(XeroRuleError):
        sandbox.delete_invoice(TENANT, part_paid)
    unpaid = open_sales_invoice(org)
    open_ids = sandbox.open_invoice_ids(TENANT)
    assert unpaid in open_ids
    assert part_paid in open_ids
    assert all(org.invoices[i].type == "ACCREC" and org.invoices[i].amount_due > 0
               for i in open_ids)
    clock.advance(timedelta(minutes=1))
    sandbox.void_invoice(TENANT, unpaid)
    assert org.invoices[unpaid].status == "VOIDED"
    assert org.invoices[unpaid].updated == clock.now()
    draft = next(i.invoice_id for i in org.invoices.values() if i.status == "DRAFT")
    sandbox.delete_invoice(TENANT, draft)
    assert sandbox.get(TENANT, "Invoice", draft)["Status"] == "DELETED"

    contact = org.invoices[part_paid].contact_id
    new = sandbox.create_invoice(TENANT, contact, Decimal("250.00"),
                                 due_date=START.date() + timedelta(days=14))
    assert sandbox.get(TENANT, "Invoices", new)["Total"] == Decimal("250.00")
    with pytest.raises(XeroRuleError):
        sandbox.record_payment(TENANT, new, Decimal("250.01"))
    payment = sandbox.record_payment(TENANT, new, Decimal("100"))
    note = sandbox.create_credit_note(TENANT, contact, Decimal("40"))
    sandbox.allocate_credit_note(TENANT, note, new, Decimal("40"))
    view = sandbox.get(TENANT, "Invoice", new)
    assert (view["AmountPaid"], view["AmountCredited"], view["AmountDue"]) == (
        Decimal("100.00"), Decimal("40.00"), Decimal("110.00"))
    assert sandbox.get(TENANT, "CreditNote", note)["Status"] == "PAID"
    sandbox.record_payment(TENANT, new)  # the rest
    assert sandbox.get(TENANT, "Invoice", new)["Status"] == "PAID"
    sandbox.delete_payment(TENANT, payment)
    assert sandbox.get(TENANT, "Invoice", new)["AmountDue"] == Decimal("100.00")
    assert sandbox.get(TENANT, "Invoice", new)["Status"] == "AUTHORISED"
    clock.advance(timedelta(minutes=1))
    sandbox.edit_invoice(TENANT, new, due_date=START.date() + timedelta(days=30),
                         reference="PO 77")
    assert org.invoices[new].reference == "PO 77"
    assert org.invoices[new].updated == clock.now()
    with pytest.raises(XeroRuleError):  # amounts of an invoice with payments are locked
        sandbox.edit_invoice(TENANT, new, amount=Decimal("999"))
    with pytest.raises(TypeError):
        sandbox.edit_invoice(TENANT, new, colour="red")
    assert_books_balance(org)


def test_serve_starts_a_server(clock: SimClock) -> None:
    sandbox, server = serve(clock=clock)
    try:
        sandbox.add_organisation(TENANT, name="Tiny Ltd", contacts=5, invoices=10)
        at = refresh(server, sandbox.mint_refresh_token([TENANT])).json()["access_token"]
        assert api_get(server, at, "Organisation").json()["Organisations"][0]["Name"] == \
            "Tiny Ltd"
        assert sandbox.stats[TENANT]["api_calls"] == 1
    finally:
        server.stop()
