"""The QuickBooks sandbox, driven over real HTTP by the real SDKs (python-quickbooks, intuitlib).

Sample payloads come from ``tests/fixtures/samples`` (see its README for sources): the emulator's
answers must have their shapes.
"""


from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.batch import batch_update
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import (
    AuthorizationException,
    ObjectNotFoundException,
    QuickbooksException,
    UnsupportedException,
    ValidationException,
)
from quickbooks.objects import Customer, Invoice, Payment
from requests_oauthlib import OAuth2Session

from arsync.clock import SimClock
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.qbo_ledger import check_books
from arsync.sandbox.qbo_wire import QBOFault
from arsync.sandbox.quickbooks import QuickBooksSandbox
from tests.conftest import sample

REALM, OTHER = "9130355", "4620816"
CLIENT = ("sandbox-qbo-client", "sandbox-qbo-secret")
START = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)  # 10:00 in the company's Pacific zone
QBO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


@pytest.fixture(autouse=True)
def _insecure_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


def _start(sandbox: QuickBooksSandbox) -> Iterator[str]:
    server = SandboxServer(sandbox)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def sandbox(clock: SimClock) -> QuickBooksSandbox:
    sb = QuickBooksSandbox(clock=clock, rate_limits=False)
    sb.add_company(REALM, name="Sonnenschein Landscaping", customers=40, invoices=400, seed=7)
    sb.add_company(OTHER, name="Other Books", customers=5, invoices=20, seed=2)
    return sb


@pytest.fixture
def url(sandbox: QuickBooksSandbox) -> Iterator[str]:
    yield from _start(sandbox)


def refresh(url: str, token: str, auth: tuple[str, str] = CLIENT) -> requests.Response:
    return requests.post(f"{url}/oauth2/v1/tokens/bearer", auth=auth, timeout=10,
                         data={"grant_type": "refresh_token", "refresh_token": token})


def access_token(sandbox: QuickBooksSandbox, url: str, realm: str = REALM) -> str:
    reply = refresh(url, sandbox.mint_refresh_token(realm))
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def client(url: str, token: str, realm: str = REALM) -> QuickBooks:
    qb = QuickBooks(company_id=realm, minorversion=75, use_decimal=True)
    qb.api_url_v3 = f"{url}/v3"
    qb.session = OAuth2Session(CLIENT[0], token={"access_token": token, "token_type": "Bearer"})
    return qb


@pytest.fixture
def qb(sandbox: QuickBooksSandbox, url: str) -> QuickBooks:
    return client(url, access_token(sandbox, url))


def api(url: str, token: str, path: str, *, method: str = "GET", realm: str = REALM,
        **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
               **kw.pop("headers", {})}
    return requests.request(method, f"{url}/v3/company/{realm}/{path}", headers=headers,
                            timeout=10, **kw)


def all_invoices(qb: QuickBooks) -> list[Invoice]:
    rows: list[Invoice] = []
    while True:
        page = Invoice.query(f"SELECT * FROM Invoice STARTPOSITION {len(rows) + 1} "
                             "MAXRESULTS 1000", qb=qb)
        rows += page
        if len(page) < 1000:
            return rows


def open_invoice(qb: QuickBooks) -> Invoice:
    """An unpaid, emailed invoice (the dunning case)."""
    for inv in Invoice.where("Balance > '0'", max_results=200, qb=qb):
        if Decimal(inv.Balance) == Decimal(inv.TotalAmt) and inv.EmailStatus == "EmailSent":
            return inv
    raise AssertionError("seed has no open invoice")


# --- queries --------------------------------------------------------------------------------------

def test_paging_is_one_based_and_counts_match(qb: QuickBooks) -> None:
    total = Invoice.count(qb=qb)
    pages, start = [], 1
    while True:
        page = Invoice.query(f"SELECT * FROM Invoice STARTPOSITION {start} MAXRESULTS 100", qb=qb)
        pages.append(page)
        if len(page) < 100:
            break
        start += 100
    ids = [int(inv.Id) for page in pages for inv in page]
    assert len(ids) == total == len(set(ids))
    assert ids == sorted(ids)  # default order: Id ascending
    first = Invoice.query("SELECT * FROM Invoice STARTPOSITION 1 MAXRESULTS 2", qb=qb)
    second = Invoice.query("SELECT * FROM Invoice STARTPOSITION 2 MAXRESULTS 1", qb=qb)
    assert second[0].Id == first[1].Id


