"""Intuit's OAuth 2.0 server, emulated: codes, rotating refresh tokens, access tokens, revocation.

Refresh tokens rotate (``rotate_every_refresh=True``: on every use, the used one dies at once; else
the same value comes back for 24 hours, then rotates, as Intuit does) and live ~101 days, rolling.
A refresh is a compare-and-swap under a lock, so of two concurrent refreshes with one token exactly
one wins and the other gets ``invalid_grant``. Everything is measured on the injected clock.
"""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from arsync.clock import Clock

REFRESH_TOKEN_TTL = 8_726_400  # seconds (~101 days), as x_refresh_token_expires_in reports
REFRESH_TOKEN_SAME_VALUE_FOR = timedelta(hours=24)
AUTH_CODE_TTL = timedelta(minutes=5)
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"


class OAuthError(Exception):
    """A token-endpoint error: HTTP status and the RFC 6749 body."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, str] = {"error": error}
        if description:
            self.body["error_description"] = description


@dataclass
class _Grant:
    realm_id: str
    issued: datetime
    expires: datetime


@dataclass
class AccessToken:
    """An issued access token."""

    realm_id: str
    expires: datetime


class TokenAuthority:
    """Issues and checks tokens for one client application."""

    def __init__(self, clock: Clock, *, client_id: str, client_secret: str,
                 rotate_every_refresh: bool, access_token_ttl: int) -> None:
        self.clock = clock
        self.client_id = client_id
        self.client_secret = client_secret
        self.rotate_every_refresh = rotate_every_refresh
        self.access_token_ttl = access_token_ttl
        self._lock = threading.Lock()
        self._refresh: dict[str, _Grant] = {}
        self._access: dict[str, AccessToken] = {}
        self._codes: dict[str, tuple[str, str, datetime]] = {}  # code -> (realm, redirect, exp)
        #: The app's registered redirect URIs; the consent page refuses any other (None: any).
        self.redirect_uris: set[str] | None = None

    # --- issuing ----------------------------------------------------------------------------------

    def mint_refresh_token(self, realm_id: str) -> str:
        """A refresh token as the consent flow would have produced."""
        with self._lock:
            return self._new_refresh(realm_id)

    def _new_refresh(self, realm_id: str) -> str:
        now = self.clock.now()
        token = f"AB11{secrets.token_hex(4)}{secrets.token_urlsafe(36)}"
        self._refresh[token] = _Grant(realm_id, now, now + timedelta(seconds=REFRESH_TOKEN_TTL))
        return token

    def _new_access(self, realm_id: str) -> str:
        # Intuit's access tokens are JWE compact strings; the shape matters only to loggers.
        token = ("eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0.." +
                 secrets.token_urlsafe(48) + "." + secrets.token_urlsafe(24))
        self._access[token] = AccessToken(
            realm_id, self.clock.now() + timedelta(seconds=self.access_token_ttl))
        return token

    def authorize_code(self, realm_id: str, redirect_uri: str) -> str:
        """A single-use authorization code for the code flow."""
        code = f"AB11{secrets.token_urlsafe(30)}"
        with self._lock:
            self._codes[code] = (realm_id, redirect_uri, self.clock.now() + AUTH_CODE_TTL)
        return code

    # --- the token endpoint -----------------------------------------------------------------------

    def check_client(self, headers: Any, form: dict[str, str]) -> None:
        """HTTP Basic (or client_secret_post) client authentication, else 401 invalid_client."""
        auth = headers.get("Authorization") or ""
        client_id = client_secret = None
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip()).decode("utf-8")
                client_id, _, client_secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                client_id = None
        elif "client_id" in form:
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if not (secrets.compare_digest(str(client_id), self.client_id)
                and secrets.compare_digest(str(client_secret), self.client_secret)):
            raise OAuthError(401, "invalid_client")

    def token(self, headers: Any, body: bytes) -> tuple[str | None, dict[str, Any]]:
        """Handle ``POST /oauth2/v1/tokens/bearer``; returns (realm, response body)."""
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        ctype = (headers.get("Content-Type") or "").lower()
        if "application/x-www-form-urlencoded" not in ctype:
            raise OAuthError(400, "invalid_request", "Content-Type must be "
                             "application/x-www-form-urlencoded")
        self.check_client(headers, form)
        grant = form.get("grant_type")
        if grant == "refresh_token":
            return self._refresh_grant(form.get("refresh_token") or "")
        if grant == "authorization_code":
            return self._code_grant(form.get("code") or "", form.get("redirect_uri") or "")
        if not grant:
            raise OAuthError(400, "invalid_request", "grant_type is required")
        raise OAuthError(400, "unsupported_grant_type")

    def _refresh_grant(self, token: str) -> tuple[str | None, dict[str, Any]]:
        now = self.clock.now()
        with self._lock:  # the compare-and-swap: one refresh per token value wins
            grant = self._refresh.get(token)
            if grant is None or grant.expires <= now:
                self._refresh.pop(token, None)
                raise OAuthError(400, "invalid_grant", "Incorrect or invalid refresh token")
            rotate = self.rotate_every_refresh or now - grant.issued >= REFRESH_TOKEN_SAME_VALUE_FOR
            if rotate:
                del self._refresh[token]
                new_refresh = self._new_refresh(grant.realm_id)
            else:
                grant.expires = now + timedelta(seconds=REFRESH_TOKEN_TTL)  # rolling expiry
                new_refresh = token
            access = self._new_access(grant.realm_id)
            left = int((self._refresh[new_refresh].expires - now).total_seconds())
        return grant.realm_id, self._token_body(access, new_refresh, left)

    def _code_grant(self, code: str, redirect_uri: str) -> tuple[str | None, dict[str, Any]]:
        now = self.clock.now()
        with self._lock:
            entry = self._codes.pop(code, None)  # single use, even when it then fails
            if entry is None or entry[2] <= now or entry[1] != redirect_uri:
                raise OAuthError(400, "invalid_grant")
            realm_id = entry[0]
            refresh = self._new_refresh(realm_id)
            access = self._new_access(realm_id)
        return realm_id, self._token_body(access, refresh, REFRESH_TOKEN_TTL)

    def _token_body(self, access: str, refresh: str, refresh_left: int) -> dict[str, Any]:
        return {"token_type": "bearer", "expires_in": self.access_token_ttl,
                "refresh_token": refresh, "x_refresh_token_expires_in": refresh_left,
                "access_token": access}

    # --- revocation and checking ------------------------------------------------------------------

    def revoke(self, headers: Any, body: dict[str, Any]) -> None:
        """``POST .../tokens/revoke``: revoking either token ends the whole grant of its realm."""
        self.check_client(headers, {})
        token = str(body.get("token") or "")
        if not token:
            raise OAuthError(400, "invalid_request", "token is required")
        with self._lock:
            realm = None
            if token in self._refresh:
                realm = self._refresh[token].realm_id
            elif token in self._access:
                realm = self._access[token].realm_id
        if realm is not None:
            self.revoke_realm(realm)

    def revoke_realm(self, realm_id: str) -> None:
        """The user disconnected the app: every token of that company stops working."""
        with self._lock:
            for table in (self._refresh, self._access):
                for key in [k for k, v in table.items() if v.realm_id == realm_id]:
                    del table[key]
            for code in [c for c, v in self._codes.items() if v[0] == realm_id]:
                del self._codes[code]

    def expire_access(self, realm_id: str) -> None:
        """Make every access token of a realm expired now."""
        now = self.clock.now()
        with self._lock:
            for entry in self._access.values():
                if entry.realm_id == realm_id:
                    entry.expires = min(entry.expires, now)

    def connected_realms(self) -> set[str]:
        """Realms with a live grant (webhooks go only to companies connected to the app)."""
        now = self.clock.now()
        with self._lock:
            return {g.realm_id for g in self._refresh.values() if g.expires > now}

    def realm_of_refresh(self, token: str) -> str | None:
        """Which realm a refresh token belongs to (for per-realm statistics)."""
        grant = self._refresh.get(token)
        return grant.realm_id if grant else None

    def check_access(self, token: str) -> tuple[AccessToken | None, str]:
        """(token, "") when valid now; (None, reason) when unknown or expired."""
        entry = self._access.get(token)
        if entry is None:
            return None, "Token revoked or invalid"
        if entry.expires <= self.clock.now():
            return None, f"Token expired: {token[:20]}"
        return entry, ""
