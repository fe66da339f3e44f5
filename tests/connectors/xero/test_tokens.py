"""Tokens as the connector sees them: 401 refresh, dead grants, and one token shared by orgs."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session

from arsync.domain import Entity, TokenSet
from arsync.errors import AuthError
from arsync.models import Credential
from connectors.xero.auth import XeroOAuth
from tests.connectors.xero.conftest import GB, NZ, XeroWorld, by_entity


class CountingOAuth(XeroOAuth):
    """The real client, counting the refreshes it makes at the provider."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refreshes = 0
        self._lock = threading.Lock()

    def refresh(self, refresh_token: str) -> TokenSet:
        with self._lock:
            self.refreshes += 1
        return super().refresh(refresh_token)


def test_a_401_refreshes_once_and_retries(xero: XeroWorld) -> None:
    tokens = xero.tokens(xero.grant([NZ]))
    connector = xero.connector(NZ, tokens)
    xero.sandbox.inject_faults(401, 1, tenant_id=NZ)
    info = connector.fetch_company()
    assert info.currency == "NZD"
    assert tokens.refreshes == 1
    assert connector.api_calls == 2


def test_a_second_401_after_the_refresh_means_reconnect(xero: XeroWorld) -> None:
    tokens = xero.tokens(xero.grant([NZ]))
    xero.sandbox.inject_faults(401, 2, tenant_id=NZ)
    with pytest.raises(AuthError, match="freshly refreshed"):
        xero.connector(NZ, tokens).fetch_company()
    assert tokens.refreshes == 1


def test_an_expired_access_token_is_refreshed_before_the_call(xero: XeroWorld) -> None:
    tokens = xero.tokens(xero.grant([NZ]))
    connector = xero.connector(NZ, tokens)
    xero.clock.advance(timedelta(minutes=31))
    assert connector.fetch_company().country == "NZ"
    assert tokens.refreshes == 1
    assert connector.api_calls == 1


def test_a_dead_refresh_token_is_an_auth_error_and_marks_the_grant(xero: XeroWorld) -> None:
    credential_id = xero.grant([NZ])
    with Session(xero.engine) as s:
        cred = s.get(Credential, credential_id)
        assert cred is not None
        xero.sandbox.revoke(xero.vault.decrypt(cred.refresh_token_enc))
    xero.clock.advance(timedelta(minutes=31))
    with pytest.raises(AuthError):
        list(xero.connector(NZ, xero.tokens(credential_id)).sync({}, full=True))
    with Session(xero.engine) as s:
        cred = s.get(Credential, credential_id)
        assert cred is not None
        assert cred.dead_reason
        assert "invalid_grant" in cred.dead_reason


def test_a_disconnected_organisation_is_a_403_auth_error(xero: XeroWorld) -> None:
    credential_id = xero.grant([NZ])
    tokens = xero.tokens(credential_id)
    with Session(xero.engine) as s:
        cred = s.get(Credential, credential_id)
        assert cred is not None
        xero.sandbox.revoke(xero.vault.decrypt(cred.refresh_token_enc))
    with pytest.raises(AuthError, match="AuthenticationUnsuccessful") as raised:
        xero.connector(NZ, tokens).fetch_company()
    assert raised.value.status == 403
    assert tokens.refreshes == 0  # a 403 is not a stale token: no refresh is wasted on it


def test_two_organisations_under_one_token_refresh_once_concurrently(xero: XeroWorld) -> None:
    credential_id = xero.grant([NZ, GB])
    xero.clock.advance(timedelta(minutes=31))  # the shared access token has expired
    oauth = CountingOAuth(xero.settings, clock=xero.clock)
    token_calls = xero.sandbox.stats["token_calls"]
    start = threading.Barrier(2)
    results: dict[str, Any] = {}

    def sync(tenant_id: str) -> None:
        # Separate token stores, as two workers (or processes) would have, on one credential.
        connector = xero.connector(tenant_id, xero.tokens(credential_id, oauth))
        start.wait()
        try:
            results[tenant_id] = by_entity(connector.sync({}, full=True))
        except Exception as exc:  # reported below
            results[tenant_id] = exc

    threads = [threading.Thread(target=sync, args=(t,)) for t in (NZ, GB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    for tenant_id in (NZ, GB):
        got = results[tenant_id]
        assert not isinstance(got, Exception), got
        org = xero.sandbox.organisation(tenant_id)
        assert set(got[Entity.CUSTOMERS]) == set(org.contacts)
    assert oauth.refreshes == 1
    assert xero.sandbox.stats["token_calls"] - token_calls == 1
    # The rotated refresh token was kept: the grant still refreshes next time.
    xero.clock.advance(timedelta(minutes=31))
    assert xero.connector(NZ, xero.tokens(credential_id, oauth)).fetch_company().name
    assert oauth.refreshes == 2