def test_query_limits_and_grammar(qb: QuickBooks, sandbox: QuickBooksSandbox, url: str) -> None:
    with pytest.raises(ValidationException) as err:
        Invoice.query("SELECT * FROM Invoice MAXRESULTS 1001", qb=qb)
    assert err.value.error_code == 4001
    assert "MAXRESULTS exceeds max allowed 1000" in err.value.detail
    assert len(Invoice.query("SELECT * FROM Invoice MAXRESULTS 1000", qb=qb)) == Invoice.count(
        qb=qb) > 100
    with pytest.raises(ValidationException) as err:
        Invoice.where("Balance > '0' OR TotalAmt > '10'", qb=qb)
    assert err.value.error_code == 4000
    with pytest.raises(ValidationException) as err:
        Invoice.where("PrivateNote = 'x'", qb=qb)  # not a filterable property
    assert err.value.error_code == 4001
    assert len(Invoice.query("SELECT * FROM Invoice", qb=qb)) == 100  # default MAXRESULTS
    token = access_token(sandbox, url)
    got = api(url, token, "query", params={"query": "select count(*) from Invoice "
                                           "where Balance > '0'"}).json()
    assert set(got["QueryResponse"]) == {"totalCount"}
    empty = api(url, token, "query", params={"query": "select * from Invoice where "
                                             "DocNumber = 'nope'"}).json()
    assert empty["QueryResponse"] == {}
    assert "time" in empty


def test_where_in_like_orderby(qb: QuickBooks, sandbox: QuickBooksSandbox) -> None:
    today = sandbox.company(REALM).today().isoformat()
    overdue = Invoice.where(f"Balance > '0' AND DueDate < '{today}'", order_by="DueDate DESC",
                            max_results=1000, qb=qb)
    assert overdue
    assert all(inv.DueDate < today and Decimal(inv.Balance) > 0 for inv in overdue)
    assert [i.DueDate for i in overdue] == sorted((i.DueDate for i in overdue), reverse=True)
    due_soon = Invoice.where(f"Balance > '0' AND DueDate >= '{today}'", qb=qb, max_results=1000)
    assert due_soon  # the seed has invoices due in the coming days, too
    picked = Invoice.choose([overdue[0].Id, overdue[1].Id], qb=qb)
    assert {i.Id for i in picked} == {overdue[0].Id, overdue[1].Id}
    name = overdue[0].CustomerRef.name
    like = Customer.where(f"DisplayName LIKE '{name[:4]}%'", qb=qb)
    assert name in {c.DisplayName for c in like}
    since = Invoice.where("MetaData.LastUpdatedTime >= '2026-11-10'",
                          order_by="MetaData.LastUpdatedTime", max_results=1000, qb=qb)
    stamps = [datetime.fromisoformat(i.MetaData.LastUpdatedTime) for i in since]
    assert stamps == sorted(stamps)
    assert min(stamps) >= datetime.fromisoformat(
        "2026-11-10T00:00:00-08:00")


def test_customer_query_defaults_to_active(qb: QuickBooks, sandbox: QuickBooksSandbox) -> None:
    co = sandbox.company(REALM)
    inactive = [c for c in co.objects["Customer"].values() if not c["Active"]]
    assert inactive, "seed should include inactive customers"
    assert Customer.count(qb=qb) == 40 - len(inactive)
    assert Customer.count("Active IN (true, false)", qb=qb) == 40


# --- CDC ------------------------------------------------------------------------------------------

def test_cdc_caps_at_1000_oldest_first_with_tombstones(clock: SimClock) -> None:
    sb = QuickBooksSandbox(clock=clock, rate_limits=False)
    sb.add_company(REALM, name="Busy Co", customers=200, invoices=3000, seed=3)
    for url in _start(sb):
        qb = client(url, access_token(sb, url))
        since = "2026-10-22T00:00:00-07:00"
        raw = qb.change_data_capture("Invoice,Payment,Customer,CreditMemo", since)
        groups = raw["CDCResponse"][0]["QueryResponse"]
        assert len(groups) == 4
        objects = [o for g in groups for name in ("Invoice", "Payment", "Customer", "CreditMemo")
                   for o in g.get(name, [])]
        assert len(objects) == 1000
        for g in groups:
            name = next(k for k in g if k not in ("startPosition", "maxResults"))
            assert g["startPosition"] == 1
            assert g["maxResults"] == len(g[name])
            kinds = ["deleted" if o.get("status") == "Deleted" else "live" for o in g[name]]
            assert kinds == sorted(kinds, key=lambda k: k == "deleted")  # deleted come last
        stamps = sorted(datetime.fromisoformat(o["MetaData"]["LastUpdatedTime"])
                        for o in objects)
        co = sb.company(REALM)
        newest_kept = stamps[-1].timestamp()
        later = [ts for e in ("Invoice", "Payment", "Customer", "CreditMemo")
                 for ts in co.updated[e].values() if ts > newest_kept + 1]
        assert later, "the cap must have cut off newer changes"
        deleted = [o for g in groups for o in g.get("Invoice", []) if o.get("status")]
        assert deleted
        assert set(deleted[0]) == {"status", "domain", "Id", "MetaData"}
        typed = change_data_capture([Invoice, Payment], since, qb=qb)
        assert any(getattr(i, "status", "") == "Deleted" for i in typed.Invoice)


