"""The exact requests the QuickBooks connector makes, pinned by vcrpy cassettes.

Recorded against the sandbox (``ARSYNC_RECORD_CASSETTES=1 pytest …`` re-records); replayed with
``record_mode="none"``, so an unexpected request fails the test. Tokens are scrubbed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import vcr
from vcr.request import Request as VcrRequest

from arsync.clock import SimClock
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.syncing import sync_one
from tests.connectors.quickbooks.conftest import qbo_settings

CASSETTES = Path(__file__).parent / "cassettes"
RECORD = os.environ.get("ARSYNC_RECORD_CASSETTES") == "1"
REALM = "1234500000000001"
SCRUBBED_TOKEN = "scrubbed-refresh-token"


def _scrub_request(request: VcrRequest) -> VcrRequest:
    if "/tokens/" in request.path and request.body:
        request.body = b"grant_type=refresh_token&refresh_token=" + SCRUBBED_TOKEN.encode()
    return request


def _scrub_response(response: dict) -> dict:
    body = response["body"]["string"]
    try:
        doc = json.loads(body)
    except (ValueError, TypeError):
        return response
    if isinstance(doc, dict) and "access_token" in doc:
        doc["access_token"] = "scrubbed-access-token"
        doc["refresh_token"] = "scrubbed-rotated-refresh-token"
        response["body"]["string"] = json.dumps(doc).encode()
    return response


def _same_body(r1: VcrRequest, r2: VcrRequest) -> None:
    if "/tokens/" in r1.path:
        return  # the refresh token itself is scrubbed from the recording
    assert r1.body == r2.body, f"{r1.body!r} != {r2.body!r}"


def cassette_vcr() -> vcr.VCR:
    v = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="all" if RECORD else "none",
                match_on=["method", "path", "query", "qbo_body"],
                filter_headers=[("authorization", "Bearer scrubbed")],
                before_record_request=_scrub_request, before_record_response=_scrub_response,
                decode_compressed_response=True)
    v.register_matcher("qbo_body", _same_body)
    return v


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[AppContext, object, SimClock]]:
    clock = SimClock(datetime(2026, 11, 2, 17, 0, tzinfo=UTC))
    if RECORD:
        from arsync.sandbox._http import SandboxServer
        from arsync.sandbox.quickbooks import QuickBooksSandbox

        sandbox = QuickBooksSandbox(clock=clock)
        sandbox.add_company(REALM, name="Cassette Co", customers=12, invoices=60, seed=11)
        with SandboxServer(sandbox) as server:
            yield AppContext(qbo_settings(server.url, tmp_path), clock=clock), sandbox, clock
    else:  # nothing listens here: every answer must come from the cassette
        yield AppContext(qbo_settings("http://127.0.0.1:9", tmp_path), clock=clock), None, clock


def test_full_then_incremental_requests(world: tuple[AppContext, object, SimClock]) -> None:
    ctx, sandbox, clock = world
    if RECORD:  # vcrpy would otherwise append to the old recording
        (CASSETTES / "full_then_cdc.yaml").unlink(missing_ok=True)
    with cassette_vcr().use_cassette("full_then_cdc.yaml") as cassette:
        token = sandbox.mint_refresh_token(REALM) if sandbox else SCRUBBED_TOKEN  # type: ignore[attr-defined]
        [conn] = connect_with_refresh_token(ctx, "quickbooks", token, tenant_id=REALM)
        full = sync_one(ctx, conn)
        clock.advance(timedelta(minutes=15))
        if sandbox:
            invoice = sandbox.open_invoice_ids(REALM)[0]  # type: ignore[attr-defined]
            sandbox.record_payment(REALM, invoice, None)  # type: ignore[attr-defined]
        incremental = sync_one(ctx, conn)
        requests = list(cassette.requests)

    assert "error" not in full and "error" not in incremental
    assert full["invoices"] > 0 and incremental["payments"] == 1
    paths = [urlsplit(r.uri).path for r in requests]
    assert paths == [
        "/oauth2/v1/tokens/bearer",                      # connect: exchange the token at once
        f"/v3/company/{REALM}/companyinfo/{REALM}",     # which company the grant reaches
        f"/v3/company/{REALM}/batch",                    # fetch_company: CompanyInfo + Preferences
        f"/v3/company/{REALM}/batch",                    # full sync: every entity, one request
        f"/v3/company/{REALM}/cdc",                      # incremental: one CDC request
    ]
    for r in requests[1:]:
        query = parse_qs(urlsplit(r.uri).query)
        assert query["minorversion"] == ["75"]
        assert r.headers["Accept"] == "application/json"
    batch = json.loads(requests[3].body)["BatchItemRequest"]
    # Pinned literally: a listing selects only what the mirror maps (no lines, no addresses).
    selects = {
        "Customer": "Id, SyncToken, DisplayName, CompanyName, FullyQualifiedName, "
                    "PrimaryEmailAddr, PrimaryPhone, CurrencyRef, Active, MetaData "
                    "FROM Customer WHERE Active IN (true, false)",
        "Invoice": "Id, SyncToken, DocNumber, TxnDate, DueDate, TotalAmt, Balance, CurrencyRef, "
                   "ExchangeRate, CustomerRef, BillEmail, PrivateNote, MetaData FROM Invoice",
        "Payment": "Id, SyncToken, TotalAmt, UnappliedAmt, CustomerRef, CurrencyRef, TxnDate, "
                   "PrivateNote, Line, MetaData FROM Payment",
        "CreditMemo": "Id, SyncToken, DocNumber, TotalAmt, RemainingCredit, Balance, CustomerRef, "
                      "CurrencyRef, TxnDate, PrivateNote, MetaData FROM CreditMemo",
    }
    assert {item["Query"] for item in batch} == {
        f"SELECT {select} ORDERBY Id STARTPOSITION {pos} MAXRESULTS 1000"
        for select in selects.values()
        for pos in (1, 951)}  # pages of 1000 overlapping by 50
    cdc = parse_qs(urlsplit(requests[4].uri).query)
    assert cdc["entities"] == ["Customer,Invoice,Payment,CreditMemo"]
    since = datetime.fromisoformat(cdc["changedSince"][0])
    assert since.tzinfo is not None and since < clock.now() - timedelta(minutes=15)
