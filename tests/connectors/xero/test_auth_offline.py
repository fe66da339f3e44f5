"""XeroOAuth pieces that need no emulator: consent URL, PKCE, /connections filtering."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from arsync.config import Settings
from arsync.errors import AuthError, ConfigError, TransientError
from arsync.sandbox._http import Request, Response, Router, SandboxServer
from connectors.xero.auth import XeroOAuth, make_pkce_pair
from tests.conftest import SAMPLES


def _settings(url: str = "https://api.xero.com", **extra: object) -> Settings:
    return Settings(_env_file=None, xero_client_id="cid", xero_client_secret="csecret-123",  # type: ignore[call-arg]
                    xero_api_url=url, **extra)


def test_authorization_url_asks_for_granular_scopes_with_pkce() -> None:
    verifier, challenge = make_pkce_pair()
    url = XeroOAuth(_settings()).authorization_url(redirect_uri="https://app.example/cb",
                                                   state="st4te", code_challenge=challenge)
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == \
        "https://login.xero.com/identity/connect/authorize"
    assert q["response_type"] == "code"
    assert q["client_id"] == "cid"
    assert q["state"] == "st4te"
    assert q["redirect_uri"] == "https://app.example/cb"
    scopes = q["scope"].split()
    assert "offline_access" in scopes
    assert "accounting.invoices" in scopes
    assert "accounting.payments" in scopes
    assert "accounting.contacts" in scopes
    assert "accounting.transactions" not in scopes
    assert q["code_challenge_method"] == "S256"
    digest = hashlib.sha256(verifier.encode()).digest()
    assert q["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(verifier) <= 128


def test_missing_client_credentials_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        XeroOAuth(Settings(_env_file=None))  # type: ignore[call-arg]


@pytest.fixture
def connections_server() -> Iterator[str]:
    rows = json.loads((SAMPLES / "xero_connections_response.json").read_text())
    rows.append({"id": "x", "tenantId": "pm-1", "tenantName": "Practice",
                 "tenantType": "PRACTICEMANAGER"})

    def connections(req: Request) -> Response:
        if req.headers.get("authorization") != "Bearer good":
            return Response.json({"Title": "Unauthorized", "Status": 401}, 401)
        return Response.json(rows)

    router = Router()
    router.add("GET", "/connections", connections)
    with SandboxServer(router) as server:
        yield server.url


def test_list_tenants_keeps_organisations_only(connections_server: str) -> None:
    oauth = XeroOAuth(_settings(connections_server))
    [tenant] = oauth.list_tenants("good")
    assert tenant.tenant_id == "fe79f7dd-b6d4-4a92-ba7b-538af6289c58"
    assert tenant.name == "Demo Company (NZ)"
    with pytest.raises(AuthError):
        oauth.list_tenants("expired")


@pytest.fixture
def flaky_identity() -> Iterator[str]:
    router = Router()
    router.add("POST", "/connect/token", lambda req: Response.text("upstream down", 503))
    with SandboxServer(router) as server:
        yield server.url


def test_token_endpoint_outages_are_transient(flaky_identity: str) -> None:
    down = XeroOAuth(_settings(xero_token_url=f"{flaky_identity}/connect/token"))
    with pytest.raises(TransientError):
        down.refresh("rt")
    unreachable = XeroOAuth(_settings(xero_token_url="http://127.0.0.1:9/connect/token"))
    with pytest.raises(TransientError):
        unreachable.refresh("rt")
