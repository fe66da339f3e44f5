"""XeroOAuth against the sandbox's identity endpoints: code + PKCE, rotation, revoke."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pydantic import SecretStr

from arsync.errors import AuthError, ConfigError
from connectors.xero.auth import XeroOAuth, make_pkce_pair
from connectors.xero.settings import SCOPES
from tests.connectors.xero.conftest import GB, NZ, XeroWorld


def test_consent_then_code_exchange_with_pkce(xero: XeroWorld) -> None:
    verifier, challenge = make_pkce_pair()
    url = xero.oauth.authorization_url(redirect_uri="http://127.0.0.1:9/cb", state="s1",
                                       code_challenge=challenge)
    back = requests.get(url, allow_redirects=False, timeout=5)
    assert back.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(back.headers["Location"]).query).items()}
    assert query["state"] == "s1"
    with pytest.raises(AuthError):  # the code is bound to the verifier
        xero.oauth.exchange_code(code=query["code"], redirect_uri="http://127.0.0.1:9/cb",
                                 code_verifier="wrong" * 10)
    code = xero.sandbox.authorize_code([NZ, GB], "http://127.0.0.1:9/cb",
                                       scope=" ".join(SCOPES), code_challenge=challenge)
    tokens = xero.oauth.exchange_code(code=code, redirect_uri="http://127.0.0.1:9/cb",
                                      code_verifier=verifier)
    assert tokens.refresh_token
    assert tokens.scope == SCOPES
    assert tokens.access_expires_at == xero.clock.now() + timedelta(
        seconds=1800)
    assert {t.tenant_id for t in xero.oauth.list_tenants(tokens.access_token)} == {NZ, GB}


def test_refresh_rotates_and_the_old_token_dies_after_the_grace(xero: XeroWorld) -> None:
    first = xero.sandbox.mint_refresh_token([NZ])
    second = xero.oauth.refresh(first)
    assert second.refresh_token != first
    third = xero.oauth.refresh(second.refresh_token)
    assert third.refresh_token not in (first, second.refresh_token)
    xero.clock.advance(timedelta(minutes=31))
    with pytest.raises(AuthError, match="invalid_grant"):
        xero.oauth.refresh(second.refresh_token)


def test_invalid_grant_is_an_auth_error(xero: XeroWorld) -> None:
    with pytest.raises(AuthError, match="invalid_grant"):
        xero.oauth.refresh("not-a-refresh-token")


def test_wrong_client_secret_is_a_config_error_not_a_dead_grant(xero: XeroWorld) -> None:
    wrong = SecretStr("another-secret-123")
    settings = xero.settings.model_copy(update={"xero_client_secret": wrong})
    with pytest.raises(ConfigError):
        XeroOAuth(settings, clock=xero.clock).refresh(xero.sandbox.mint_refresh_token([NZ]))


def test_revoke_ends_the_grant(xero: XeroWorld) -> None:
    tokens = xero.oauth.refresh(xero.sandbox.mint_refresh_token([NZ]))
    xero.oauth.revoke(tokens.refresh_token)
    xero.oauth.revoke(tokens.refresh_token)  # revoking twice is fine
    with pytest.raises(AuthError):
        xero.oauth.refresh(tokens.refresh_token)
    assert xero.oauth.list_tenants(tokens.access_token) == []
