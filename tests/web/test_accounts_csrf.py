"""Every state-changing route of the app demands the session's CSRF token.

Enumerated from the app, so a new POST route fails here until it uses ``verify_csrf`` or is
listed below with the reason it needs none.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from arsync.web.deps import verify_csrf
from tests.web.conftest import Browser
from tests.web.test_tenancy import iter_routes

#: State-changing routes without a session CSRF token, and what protects them instead.
EXEMPT = {
    "/webhooks/{provider}": "the provider's HMAC signature over the raw body",
    "/webhooks/sms": "Twilio's HMAC-SHA1 signature over the URL and form",
    "/pay/{token}/{kind}": "the signed payer link in the URL is itself an unguessable secret "
                           "a cross-site attacker does not have",
    "/pay/{token}/unsubscribe": "the signed payer link (as above)",
    "/unsubscribe/{token}": "RFC 8058 one-click List-Unsubscribe: mail clients POST it without "
                            "a page; the signed token is the secret",
}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _api_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    out: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append((prefix + route.path, route))
        elif hasattr(route, "original_router"):
            out += _api_routes(route.original_router.routes,
                               prefix + getattr(route.include_context, "prefix", ""))
    return out


def test_every_write_route_depends_on_verify_csrf(web_app: FastAPI) -> None:
    writes = [(path, route) for path, route in _api_routes(web_app.routes)
              if route.methods & WRITES]
    assert {p for p, _ in writes} >= {"/login", "/signup", "/logout", "/org",
                                      "/actions/{action_id}/approve"}
    for path, route in writes:
        calls = {dep.call for dep in route.dependant.dependencies}
        if path in EXEMPT:
            continue
        assert verify_csrf in calls, f"{path} changes state without verify_csrf"


def test_every_write_route_refuses_a_missing_token(web_app: FastAPI, signed_in: Browser) -> None:
    paths = [p for p, methods in iter_routes(web_app.routes) if methods & WRITES
             and p not in EXEMPT]
    assert paths
    for path in paths:
        url = re.sub(r"{[^}]+}", "1", path)
        response = signed_in.client.post(url, data={"org_id": "1", "email": "x@y.example",
                                                    "password": "p" * 12, "org_name": "X"})
        assert response.status_code == 403, f"POST {url}: {response.status_code}"