def test_cdc_window_and_deletes(qb: QuickBooks, sandbox: QuickBooksSandbox,
                                clock: SimClock) -> None:
    with pytest.raises(UnsupportedException) as err:
        qb.change_data_capture("Invoice", "2026-10-19T00:00:00-08:00")  # 31+ days back
    assert "older than fixed days" in err.value.detail
    inv = open_invoice(qb)
    clock.advance(timedelta(minutes=5))
    mark = clock.now()
    sandbox.delete_invoice(REALM, inv.Id)
    clock.advance(timedelta(seconds=1))
    raw = qb.change_data_capture("Invoice", mark.isoformat())
    got = raw["CDCResponse"][0]["QueryResponse"][0]["Invoice"]
    assert got == [{"status": "Deleted", "domain": "QBO", "Id": inv.Id,
                    "MetaData": {"LastUpdatedTime": "2026-11-20T10:05:00-08:00"}}]
    assert raw["time"] == "2026-11-20T10:05:01-08:00"
    with pytest.raises(ObjectNotFoundException):
        Invoice.get(inv.Id, qb=qb)


# --- writes ---------------------------------------------------------------------------------------

def test_stale_sync_token_is_5010(qb: QuickBooks, sandbox: QuickBooksSandbox) -> None:
    inv = open_invoice(qb)
    sandbox.edit_invoice(REALM, inv.Id, DueDate="2026-12-24")  # someone edits in QuickBooks
    note = {"Id": inv.Id, "SyncToken": inv.SyncToken, "sparse": True, "PrivateNote": "chased"}
    with pytest.raises(QuickbooksException) as err:
        qb.update_object("Invoice", json.dumps(note))
    assert err.value.error_code == 5010
    assert "Stale Object Error" in err.value.detail
    fresh = Invoice.get(inv.Id, qb=qb)
    assert int(fresh.SyncToken) == int(inv.SyncToken) + 1
    assert fresh.DueDate == "2026-12-24"
    reply = qb.update_object("Invoice", json.dumps({**note, "SyncToken": fresh.SyncToken}))
    assert reply["Invoice"]["SyncToken"] == str(int(fresh.SyncToken) + 1)
    assert reply["Invoice"]["PrivateNote"] == "chased"
    assert reply["Invoice"]["MetaData"]["LastUpdatedTime"] == "2026-11-20T10:00:00-08:00"


def test_sparse_keeps_and_full_update_nulls(qb: QuickBooks, sandbox: QuickBooksSandbox) -> None:
    inv = open_invoice(qb)
    sandbox.edit_invoice(REALM, inv.Id, PrivateNote="Agreed a payment plan",
                         DueDate="2026-12-31")
    body = sandbox.get(REALM, "Invoice", inv.Id)
    sparse = qb.update_object("Invoice", json.dumps({
        "Id": inv.Id, "SyncToken": body["SyncToken"], "sparse": True,
        "CustomerMemo": {"value": "Please pay"}}))["Invoice"]
    assert sparse["PrivateNote"] == "Agreed a payment plan"
    assert sparse["DueDate"] == "2026-12-31"
    assert sparse["BillEmail"] == body["BillEmail"]
    # A "full" update that sends only what it wants to change wipes the rest.
    full = qb.update_object("Invoice", json.dumps({
        "Id": inv.Id, "SyncToken": sparse["SyncToken"], "CustomerRef": body["CustomerRef"],
        "Line": json.loads(json.dumps(body["Line"], default=str)),
        "PrivateNote": "only this"}))["Invoice"]
    assert full["PrivateNote"] == "only this"
    for gone in ("CustomerMemo", "BillEmail", "SalesTermRef"):
        assert gone not in full
    assert full["DueDate"] == full["TxnDate"]  # no terms left: due on the invoice date
    assert Decimal(str(full["TotalAmt"])) == Decimal(str(body["TotalAmt"]))


def test_full_update_through_the_sdk_object(qb: QuickBooks) -> None:
    inv = Invoice.get(open_invoice(qb).Id, qb=qb)
    inv.PrivateNote = "full update via save()"
    inv.CustomerMemo = None  # python-quickbooks drops None: the field is omitted, hence nulled
    saved = inv.save(qb=qb)
    assert saved.PrivateNote == "full update via save()"
    assert not hasattr(saved, "CustomerMemo") or saved.CustomerMemo is None
    assert Decimal(saved.Balance) == Decimal(inv.Balance)


