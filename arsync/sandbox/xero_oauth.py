"""Xero identity: authorisation codes, token rotation with a grace period, connections.

Behaviour (from Xero's OAuth FAQ where documented; choices where not):

* Access tokens are JWT-shaped (``header.payload.signature``, payload with ``exp``,
  ``authentication_event_id``, ``scope``...) and live ``access_token_ttl`` seconds on the clock.
* A refresh token is issued only when ``offline_access`` was granted. Every refresh rotates it.
  An unused refresh token expires after 60 days.
* Grace period (documented: "if the refresh response is lost, the old refresh token may be
  retried for 30 minutes"). *Choice:* a re-use within 30 minutes of the first use returns a
  **fresh** token pair and invalidates the pair issued by the first use (and anything refreshed
  from it), so a client that kept both ends up with one working pair, the latest. After the 30
  minutes the old token gets ``400 {"error": "invalid_grant"}``.
* Refreshes are serialised with a lock, so two concurrent refreshes of one token behave like a
  use and a grace re-use: both succeed, and only the second pair stays valid.
* A refresh may narrow ``scope``; asking for a scope that was not granted is ``invalid_scope``.
* Client authentication: HTTP Basic or ``client_id``/``client_secret`` in the form (xero-python
  sends the latter). The sandbox models a confidential web app: the secret is always required.
* Revocation (``POST /connect/revocation``, ``token=<refresh token>``) ends the grant and
  removes all its connections; its access tokens still verify until they expire, but every
  tenant call is then ``403 AuthenticationUnsuccessful`` as the tenant is no longer connected.
* ``GET /connections`` lists the connections of the grant behind the access token.
* ``GET /identity/connect/authorize`` consents at once (no login page) for every organisation
  in the sandbox, or for ``Identity.consent_tenant_ids`` when set, and redirects back with
  ``code``, ``scope``, ``state`` and ``session_state``. Codes are single-use and live 5 minutes;
  ``redirect_uri`` must match at the exchange, and a ``code_challenge`` (S256 only) needs the
  matching ``code_verifier``. A missing scope or an unknown one is ``error=invalid_scope``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from arsync.clock import Clock
from arsync.sandbox._http import Request, Response

GRACE = timedelta(minutes=30)
REFRESH_IDLE = timedelta(days=60)
CODE_TTL = timedelta(minutes=5)
KNOWN_SCOPES = frozenset({
    "openid", "profile", "email", "offline_access",
    "accounting.transactions", "accounting.transactions.read",
    "accounting.invoices", "accounting.invoices.read",
    "accounting.payments", "accounting.payments.read",
    "accounting.banktransactions", "accounting.banktransactions.read",
    "accounting.manualjournals", "accounting.manualjournals.read",
    "accounting.contacts", "accounting.contacts.read",
    "accounting.settings", "accounting.settings.read",
    "accounting.attachments", "accounting.attachments.read",
    "accounting.reports.read", "accounting.journals.read",
})
# What mint_refresh_token / authorize_code grant unless told otherwise: both the broad and the
# granular accounting scopes, so that a connector asking for either set can refresh.
DEFAULT_SCOPE = ("openid profile email offline_access accounting.transactions accounting.invoices "
                 "accounting.payments accounting.contacts accounting.settings")


@dataclass
class Connection:
    id: str
    tenant_id: str
    created: datetime


@dataclass
class Grant:
    auth_event_id: str
    user_id: str
    scopes: tuple[str, ...]
    connections: dict[str, Connection]  # tenant id -> connection
    created: datetime
    revoked: bool = False


@dataclass
class AccessToken:
    token: str
    grant: Grant
    scopes: tuple[str, ...]
    expires_at: datetime
    revoked: bool = False


@dataclass
class RefreshToken:
    token: str
    grant: Grant
    scopes: tuple[str, ...]
    issued_at: datetime
    access: AccessToken
    used_at: datetime | None = None
    successor: RefreshToken | None = None
    revoked: bool = False


@dataclass
class AuthCode:
    code: str
    redirect_uri: str
    tenant_ids: list[str]
    scopes: tuple[str, ...]
    expires_at: datetime
    challenge: str | None = None
    used: bool = False


class OAuthError(Exception):
    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.error, self.status = error, status


@dataclass
class Unauthenticated:
    """Why a bearer token was refused (the 401 ``Detail``)."""

    detail: str
    extra: dict[str, str] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt(payload: dict[str, Any]) -> str:
    header = {"alg": "RS256", "kid": "1CAF8E66772D6DC028D6726FD0261581570EFC19", "typ": "JWT",
              "x5t": "HK-OZnctbcAo1nJv0CYVgVcO_Bk"}
    return ".".join((_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()),
                     _b64(secrets.token_bytes(64))))


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def parse_scope(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text.split()))


def connection_time(moment: datetime) -> str:
    """Xero's connection timestamps: ``2019-12-07T18:46:19.5165400`` (7 digits, no zone)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


