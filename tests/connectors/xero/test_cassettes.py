"""The exact requests the Xero connector makes, recorded once from the sandbox and replayed.

Replay runs with ``record_mode="none"``: any request that differs from the recording (method,
path, query, tenant header or If-Modified-Since) fails. Re-record after a deliberate change
with ``ARSYNC_RECORD_CASSETTES=1 pytest tests/connectors/xero/test_cassettes.py``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import vcr
from vcr.request import Request as VcrRequest

from arsync.clock import SimClock
from arsync.domain import Entity
from connectors.xero.auth import XeroOAuth
from connectors.xero.connector import XeroConnector
from tests.connectors.xero.conftest import NZ, T0, XeroWorld, by_entity, xero_settings

CASSETTE = Path(__file__).parent / "cassettes" / "xero_sync.yaml"
RECORD = os.environ.get("ARSYNC_RECORD_CASSETTES") == "1"
SECRET_FIELDS = ("access_token", "refresh_token", "id_token")


def scrub_tokens(response: dict[str, Any]) -> dict[str, Any]:
    """OAuth bodies lose their tokens before they are written to disk."""
    body = response["body"]["string"]
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if any(f'"{field}"' in text for field in SECRET_FIELDS):
        doc = json.loads(text)
        for field in SECRET_FIELDS:
            if field in doc:
                doc[field] = f"scrubbed-{field}"
        scrubbed = json.dumps(doc).encode("utf-8")
        response["body"]["string"] = scrubbed
        for name in list(response["headers"]):
            if name.lower() == "content-length":
                response["headers"][name] = [str(len(scrubbed))]
    return response


def same_xero_headers(r1: VcrRequest, r2: VcrRequest) -> None:
    for name in ("xero-tenant-id", "If-Modified-Since", "Accept"):
        assert r1.headers.get(name) == r2.headers.get(name), name


def recorder(mode: str) -> vcr.VCR:
    v = vcr.VCR(record_mode=mode, match_on=["method", "path", "query", "xero_headers"],
                filter_headers=["authorization"],
                filter_post_data_parameters=["refresh_token", "client_secret"],
                before_record_response=scrub_tokens, decode_compressed_response=True)
    v.register_matcher("xero_headers", same_xero_headers)
    return v


class StaticTokens:
    def access_token(self) -> str:
        return "replayed-token"

    def refreshed_after(self, rejected: str) -> str:
        raise AssertionError("no 401 in the recording")


def scenario(oauth: XeroOAuth, connector_for: Callable[[str], XeroConnector],
             clock: SimClock, between: Callable[[], None]) -> dict[str, Any]:
    """Refresh, list tenants, read the company, full sync, then an incremental sync."""
    tokens = oauth.refresh("minted-refresh-token")
    tenants = oauth.list_tenants(tokens.access_token)
    connector = connector_for(tenants[0].tenant_id)
    company = connector.fetch_company()
    full = list(connector.sync({}, full=True))
    cursors = {p.entity: p.cursor for p in full if p.cursor}
    clock.advance(timedelta(minutes=10))
    between()
    clock.advance(timedelta(minutes=10))
    incremental = list(connector.sync(cursors, full=False))
    return {"tokens": tokens, "tenants": tenants, "company": company, "full": full,
            "incremental": incremental, "calls": connector.api_calls}


@pytest.mark.skipif(not RECORD, reason="set ARSYNC_RECORD_CASSETTES=1 to re-record")
def test_record_cassette(make_world: Callable[..., XeroWorld]) -> None:
    world = make_world([NZ], sizes={NZ: {"contacts": 6, "invoices": 12}})
    minted = world.sandbox.mint_refresh_token([NZ])
    oauth = world.oauth
    real_refresh = oauth.refresh
    oauth.refresh = lambda _: real_refresh(minted)  # type: ignore[method-assign]
    tokens = world.tokens(world.grant([NZ]))
    org = world.sandbox.organisation(NZ)

    def between() -> None:
        invoice = next(i for i in org.invoices.values()
                       if i.type == "ACCREC" and i.status == "AUTHORISED")
        world.sandbox.record_payment(NZ, invoice.invoice_id)

    CASSETTE.unlink(missing_ok=True)
    with recorder("all").use_cassette(str(CASSETTE)):
        scenario(oauth, lambda t: world.connector(t, tokens), world.clock, between)


def test_replay_makes_exactly_the_recorded_requests(tmp_path: Path) -> None:
    clock = SimClock(T0)
    settings = xero_settings("http://127.0.0.1:9", tmp_path)  # nothing listens: replay only
    oauth = XeroOAuth(settings, clock=clock)
    with recorder("none").use_cassette(str(CASSETTE)) as cassette:
        out = scenario(oauth, lambda t: XeroConnector(settings, tenant_id=t,
                                                      tokens=StaticTokens(), clock=clock),
                       clock, lambda: None)
        assert cassette.all_played
        requests = list(cassette.requests)

    assert out["tokens"].access_token == "scrubbed-access_token"
    assert [t.tenant_id for t in out["tenants"]] == [NZ]
    assert out["company"].timezone == "Pacific/Auckland"
    assert out["calls"] == 9  # Organisation + 4 full listings + 4 incremental listings
    full, incremental = by_entity(out["full"]), by_entity(out["incremental"])
    assert all(isinstance(i.total, Decimal) for i in full[Entity.INVOICES].values())
    assert len(incremental[Entity.INVOICES]) == 1
    assert len(incremental[Entity.PAYMENTS]) == 1

    # The token request carries no secret; the recorded body carries no token.
    token_call = requests[0]
    assert (token_call.method, urlsplit(token_call.uri).path) == ("POST", "/connect/token")
    assert "refresh_token=" not in (token_call.body or b"").decode()
    text = CASSETTE.read_text()
    assert "eyJ" not in text  # no JWT (access or id token) anywhere
    assert not re.search(r"[0-9a-f]{64}", text)  # nor a sandbox refresh token
    assert "authorization" not in text.lower().replace("authorizationunsuccessful", "")

    api = [r for r in requests if "/api.xro/2.0/" in r.uri]
    paths = [urlsplit(r.uri).path.rsplit("/", 1)[-1] for r in api]
    assert paths == ["Organisation"] + ["Contacts", "Invoices", "CreditNotes", "Payments"] * 2
    for r in api:
        assert r.headers["xero-tenant-id"] == NZ
        assert r.headers["Accept"] == "application/json"
    for n, r in enumerate(api[1:]):
        q = {k: v[0] for k, v in parse_qs(urlsplit(r.uri).query).items()}
        assert (q["page"], q["pageSize"]) == ("1", "1000")
        assert q["order"].endswith("ID ASC")
        ims = r.headers.get("If-Modified-Since")
        if n < 4:
            assert ims is None
        else:  # the cursor (server time of the full listing) minus the 5-minute overlap
            assert ims == (T0 - timedelta(minutes=5)).isoformat()
    invoices = [r for r in api if r.uri.split("?")[0].endswith("/Invoices")]
    for r in invoices:
        q = parse_qs(urlsplit(r.uri).query)
        assert q["Statuses"] == ["DRAFT,SUBMITTED,AUTHORISED,PAID,VOIDED,DELETED"]
        assert q["where"] == ['Type=="ACCREC"']
        assert q["summaryOnly"] == ["True"]  # no line items: the mirror reads none
    contacts = [r for r in api if r.uri.split("?")[0].endswith("/Contacts")]
    assert all(parse_qs(urlsplit(r.uri).query)["includeArchived"] == ["true"] for r in contacts)