def test_string_limit_and_unknown_fields(qb: QuickBooks) -> None:
    inv = open_invoice(qb)
    with pytest.raises(ValidationException) as err:
        qb.update_object("Invoice", json.dumps({"Id": inv.Id, "SyncToken": inv.SyncToken,
                                                "sparse": True, "PrivateNote": "x" * 4001}))
    assert err.value.error_code == 2050
    with pytest.raises(ValidationException) as err:
        qb.update_object("Invoice", json.dumps({"Id": inv.Id, "SyncToken": inv.SyncToken,
                                                "sparse": True, "Notes": "not a field"}))
    assert err.value.error_code == 2010
    assert "Unrecognized field" in err.value.detail


def test_void_and_delete_shapes(qb: QuickBooks, sandbox: QuickBooksSandbox) -> None:
    inv = open_invoice(qb)
    voided = inv.void(qb=qb)["Invoice"]
    assert voided["TotalAmt"] == 0
    assert voided["Balance"] == 0
    assert voided["PrivateNote"].startswith("Voided")
    assert all(line["Amount"] == 0 for line in voided["Line"])
    assert set(sample("qbo_invoice_void_response.json")["Invoice"]) - set(voided) <= {
        "AllowOnlineACHPayment", "AllowOnlineCreditCardPayment"} - set(voided)
    fresh = Invoice.where("Balance = '0' AND TotalAmt > '0'", max_results=1, qb=qb)[0]
    with pytest.raises(QuickbooksException) as err:  # payments are linked: the API refuses
        fresh.delete(qb=qb)
    assert err.value.error_code == 6000
    target = Invoice.get(sandbox.create_invoice(REALM, fresh.CustomerRef.value, Decimal("99.50"),
                                                due_date=date(2026, 12, 20)), qb=qb)
    deleted = target.delete(qb=qb)
    expected = sample("qbo_invoice_delete_response.json")
    assert set(deleted) == set(expected)
    assert deleted["Invoice"] == {"status": "Deleted", "domain": "QBO", "Id": target.Id}
    with pytest.raises(ObjectNotFoundException):
        Invoice.get(target.Id, qb=qb)
    assert check_books(sandbox.company(REALM)) == []


def test_payment_applies_atomically(qb: QuickBooks, sandbox: QuickBooksSandbox) -> None:
    by_customer: dict[str, list[Invoice]] = {}
    for inv in Invoice.where("Balance > '10'", max_results=1000, qb=qb):
        by_customer.setdefault(inv.CustomerRef.value, []).append(inv)
    a, b = next(invs for invs in by_customer.values() if len(invs) > 1)[:2]
    bad = {"CustomerRef": {"value": a.CustomerRef.value}, "TotalAmt": "10000000",
           "Line": [{"Amount": str(a.Balance),
                     "LinkedTxn": [{"TxnId": a.Id, "TxnType": "Invoice"}]},
                    {"Amount": str(Decimal(b.Balance) + 1),  # one cent too much
                     "LinkedTxn": [{"TxnId": b.Id, "TxnType": "Invoice"}]}]}
    with pytest.raises(QuickbooksException) as err:
        qb.create_object("Payment", json.dumps(bad))
    assert err.value.error_code == 6000
    assert Invoice.get(a.Id, qb=qb).SyncToken == a.SyncToken  # nothing applied
    good = {**bad, "TotalAmt": "10.00",
            "Line": [{"Amount": "10.00", "LinkedTxn": [{"TxnId": a.Id, "TxnType": "Invoice"}]}]}
    pay = qb.create_object("Payment", json.dumps(good), request_id="pay-1")["Payment"]
    again = qb.create_object("Payment", json.dumps(good), request_id="pay-1")["Payment"]
    assert again["Id"] == pay["Id"]  # the same requestid is answered, not applied, again
    after = Invoice.get(a.Id, qb=qb)
    assert Decimal(after.Balance) == Decimal(a.Balance) - 10
    assert {"TxnId": pay["Id"], "TxnType": "Payment"} in [
        {"TxnId": t.TxnId, "TxnType": t.TxnType} for t in after.LinkedTxn]
    assert Payment.get(pay["Id"], qb=qb).UnappliedAmt == 0
    assert check_books(sandbox.company(REALM)) == []


def test_person_mutations_keep_books(qb: QuickBooks, sandbox: QuickBooksSandbox) -> None:
    inv = open_invoice(qb)
    pid = sandbox.record_payment(REALM, inv.Id, Decimal("1.00"))
    cm = sandbox.apply_credit_memo(REALM, inv.Id, Decimal("2.00"))
    got = sandbox.get(REALM, "Invoice", inv.Id)
    assert got["Balance"] == Decimal(inv.Balance) - 3
    assert int(got["SyncToken"]) > int(
        inv.SyncToken)
    assert sandbox.get(REALM, "creditmemo", cm)["RemainingCredit"] == 0
    sandbox.record_payment(REALM, inv.Id)
    assert sandbox.get(REALM, "Invoice", inv.Id)["Balance"] == 0
    sandbox.void_invoice(REALM, inv.Id)
    assert sandbox.get(REALM, "Payment", pid)["UnappliedAmt"] == Decimal("1.00")
    assert check_books(sandbox.company(REALM)) == []


