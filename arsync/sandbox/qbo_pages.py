"""The non-API pages of the QuickBooks sandbox: Intuit OAuth endpoints and the invoice pay page.

``/oauth2/v1/tokens/bearer`` and ``/oauth2/v1/tokens/revoke`` behave as Intuit's (HTTP Basic client
auth, RFC 6749 error bodies); ``/connect/oauth2`` consents at once for the first (or
``realm_hint``) company and redirects with ``code``, ``state`` and ``realmId``; the discovery
document points every endpoint at this server, so ``intuitlib.AuthClient(environment=<discovery
URL>)`` works unchanged. ``/pay/{realm}/{id}`` is the page an ``InvoiceLink`` opens.
"""

from __future__ import annotations

import html
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from arsync.sandbox._http import Request, Response, Router
from arsync.sandbox.qbo_oauth import ACCOUNTING_SCOPE, OAuthError

if TYPE_CHECKING:
    from arsync.sandbox.quickbooks import QuickBooksSandbox


def oauth_routes(sandbox: QuickBooksSandbox, router: Router) -> None:
    """Add the OAuth and discovery routes to ``router``."""

    def token(request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        realm = sandbox.oauth.realm_of_refresh(form.get("refresh_token", [""])[0])
        try:
            granted_realm, body = sandbox.oauth.token(request.headers, request.body)
        except OAuthError as err:
            sandbox.count(realm, "token_calls", "token_errors")
            return _oauth_json(err.body, err.status)
        sandbox.count(granted_realm, "token_calls")
        return _oauth_json(body, 200)

    def revoke(request: Request) -> Response:
        try:
            body = json.loads(request.body.decode("utf-8") or "{}")
            sandbox.oauth.revoke(request.headers, body if isinstance(body, dict) else {})
        except OAuthError as err:
            return _oauth_json(err.body, err.status)
        except ValueError:
            return _oauth_json({"error": "invalid_request"}, 400)
        return Response(200, b"", {"Content-Type": "application/json"})

    def authorize(request: Request) -> Response:
        if request.arg("client_id") != sandbox.oauth.client_id:
            return _html("Invalid client", "The client_id is not registered.", 400)
        redirect_uri = request.arg("redirect_uri")
        if not redirect_uri:
            return _html("Invalid request", "redirect_uri is required.", 400)
        allowed = sandbox.oauth.redirect_uris
        if allowed is not None and redirect_uri not in allowed:  # exact match, as Intuit
            return _html("Invalid redirect_uri", "The redirect_uri is not one of the app's "
                         "registered redirect URIs.", 400)
        state = request.arg("state") or ""
        scope = (request.arg("scope") or "").split()
        if request.arg("response_type") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", "state": state})
        if not scope:
            return _redirect(redirect_uri, {"error": "invalid_scope", "state": state})
        realm = request.arg("realm_hint")
        if realm not in sandbox.companies:
            realm = next(iter(sandbox.companies), None)
        if realm is None:
            return _html("No company", "This sandbox has no company to connect.", 400)
        params = {"code": sandbox.oauth.authorize_code(realm, redirect_uri), "state": state}
        if ACCOUNTING_SCOPE in scope or "com.intuit.quickbooks.payment" in scope:
            params["realmId"] = realm  # only accounting/payment consents carry the company
        return _redirect(redirect_uri, params)

    def discovery(request: Request) -> Response:
        base = f"http://{request.headers.get('Host') or '127.0.0.1'}"
        doc = {"issuer": f"{base}/op/v1",
               "authorization_endpoint": f"{base}/connect/oauth2",
               "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
               "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
               "revocation_endpoint": f"{base}/oauth2/v1/tokens/revoke",
               "jwks_uri": f"{base}/op/v1/jwks",
               "response_types_supported": ["code"], "subject_types_supported": ["public"],
               "id_token_signing_alg_values_supported": ["RS256"],
               "scopes_supported": ["openid", "email", "profile", "address", "phone"],
               "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                         "client_secret_basic"],
               "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"]}
        return _oauth_json(doc, 200)

    router.add("POST", r"/oauth2/v1/tokens/bearer", token)
    router.add("POST", r"/oauth2/v1/tokens/revoke", revoke)
    router.add("POST", r"/v2/oauth2/tokens/revoke", revoke)  # the production revoke path
    router.add("GET", r"/connect/oauth2", authorize)
    router.add("GET", r"/\.well-known/openid_(?:sandbox_)?configuration/?", discovery)
    router.add("GET", r"/op/v1/jwks", lambda r: _oauth_json({"keys": []}, 200))


def pay_page(sandbox: QuickBooksSandbox, request: Request) -> Response:
    """The customer-facing page behind ``InvoiceLink``; POST pays the open balance."""
    realm, invoice_id = request.params["realm"], request.params["id"]
    co = sandbox.companies.get(realm)
    inv = co.objects["Invoice"].get(invoice_id) if co else None
    if co is None or inv is None:
        return _html("Invoice not found", "This invoice link is no longer valid.", 404)
    if request.method == "POST" and Decimal(str(inv["Balance"])) > 0:
        sandbox.record_payment(realm, invoice_id)
        inv = co.objects["Invoice"][invoice_id]
        return _html("Payment received", f"Thank you! Invoice {_e(inv.get('DocNumber'))} to "
                     f"{_e(co.name)} is paid.", 200)
    currency = inv.get("CurrencyRef", {}).get("value", co.currency)
    balance = Decimal(str(inv["Balance"]))
    head = (f"<p>Invoice <b>{_e(inv.get('DocNumber'))}</b> from <b>{_e(co.name)}</b> to "
            f"{_e(inv['CustomerRef'].get('name'))}</p><p>Due {_e(inv.get('DueDate'))}. "
            f"Amount due: <b>{_e(currency)} {balance:,.2f}</b></p>")
    if balance <= 0:
        return _html("Invoice paid", head + "<p>This invoice is paid. Thank you!</p>", 200)
    form = (f'<form method="post"><button type="submit">Pay {_e(currency)} {balance:,.2f}'
            "</button></form>")
    return _html(f"Invoice {inv.get('DocNumber')}", head + form, 200)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _html(title: str, body: str, status: int) -> Response:
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title></head>"
            f"<body><h1>{_e(title)}</h1>{body}</body></html>")
    return Response(status, page.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})


def _oauth_json(payload: dict[str, Any], status: int) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"),
                    {"Content-Type": "application/json;charset=UTF-8",
                     "Cache-Control": "no-cache, no-store", "Pragma": "no-cache"})


def _redirect(uri: str, params: dict[str, str]) -> Response:
    location = uri + ("&" if "?" in uri else "?") + urlencode(params)
    return Response(302, b"", {"Location": location})