class Identity:
    """Grants, tokens and codes of one Xero app (one client id) against the sandbox orgs."""

    def __init__(self, clock: Clock, *, client_id: str, client_secret: str,
                 access_token_ttl: int, tenants: Callable[[], dict[str, str]]) -> None:
        self.clock = clock
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_ttl = access_token_ttl
        self._tenants = tenants  # tenant id -> name, of the organisations that exist
        self._lock = threading.RLock()
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._codes: dict[str, AuthCode] = {}
        self.consent_tenant_ids: list[str] | None = None  # None: every organisation
        #: The app's registered redirect URIs; authorize refuses any other (None: any).
        self.redirect_uris: set[str] | None = None

    # ------------------------------------------------------------------ grants
    def _grant(self, tenant_ids: list[str], scopes: tuple[str, ...]) -> Grant:
        known = self._tenants()
        unknown = [t for t in tenant_ids if t not in known]
        if unknown:
            raise ValueError(f"unknown organisation(s): {unknown}")
        bad = [s for s in scopes if s not in KNOWN_SCOPES]
        if bad:
            raise ValueError(f"unknown scope(s): {bad}")
        now = self.clock.now()
        return Grant(str(uuid.uuid4()), str(uuid.uuid4()), scopes,
                     {t: Connection(str(uuid.uuid4()), t, now) for t in tenant_ids}, now)

    def _issue(self, grant: Grant,
               scopes: tuple[str, ...]) -> tuple[dict[str, Any], RefreshToken | None]:
        now = self.clock.now()
        expires = now + timedelta(seconds=self.access_token_ttl)
        claims = {
            "nbf": _epoch(now), "exp": _epoch(expires), "iss": "https://identity.xero.com",
            "aud": "https://identity.xero.com/resources", "client_id": self.client_id,
            "sub": grant.user_id.replace("-", ""), "auth_time": _epoch(grant.created),
            "xero_userid": grant.user_id, "global_session_id": secrets.token_hex(16),
            "sid": secrets.token_hex(16), "jti": secrets.token_hex(16),
            "authentication_event_id": grant.auth_event_id, "scope": list(scopes),
        }
        access = AccessToken(_jwt(claims), grant, scopes, expires)
        self._access[access.token] = access
        body: dict[str, Any] = {}
        if "openid" in scopes:
            body["id_token"] = _jwt({"nbf": _epoch(now), "exp": _epoch(now + timedelta(minutes=5)),
                                     "iss": "https://identity.xero.com", "aud": self.client_id,
                                     "sub": claims["sub"], "xero_userid": grant.user_id,
                                     "email": "sandbox.user@arsync.example",
                                     "given_name": "Sandbox", "family_name": "User"})
        body.update({"access_token": access.token, "expires_in": self.access_token_ttl,
                     "token_type": "Bearer"})
        refresh = None
        if "offline_access" in scopes:
            refresh = RefreshToken(secrets.token_hex(32), grant, scopes, now, access)
            self._refresh[refresh.token] = refresh
            body["refresh_token"] = refresh.token
        body["scope"] = " ".join(scopes)
        return body, refresh

    def mint_refresh_token(self, tenant_ids: list[str], scope: str = DEFAULT_SCOPE) -> str:
        with self._lock:
            scopes = parse_scope(scope)
            if "offline_access" not in scopes:
                raise ValueError("a refresh token needs the offline_access scope")
            _, refresh = self._issue(self._grant(tenant_ids, scopes), scopes)
            assert refresh is not None
            return refresh.token

    def authorize_code(self, tenant_ids: list[str], redirect_uri: str, *,
                       scope: str = DEFAULT_SCOPE, code_challenge: str | None = None) -> str:
        with self._lock:
            scopes = parse_scope(scope)
            self._grant(tenant_ids, scopes)  # validates
            code = AuthCode(secrets.token_urlsafe(32), redirect_uri, list(tenant_ids), scopes,
                            self.clock.now() + CODE_TTL, code_challenge)
            self._codes[code.code] = code
            return code.code

    def revoke(self, token: str) -> bool:
        with self._lock:
            refresh = self._refresh.get(token)
            if refresh is None:
                return False
            grant = refresh.grant
            grant.revoked = True
            grant.connections.clear()
            for rt in self._refresh.values():
                if rt.grant is grant:
                    rt.revoked = True
            return True

    def _invalidate_from(self, refresh: RefreshToken | None) -> None:
        while refresh is not None:
            refresh.revoked = True
            refresh.access.revoked = True
            refresh = refresh.successor

    # ---------------------------------------------------------------- endpoints
    def _client(self, request: Request, form: dict[str, str]) -> None:
        auth = request.headers.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise OAuthError("invalid_client") from exc
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not (secrets.compare_digest(client_id, self.client_id)
                and secrets.compare_digest(secret, self.client_secret)):
            raise OAuthError("invalid_client")

    @staticmethod
    def _form(request: Request) -> dict[str, str]:
        ctype = (request.headers.get("Content-Type") or "").lower()
        if "application/x-www-form-urlencoded" not in ctype:
            raise OAuthError("invalid_request")
        return {k: v[0] for k, v in parse_qs(request.body.decode("utf-8"),
                                             keep_blank_values=True).items()}

    def token_endpoint(self, request: Request) -> Response:
        try:
            form = self._form(request)
            self._client(request, form)
            grant_type = form.get("grant_type", "")
            with self._lock:
                if grant_type == "refresh_token":
                    body = self._refresh_grant(form)
                elif grant_type == "authorization_code":
                    body = self._code_grant(form)
                else:
                    raise OAuthError("unsupported_grant_type")
        except OAuthError as exc:
            return Response.json({"error": exc.error}, exc.status,
                                 headers={"Cache-Control": "no-store"})
        return Response.json(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _refresh_grant(self, form: dict[str, str]) -> dict[str, Any]:
        now = self.clock.now()
        refresh = self._refresh.get(form.get("refresh_token", ""))
        if refresh is None or refresh.revoked or refresh.grant.revoked:
            raise OAuthError("invalid_grant")
        if refresh.used_at is None:
            if now >= refresh.issued_at + REFRESH_IDLE:
                raise OAuthError("invalid_grant")
        elif now >= refresh.used_at + GRACE:
            raise OAuthError("invalid_grant")
        else:
            self._invalidate_from(refresh.successor)
        scopes = refresh.scopes
        if form.get("scope", "").strip():
            asked = parse_scope(form["scope"])
            if any(s not in refresh.grant.scopes for s in asked):
                raise OAuthError("invalid_scope")
            scopes = asked
        body, successor = self._issue(refresh.grant, scopes)
        refresh.used_at = refresh.used_at or now
        refresh.successor = successor
        return body

    def _code_grant(self, form: dict[str, str]) -> dict[str, Any]:
        code = self._codes.get(form.get("code", ""))
        if code is None or code.used or self.clock.now() >= code.expires_at:
            raise OAuthError("invalid_grant")
        if form.get("redirect_uri", "") != code.redirect_uri:
            raise OAuthError("invalid_grant")
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = _b64(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
            if not verifier or not secrets.compare_digest(digest, code.challenge):
                raise OAuthError("invalid_grant")
        code.used = True
        try:
            grant = self._grant(code.tenant_ids, code.scopes)
        except ValueError as exc:  # the organisation went away between consent and exchange
            raise OAuthError("invalid_grant") from exc
        body, _ = self._issue(grant, code.scopes)
        return body

    def revocation_endpoint(self, request: Request) -> Response:
        try:
            form = self._form(request)
            self._client(request, form)
        except OAuthError as exc:
            return Response.json({"error": exc.error}, exc.status)
        self.revoke(form.get("token", ""))  # unknown tokens: 200 as well (RFC 7009)
        return Response(200, b"", {})

    def authorize_endpoint(self, request: Request) -> Response:
        """Auto-consent: redirect straight back with a code for the consenting organisations."""
        q = {k: (v[0] if v else "") for k, v in request.query.items()}
        redirect_uri, state = q.get("redirect_uri", ""), q.get("state")
        if q.get("client_id") != self.client_id:
            return Response.text("Error: unauthorized_client", 400)
        if not redirect_uri or not urlsplit(redirect_uri).scheme:
            return Response.text("Error: invalid_request (redirect_uri)", 400)
        if self.redirect_uris is not None and redirect_uri not in self.redirect_uris:
            return Response.text("Error: unauthorized_client (redirect_uri not registered)", 400)

        def back(**params: str) -> Response:
            parts = urlsplit(redirect_uri)
            query = parse_qs(parts.query)
            merged = {k: v[0] for k, v in query.items()}
            merged.update(params)
            if state is not None:
                merged["state"] = state
            location = urlunsplit(parts._replace(query=urlencode(merged)))
            return Response(302, b"", {"Location": location})

        if q.get("response_type") != "code":
            return back(error="unsupported_response_type")
        scopes = parse_scope(q.get("scope", ""))
        if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
            return back(error="invalid_scope")
        challenge = q.get("code_challenge") or None
        if challenge and q.get("code_challenge_method", "plain") != "S256":
            return back(error="invalid_request")
        tenants = (self.consent_tenant_ids if self.consent_tenant_ids is not None
                   else list(self._tenants()))
        with self._lock:
            code = AuthCode(secrets.token_urlsafe(32), redirect_uri, list(tenants), scopes,
                            self.clock.now() + CODE_TTL, challenge)
            self._codes[code.code] = code
        return back(code=code.code, scope=" ".join(scopes), session_state=secrets.token_hex(16))

    # ---------------------------------------------------------------- resources
    def authenticate(self, request: Request) -> AccessToken | Unauthenticated:
        header = request.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Unauthenticated("AuthenticationUnsuccessful")
        with self._lock:
            access = self._access.get(token.strip())
        if access is None or access.revoked:
            return Unauthenticated("AuthenticationUnsuccessful")
        if self.clock.now() >= access.expires_at:
            when = access.expires_at.astimezone(UTC).strftime("%m/%d/%Y %H:%M:%S")
            return Unauthenticated(f"TokenExpired: token expired at {when}",
                                   {"WWW-Authenticate": 'Bearer error="invalid_token", '
                                                        'error_description="The token expired"'})
        return access

    def connections(self, access: AccessToken, auth_event_id: str | None) -> list[dict[str, Any]]:
        names = self._tenants()
        grant = access.grant
        if auth_event_id and auth_event_id.lower() != grant.auth_event_id:
            return []
        with self._lock:
            items = list(grant.connections.values())
        return [{"id": c.id, "authEventId": grant.auth_event_id, "tenantId": c.tenant_id,
                 "tenantType": "ORGANISATION", "tenantName": names.get(c.tenant_id, ""),
                 "createdDateUtc": connection_time(c.created),
                 "updatedDateUtc": connection_time(c.created)} for c in items]

    def connected_tenants(self) -> set[str]:
        """Organisations connected through a live grant (webhooks go only to those)."""
        with self._lock:
            grants = {id(rt.grant): rt.grant for rt in self._refresh.values()}
            grants |= {id(at.grant): at.grant for at in self._access.values()}
            return {t for g in grants.values() if not g.revoked for t in g.connections}

    def delete_connection(self, access: AccessToken, connection_id: str) -> bool:
        with self._lock:
            for tenant_id, conn in list(access.grant.connections.items()):
                if conn.id == connection_id.lower():
                    del access.grant.connections[tenant_id]
                    return True
        return False