def test_books_balance_as_seen_through_the_api(qb: QuickBooks) -> None:
    payments: list[Payment] = []
    while True:
        page = Payment.query(f"SELECT * FROM Payment STARTPOSITION {len(payments) + 1} "
                             "MAXRESULTS 1000", qb=qb)
        payments += page
        if len(page) < 1000:
            break
    applied: dict[str, Decimal] = {}
    for pay in payments:
        for line in pay.Line:
            for link in line.LinkedTxn:
                if link.TxnType == "Invoice":
                    applied[link.TxnId] = applied.get(link.TxnId, Decimal(0)) + Decimal(
                        line.Amount)
    invoices = all_invoices(qb)
    fates = {"paid": 0, "partial": 0, "voided": 0, "open": 0}
    for inv in invoices:
        total, balance = Decimal(inv.TotalAmt), Decimal(inv.Balance)
        assert applied.get(inv.Id, Decimal(0)) == total - balance, inv.Id
        voided = (inv.PrivateNote or "").startswith("Voided")
        fates["voided" if voided else "paid" if balance == 0 else
              "open" if balance == total else "partial"] += 1
    assert fates["paid"] > 120
    assert fates["partial"] > 20
    assert fates["voided"] > 3


# --- OAuth ----------------------------------------------------------------------------------------

def test_refresh_token_rotation(sandbox: QuickBooksSandbox, url: str) -> None:
    first = sandbox.mint_refresh_token(REALM)
    reply = refresh(url, first)
    body = reply.json()
    assert set(body) == set(sample("qbo_token_refresh_response.json"))
    assert body["expires_in"] == 3600
    assert body["token_type"] == "bearer"
    assert body["refresh_token"] != first
    dead = refresh(url, first)
    assert dead.status_code == 400
    assert dead.json()["error"] == "invalid_grant"
    assert refresh(url, body["refresh_token"], auth=("sandbox-qbo-client", "x")).status_code == 401
    auth = AuthClient(CLIENT[0], CLIENT[1], "http://localhost/cb",
                      f"{url}/.well-known/openid_configuration/")
    auth.refresh(refresh_token=body["refresh_token"])
    assert auth.refresh_token not in (None, body["refresh_token"])
    qb = QuickBooks(auth_client=AuthClient(CLIENT[0], CLIENT[1], "http://localhost/cb",
                                           f"{url}/.well-known/openid_configuration/"),
                    refresh_token=auth.refresh_token, company_id=REALM, minorversion=75)
    qb.api_url_v3 = f"{url}/v3"
    assert qb.refresh_token != auth.refresh_token  # the constructor's refresh rotated it again
    assert Invoice.count(qb=qb) > 0
    with pytest.raises(AuthClientError) as err:
        auth.refresh(refresh_token=auth.refresh_token)
    assert err.value.status_code == 400


def test_concurrent_refresh_has_one_winner(sandbox: QuickBooksSandbox, url: str) -> None:
    token = sandbox.mint_refresh_token(REALM)
    barrier = threading.Barrier(6)
    codes: list[int] = []

    def race() -> None:
        barrier.wait()
        codes.append(refresh(url, token).status_code)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 400, 400, 400, 400, 400]


def test_refresh_token_kept_when_not_rotating(clock: SimClock) -> None:
    sb = QuickBooksSandbox(clock=clock, rotate_every_refresh=False)
    sb.add_company(REALM, name="Calm Co", customers=2, invoices=3)
    for url in _start(sb):
        token = sb.mint_refresh_token(REALM)
        assert refresh(url, token).json()["refresh_token"] == token
        clock.advance(timedelta(hours=25))
        rotated = refresh(url, token).json()["refresh_token"]
        assert rotated != token
        assert refresh(url, token).status_code == 400


def test_code_flow_and_discovery(sandbox: QuickBooksSandbox, url: str) -> None:
    doc = requests.get(f"{url}/.well-known/openid_configuration/", timeout=10).json()
    assert set(doc) == set(sample("qbo_openid_discovery.json"))
    assert doc["token_endpoint"] == f"{url}/oauth2/v1/tokens/bearer"
    consent = requests.get(doc["authorization_endpoint"], allow_redirects=False, timeout=10,
                           params={"client_id": CLIENT[0], "redirect_uri": "http://app/cb",
                                   "response_type": "code", "state": "s1", "realm_hint": OTHER,
                                   "scope": "com.intuit.quickbooks.accounting openid"})
    assert consent.status_code == 302
    query = dict(p.split("=", 1) for p in consent.headers["Location"].split("?", 1)[1].split("&"))
    assert query["state"] == "s1"
    assert query["realmId"] == OTHER
    auth = AuthClient(CLIENT[0], CLIENT[1], "http://app/cb", f"{url}/.well-known/"
                      "openid_configuration/")
    auth.get_bearer_token(query["code"], realm_id=query["realmId"])
    assert auth.access_token
    assert auth.refresh_token
    with pytest.raises(AuthClientError):  # a code is single use
        auth.get_bearer_token(query["code"])
    code = sandbox.authorize_code(REALM, "http://app/other")
    with pytest.raises(AuthClientError):  # redirect_uri must match the one consented
        auth.get_bearer_token(code)


