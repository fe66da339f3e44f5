"""QuickBooks Online OAuth 2.0 (authorization code, refresh, revoke) over requests-oauthlib.

Intuit's refresh token may come back unchanged for about a day or rotated on any call; whatever
the response carries is returned, and the token store keeps exactly that.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import requests
from oauthlib.oauth2 import InvalidClientError, InvalidGrantError, OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from arsync.clock import Clock, SystemClock
from arsync.config import Settings
from arsync.domain import Tenant, TokenSet
from arsync.errors import AuthError, ConfigError, InputError, PermanentError, TransientError

PROVIDER = "quickbooks"
#: The accounting scope is read *and* write (Intuit has no read-only scope); notes need write.
SCOPES = ("com.intuit.quickbooks.accounting",)
TIMEOUT = (10, 20)  # well inside the token store's 30 s refresh lease


def _raise_for_server_error(response: requests.Response) -> requests.Response:
    # oauthlib would report a 5xx HTML page as "missing token"; it is an outage, so retryable.
    if response.status_code >= 500:
        raise TransientError(f"QuickBooks token endpoint answered {response.status_code}",
                             provider=PROVIDER, status=response.status_code)
    return response


class QuickBooksOAuth:
    """The Intuit app's OAuth endpoints (URLs from settings, so the sandbox can stand in)."""

    provider: ClassVar[str] = PROVIDER

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        if not settings.quickbooks_client_id or settings.quickbooks_client_secret is None:
            raise ConfigError("ARSYNC_QUICKBOOKS_CLIENT_ID and ARSYNC_QUICKBOOKS_CLIENT_SECRET "
                              "must be set to talk to QuickBooks")
        settings.allow_loopback_oauth()
        self._settings = settings
        self._clock = clock or SystemClock()
        self._client_id = settings.quickbooks_client_id
        self._auth = HTTPBasicAuth(self._client_id,
                                   settings.quickbooks_client_secret.get_secret_value())

    def _session(self, **kwargs: Any) -> OAuth2Session:
        session = OAuth2Session(self._client_id, **kwargs)
        session.register_compliance_hook("access_token_response", _raise_for_server_error)
        session.register_compliance_hook("refresh_token_response", _raise_for_server_error)
        return session

    def _token_set(self, raw: dict[str, Any]) -> TokenSet:
        now = self._clock.now()
        rt_ttl = raw.get("x_refresh_token_expires_in")
        return TokenSet(
            access_token=raw["access_token"],
            refresh_token=raw["refresh_token"],
            access_expires_at=now + timedelta(seconds=int(raw.get("expires_in", 3600))),
            refresh_expires_at=now + timedelta(seconds=int(rt_ttl)) if rt_ttl else None,
            scope=tuple(raw.get("scope") or SCOPES),
        )

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return dict(fn(*args, timeout=TIMEOUT, **kwargs))
        except InvalidGrantError as exc:
            raise AuthError(f"invalid_grant: {exc.description or 'refresh token rejected'}",
                            provider=PROVIDER, status=400) from exc
        except InvalidClientError as exc:
            raise ConfigError("QuickBooks rejected the client id/secret (invalid_client)") from exc
        except OAuth2Error as exc:
            raise PermanentError(f"QuickBooks token endpoint: {exc.error}", provider=PROVIDER,
                                 status=exc.status_code) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"QuickBooks token endpoint unreachable: {exc}",
                                 provider=PROVIDER) from exc

    def authorization_url(self, *, redirect_uri: str, state: str,
                          code_challenge: str | None = None) -> str:
        session = self._session(redirect_uri=redirect_uri, scope=list(SCOPES), state=state)
        url, _ = session.authorization_url(self._settings.quickbooks_auth_url)
        return str(url)

    def exchange_code(self, *, code: str, redirect_uri: str,
                      code_verifier: str | None = None) -> TokenSet:
        session = self._session(redirect_uri=redirect_uri)
        raw = self._call(session.fetch_token, self._settings.quickbooks_token_url, code=code,
                         auth=self._auth, include_client_id=False,
                         headers={"Accept": "application/json"})
        return self._token_set(raw)

    def refresh(self, refresh_token: str) -> TokenSet:
        session = self._session()
        raw = self._call(session.refresh_token, self._settings.quickbooks_token_url,
                         refresh_token=refresh_token, auth=self._auth,
                         headers={"Accept": "application/json"})
        return self._token_set(raw)

    def revoke(self, refresh_token: str) -> None:
        try:
            resp = requests.post(self._settings.quickbooks_revoke_url,
                                 json={"token": refresh_token},
                                 auth=self._auth, headers={"Accept": "application/json"},
                                 timeout=TIMEOUT)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"QuickBooks revoke endpoint unreachable: {exc}",
                                 provider=PROVIDER) from exc
        if resp.status_code >= 500:
            raise TransientError(f"QuickBooks revoke answered {resp.status_code}",
                                 provider=PROVIDER, status=resp.status_code)

    def list_tenants(self, access_token: str, *, realm_id: str | None = None) -> list[Tenant]:
        # A QuickBooks grant is for one realm, named in the OAuth callback (realmId).
        if not realm_id:
            raise InputError("a QuickBooks connection needs its realm id (--realm-id)")
        url = f"{self._settings.quickbooks_api_url}/v3/company/{realm_id}/companyinfo/{realm_id}"
        try:
            minor = self._settings.quickbooks_minor_version
            resp = requests.get(url, params={"minorversion": minor},
                                headers={"Authorization": f"Bearer {access_token}",
                                         "Accept": "application/json"}, timeout=TIMEOUT)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"QuickBooks unreachable: {exc}", provider=PROVIDER) from exc
        if resp.status_code in (401, 403):
            raise AuthError(f"QuickBooks refused access to realm {realm_id} ({resp.status_code})",
                            provider=PROVIDER, status=resp.status_code)
        if resp.status_code >= 500:
            raise TransientError(f"QuickBooks answered {resp.status_code}", provider=PROVIDER)
        if resp.status_code != 200:
            raise PermanentError(f"QuickBooks answered {resp.status_code} for realm {realm_id}",
                                 provider=PROVIDER, status=resp.status_code)
        info = resp.json().get("CompanyInfo") or {}
        return [Tenant(tenant_id=realm_id, name=str(info.get("CompanyName") or realm_id),
                       tenant_type="COMPANY")]
