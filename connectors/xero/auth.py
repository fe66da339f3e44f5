"""Xero OAuth 2.0: consent URL (with PKCE), code exchange, refresh, revoke, and /connections.

Plain ``requests`` against the identity endpoints: the calls are four simple form POSTs, and
xero-python's own token code refreshes behind the caller's back, which arsync must never allow
(the token store owns refreshing). Xero rotates the refresh token on every refresh; whatever the
response carries is returned, and the token store keeps exactly that.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

import requests

from arsync.clock import Clock, SystemClock
from arsync.config import Settings
from arsync.domain import Tenant, TokenSet
from arsync.errors import ConfigError, ConnectorError, MalformedPayloadError
from connectors.xero.errors import map_error
from connectors.xero.settings import (
    CONNECTIONS_PATH,
    PROVIDER,
    REFRESH_TOKEN_LIFETIME,
    SCOPES,
)

#: (connect, read) seconds: together well inside the token store's 30-second refresh lease.
TIMEOUT = (5, 15)


def make_pkce_pair() -> tuple[str, str]:
    """A fresh PKCE ``(code_verifier, code_challenge)`` for the S256 method (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)[:96]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class XeroOAuth:
    """The Xero app's OAuth endpoints (URLs from settings, so the sandbox can stand in)."""

    provider: ClassVar[str] = PROVIDER

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        if not settings.xero_client_id or settings.xero_client_secret is None:
            raise ConfigError("ARSYNC_XERO_CLIENT_ID and ARSYNC_XERO_CLIENT_SECRET must be set "
                              "to talk to Xero")
        self._settings = settings
        self._clock = clock or SystemClock()
        self._client_id = settings.xero_client_id
        self._auth = (settings.xero_client_id, settings.xero_client_secret.get_secret_value())

    def authorization_url(self, *, redirect_uri: str, state: str,
                          code_challenge: str | None = None) -> str:
        params = {"response_type": "code", "client_id": self._client_id,
                  "redirect_uri": redirect_uri, "scope": " ".join(SCOPES), "state": state}
        if code_challenge:
            params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
        return f"{self._settings.xero_auth_url}?{urlencode(params)}"

    def exchange_code(self, *, code: str, redirect_uri: str,
                      code_verifier: str | None = None) -> TokenSet:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            form["code_verifier"] = code_verifier
        return self._token_set(self._post(self._settings.xero_token_url, form), fallback_rt=None)

    def refresh(self, refresh_token: str) -> TokenSet:
        raw = self._post(self._settings.xero_token_url,
                         {"grant_type": "refresh_token", "refresh_token": refresh_token})
        return self._token_set(raw, fallback_rt=refresh_token)

    def revoke(self, refresh_token: str) -> None:
        # Xero removes every connection of the grant; an already-dead token counts as revoked.
        try:
            self._post(self._settings.xero_revoke_url, {"token": refresh_token}, expect_json=False)
        except ConnectorError as exc:
            if exc.status != 400:
                raise

    def list_tenants(self, access_token: str, *, realm_id: str | None = None) -> list[Tenant]:
        url = f"{self._settings.xero_api_url}{CONNECTIONS_PATH}"
        try:
            resp = requests.get(url, headers={"Authorization": f"Bearer {access_token}",
                                              "Accept": "application/json"}, timeout=TIMEOUT)
            resp.raise_for_status()
            rows = resp.json()
        except Exception as exc:
            raise map_error(exc) from exc
        if not isinstance(rows, list):
            raise MalformedPayloadError("Xero /connections did not answer a list",
                                        provider=PROVIDER)
        # One grant can also reach practice-manager tenants; only organisations hold books.
        orgs = [r for r in rows if isinstance(r, dict) and r.get("tenantId")
                and r.get("tenantType") == "ORGANISATION"]
        return [Tenant(tenant_id=str(r["tenantId"]), name=str(r.get("tenantName") or r["tenantId"]),
                       tenant_type="ORGANISATION") for r in orgs]

    def remove_connection(self, access_token: str, tenant_id: str) -> bool:
        """Disconnect one organisation from the grant (``DELETE /connections/{id}``).

        The connection id is looked up afresh in ``/connections`` (it changes on every consent).
        Returns False when the organisation was no longer connected.
        """
        url = f"{self._settings.xero_api_url}{CONNECTIONS_PATH}"
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        try:
            resp = requests.get(url, headers=headers, timeout=TIMEOUT)
            resp.raise_for_status()
            rows = resp.json()
            ids = [str(r["id"]) for r in rows if isinstance(r, dict) and r.get("id")
                   and str(r.get("tenantId")) == tenant_id]
            for connection_id in ids:
                requests.delete(f"{url}/{connection_id}", headers=headers,
                                timeout=TIMEOUT).raise_for_status()
        except Exception as exc:
            raise map_error(exc) from exc
        return bool(ids)

    def _post(self, url: str, form: dict[str, str], *, expect_json: bool = True) -> Any:
        try:
            resp = requests.post(url, data=form, auth=self._auth, timeout=TIMEOUT,
                                 headers={"Accept": "application/json"})
            resp.raise_for_status()
            return resp.json() if expect_json else None
        except Exception as exc:
            raise map_error(exc) from exc

    def _token_set(self, raw: Any, *, fallback_rt: str | None) -> TokenSet:
        if not isinstance(raw, dict) or not raw.get("access_token"):
            raise MalformedPayloadError("Xero token response has no access_token",
                                        provider=PROVIDER)
        refresh_token = raw.get("refresh_token") or fallback_rt
        if not refresh_token:
            raise MalformedPayloadError("Xero token response has no refresh_token (was "
                                        "offline_access granted?)", provider=PROVIDER)
        now = self._clock.now()
        scope = raw.get("scope")
        return TokenSet(
            access_token=str(raw["access_token"]), refresh_token=str(refresh_token),
            access_expires_at=now + timedelta(seconds=int(raw.get("expires_in") or 1800)),
            refresh_expires_at=now + REFRESH_TOKEN_LIFETIME,
            scope=tuple(str(scope).split()) if scope else SCOPES)