def test_401_403_and_revocation(sandbox: QuickBooksSandbox, url: str, clock: SimClock) -> None:
    token = access_token(sandbox, url)
    other = api(url, token, "companyinfo/" + OTHER, realm=OTHER)
    assert other.status_code == 403
    assert other.json()["Fault"]["Error"][0]["code"] == "3100"
    missing = api(url, "nope", "companyinfo/" + REALM)
    body = missing.json()
    assert missing.status_code == 401
    assert body["fault"]["error"][0]["code"] == "3200"
    assert set(body) == set(sample("qbo_fault_401_CONSTRUCTED.json"))
    clock.advance(timedelta(seconds=3601))
    with pytest.raises(AuthorizationException):
        Invoice.count(qb=client(url, token))
    rt = sandbox.mint_refresh_token(REALM)
    fresh = refresh(url, rt).json()
    assert api(url, fresh["access_token"], "companyinfo/" + REALM).status_code == 200
    sandbox.revoke_refresh_tokens(REALM)
    assert refresh(url, fresh["refresh_token"]).status_code == 400
    assert api(url, fresh["access_token"], "companyinfo/" + REALM).status_code == 401
    rt = sandbox.mint_refresh_token(REALM)
    revoked = requests.post(f"{url}/oauth2/v1/tokens/revoke", json={"token": rt}, auth=CLIENT,
                            timeout=10)
    assert revoked.status_code == 200
    assert refresh(url, rt).status_code == 400


# --- limits, faults, protocol details -------------------------------------------------------------

def test_throttling_429_without_retry_after(clock: SimClock) -> None:
    sb = QuickBooksSandbox(clock=clock)
    sb.add_company(REALM, name="Throttled Co", customers=2, invoices=3)
    for url in _start(sb):
        token = access_token(sb, url)
        session = requests.Session()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        target = f"{url}/v3/company/{REALM}/companyinfo/{REALM}"
        codes = [session.get(target, headers=headers, timeout=10).status_code
                 for _ in range(500)]
        assert set(codes) == {200}
        over = session.get(target, headers=headers, timeout=10)
        assert over.status_code == 429
        assert "Retry-After" not in over.headers
        assert set(over.json()) == set(sample("qbo_fault_throttle_429_CONSTRUCTED.json"))
        with pytest.raises(ValidationException) as err:  # how python-quickbooks surfaces it
            Invoice.count(qb=client(url, token))
        assert err.value.error_code == 3001
        clock.advance(timedelta(seconds=61))
        assert session.get(target, headers=headers, timeout=10).status_code == 200
        batch = {"BatchItemRequest": [{"bId": "1", "Query": "select count(*) from Invoice"}]}
        codes = [session.post(f"{url}/v3/company/{REALM}/batch", json=batch, headers=headers,
                              timeout=10).status_code for _ in range(41)]
        assert codes.count(200) == 40
        assert codes[-1] == 429
        assert sb.stats[REALM]["throttled"] == 3


def test_concurrency_limit_is_ten_per_realm(sandbox: QuickBooksSandbox) -> None:
    sandbox.rate_limits = True
    for _ in range(10):
        sandbox._admit(REALM, batch=False)  # ten requests in flight
    with pytest.raises(QBOFault) as err:  # the eleventh is throttled
        sandbox._admit(REALM, batch=False)
    assert err.value.status == 429
    assert err.value.code == "3001"
    sandbox._admit(OTHER, batch=False)  # the limit is per company
    sandbox._release(REALM)
    sandbox._admit(REALM, batch=False)


def test_injected_faults(qb: QuickBooks, sandbox: QuickBooksSandbox) -> None:
    sandbox.inject_faults(503, 1, realm_id=REALM)
    with pytest.raises(QuickbooksException) as err:
        Invoice.count(qb=qb)
    assert err.value.error_code == 10000
    assert "503" in err.value.message
    sandbox.inject_faults(500, 1)
    with pytest.raises(QuickbooksException) as err:
        Invoice.count(qb=qb)
    assert err.value.error_code == 10000
    assert "application error" in err.value.message
    sandbox.inject_faults(429, 1, realm_id=OTHER)
    assert Invoice.count(qb=qb) > 0  # another realm's fault does not hit this one


def test_batch_mixed_results_and_size_limit(qb: QuickBooks, sandbox: QuickBooksSandbox,
                                            url: str) -> None:
    inv = open_invoice(qb)
    stale = {"Id": inv.Id, "SyncToken": str(int(inv.SyncToken) + 5), "sparse": True,
             "PrivateNote": "x"}
    items = [{"bId": "q", "Query": f"select * from Invoice where Id = '{inv.Id}'"},
             {"bId": "ok", "operation": "update",
              "Invoice": {"Id": inv.Id, "SyncToken": inv.SyncToken, "sparse": True,
                          "PrivateNote": "Reminder 1 sent"}},
             {"bId": "stale", "operation": "update", "Invoice": stale},
             {"bId": "gone", "operation": "delete", "Invoice": {"Id": "999999", "SyncToken": "0"}},
             {"bId": "note", "operation": "create", "Attachable": {
                 "Note": "Called customer", "AttachableRef": [
                     {"EntityRef": {"type": "Invoice", "value": inv.Id}}]}}]
    reply = qb.batch_operation(json.dumps({"BatchItemRequest": items}))
    got = {r["bId"]: r for r in reply["BatchItemResponse"]}
    assert got["q"]["QueryResponse"]["Invoice"][0]["Id"] == inv.Id
    assert got["ok"]["Invoice"]["PrivateNote"] == "Reminder 1 sent"
    assert got["stale"]["Fault"]["Error"][0]["code"] == "5010"
    assert got["gone"]["Fault"]["Error"][0]["code"] == "610"
    note = got["note"].get("Attachable") or pytest.fail(str(got["note"]))
    after = sandbox.get(REALM, "Invoice", inv.Id)
    assert after["SyncToken"] == got["ok"]["Invoice"]["SyncToken"]  # the note did not bump it
    notes = qb.query(f"select * from Attachable where AttachableRef.EntityRef.Type = 'invoice' "
                     f"and AttachableRef.EntityRef.value = '{inv.Id}'")
    assert [n["Id"] for n in notes["QueryResponse"]["Attachable"]] == [note["Id"]]
    token = access_token(sandbox, url)
    too_many = {"BatchItemRequest": [{"bId": str(i), "Query": "select * from Invoice"}
                                     for i in range(31)]}
    refused = api(url, token, "batch", method="POST", json=too_many)
    assert refused.status_code == 400
    assert refused.json()["Fault"]["Error"][0]["code"] == "1040"
    objs = [Invoice.get(i.Id, qb=qb) for i in Invoice.where("Balance > '0'", max_results=2,
                                                             qb=qb)]
    result = batch_update(objs, qb=qb)  # the SDK's own batch (full updates)
    assert len(result.successes) == 2
    assert not result.faults


def test_xml_minorversion_and_unknown_paths(sandbox: QuickBooksSandbox, url: str) -> None:
    token = access_token(sandbox, url)
    xml = requests.get(f"{url}/v3/company/{REALM}/companyinfo/{REALM}", timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
    assert xml.status_code == 200
    assert xml.headers["Content-Type"].startswith("application/xml")
    assert xml.text.startswith("<?xml")
    assert "<CompanyName>Sonnenschein Landscaping</CompanyName>" in xml.text
    fault = requests.get(f"{url}/v3/company/{REALM}/invoice/999999", timeout=10,
                         headers={"Authorization": f"Bearer {token}"})
    assert fault.status_code == 400
    assert '<Fault type="ValidationFault"><Error code="610">' in fault.text
    old = api(url, token, f"companyinfo/{REALM}", params={"minorversion": "65"})
    assert old.status_code == 400
    assert old.json()["Fault"]["type"] == "ValidationFault"
    assert api(url, token, f"companyinfo/{REALM}", params={"minorversion": "75"}).ok
    info = api(url, token, f"companyinfo/{REALM}").json()["CompanyInfo"]
    assert "DefaultTimeZone" not in info
    assert info["CompanyName"] == "Sonnenschein Landscaping"
    prefs = api(url, token, "preferences").json()["Preferences"]
    assert prefs["CurrencyPrefs"] == {"MultiCurrencyEnabled": True,
                                      "HomeCurrency": {"value": "USD"}}
    assert api(url, token, "widget/1").json()["Fault"]["Error"][0]["code"] == "500"


def test_send_invoice_and_daily_email_cap(qb: QuickBooks, sandbox: QuickBooksSandbox,
                                          clock: SimClock) -> None:
    invs = Invoice.where("Balance > '0'", max_results=50, qb=qb)
    sent = invs[0].send(qb=qb, send_to="ap@customer.example.com")["Invoice"]
    assert sent["EmailStatus"] == "EmailSent"
    assert sent["BillEmail"] == {
        "Address": "ap@customer.example.com"}
    assert sent["DeliveryInfo"]["DeliveryType"] == "Email"
    for inv in invs[1:40]:
        inv.send(qb=qb, send_to="ap@customer.example.com")
    with pytest.raises(QuickbooksException) as err:
        invs[40].send(qb=qb, send_to="ap@customer.example.com")
    assert "40 emails" in err.value.detail
    clock.advance(timedelta(days=1))
    invs[40].send(qb=client(qb.api_url_v3[:-3], access_token(sandbox, qb.api_url_v3[:-3])),
                  send_to="ap@customer.example.com")
    assert len(sandbox.company(REALM).outbox) == 41


def test_invoice_link_and_pay_page(qb: QuickBooks, sandbox: QuickBooksSandbox) -> None:
    inv = open_invoice(qb)
    linked = Invoice.get(inv.Id, qb=qb, params={"include": "invoiceLink"})
    assert linked.InvoiceLink.endswith(f"/pay/{REALM}/{inv.Id}")
    assert not Invoice.get(inv.Id, qb=qb).InvoiceLink  # only when asked for
    page = requests.get(linked.InvoiceLink, timeout=10)
    assert page.status_code == 200
    assert inv.DocNumber in page.text
    paid = requests.post(linked.InvoiceLink, timeout=10)
    assert paid.status_code == 200
    assert "paid" in paid.text
    assert Decimal(Invoice.get(inv.Id, qb=qb).Balance) == 0
    after = Invoice.get(inv.Id, qb=qb, params={"include": "invoiceLink"})
    assert not getattr(after, "InvoiceLink", "")  # nothing left to pay: no link


# --- the seed -------------------------------------------------------------------------------------

def test_seeded_shapes_match_the_samples(qb: QuickBooks, sandbox: QuickBooksSandbox,
                                         url: str) -> None:
    token = access_token(sandbox, url)
    inv = open_invoice(qb)
    raw = api(url, token, f"invoice/{inv.Id}").json()
    want = set(sample("qbo_invoice_read.json")["Invoice"]) - {"ProjectRef"}
    assert want <= set(raw["Invoice"])
    assert raw["Invoice"]["SalesTermRef"]["value"] in {"1", "2", "3", "4"}
    assert QBO_TIME.match(raw["Invoice"]["MetaData"]["CreateTime"])
    assert raw["Invoice"]["MetaData"]["CreateTime"].endswith("-08:00") or raw["Invoice"][
        "MetaData"]["CreateTime"].endswith("-07:00")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?-08:00$", raw["time"])
    assert isinstance(raw["Invoice"]["TotalAmt"], float | int)
    pay_id = next(link["TxnId"] for i in all_invoices(qb) for link in [
        {"TxnId": t.TxnId, "TxnType": t.TxnType} for t in i.LinkedTxn]
        if link["TxnType"] == "Payment")
    payment = api(url, token, f"payment/{pay_id}").json()["Payment"]
    assert set(sample("qbo_payment_read.json")["Payment"]) - {"ProjectRef"} <= set(payment)
    query = api(url, token, "query", params={"query": f"select * from Invoice where Id = "
                                             f"'{inv.Id}'"}).json()
    assert set(query["QueryResponse"]) == {"Invoice", "startPosition", "maxResults"}
    co = sandbox.company(REALM)
    currencies = {c["CurrencyRef"]["value"] for c in co.objects["Customer"].values()}
    foreign = [i for i in co.objects["Invoice"].values() if i["CurrencyRef"]["value"] != "USD"]
    assert len(currencies) > 1
    assert foreign
    assert all(i["ExchangeRate"] != 1 for i in foreign)
    assert co.tombstones["Invoice"]
    assert co.objects["CreditMemo"]


def test_seed_is_deterministic(clock: SimClock) -> None:
    a, b = QuickBooksSandbox(clock=clock), QuickBooksSandbox(clock=clock)
    for sb in (a, b):
        sb.add_company(REALM, name="Same", customers=30, invoices=300, seed=11)
    assert a.company(REALM).objects == b.company(REALM).objects
    c = QuickBooksSandbox(clock=clock)
    c.add_company(REALM, name="Same", customers=30, invoices=300, seed=12)
    assert c.company(REALM).objects != a.company(REALM).objects


@pytest.mark.slow
def test_benchmark_sized_company_seeds_and_balances(clock: SimClock) -> None:
    # Its speed (a few seconds on a laptop) is a benchmark concern, measured on demand only.
    big = QuickBooksSandbox(clock=clock)
    big.add_company(REALM, name="Benchmark Co", customers=2_000, invoices=100_000, seed=1)
    co = big.company(REALM)
    assert len(co.objects["Invoice"]) + len(co.tombstones["Invoice"]) == 100_000
    no_email = sum("PrimaryEmailAddr" not in c for c in co.objects["Customer"].values())
    assert 0.05 < no_email / 2_000 < 0.11  # ~8% of customers cannot be emailed
    assert check_books(co) == []
