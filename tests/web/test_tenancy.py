"""Tenancy: a user of one organisation walks every route of the app with the ids of another
organisation's objects and gets 404 everywhere; nothing of the other organisation changes or
shows. Runs on SQLite and PostgreSQL.

Routes are enumerated from the app itself, so a new route is covered (or fails this test until
it is classified) without anyone remembering to add it here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlmodel import Session
from starlette.routing import Mount, Route

from arsync.config import Settings
from arsync.context import AppContext
from arsync.models import Action, Connection, Customer, Invoice
from arsync.models_web import Membership, OrgConnection, WebSession
from tests.factories import make_connection, make_customer, make_invoice
from tests.web.conftest import Browser, WebUser
from tests.web.test_dashboard import TODAY, make_action

#: Routes anyone may reach without an organisation's session, and why that is safe.
PUBLIC: dict[str, str] = {
    "/static": "the app's own CSS and scripts",
    "/healthz": "liveness; says nothing about any organisation",
    "/login": "sign-in form",
    "/signup": "creates a new organisation; never joins one",
    "/logout": "ends only the caller's own session",
    "/org": "checked below with another organisation's id in the form (see FORM_IDS)",
    "/webhooks/{provider}": "authenticated by the provider's signature, not a session",
    "/webhooks/sms": "authenticated by Twilio's signature (X-Twilio-Signature), not a session",
    "/pay/{token}": "authenticated by the payer's signed, expiring link",
    "/pay/{token}/{kind}": "authenticated by the payer's signed, expiring link",
    "/pay/{token}/unsubscribe": "authenticated by the payer's signed, expiring link",
    "/unsubscribe/{token}": "authenticated by the signed List-Unsubscribe link",
    "/connect/{provider}/callback": "OAuth redirect; the server-side state binds it to the "
                                    "user who started the flow",
    "/launch/{provider}": "marketplace entry point: sends the browser to sign in",
    "/disconnected/{provider}": "provider's disconnect notice; shows nothing of any account",
}
#: Path parameters naming no organisation's object, and a value to fill them with.
NEUTRAL = {"provider": "quickbooks"}
#: Routes that carry an object id outside the path (query or form), checked with A's ids.
QUERY_IDS = {"/connect/{provider}": {"reconnect": "connection_id"}}
FORM_IDS = {"/org": {"org_id": "org_id"}}
#: Routes that must be exercised with an object id (the walk would otherwise pass vacuously).
MUST_CHECK = {"/connections/{connection_id}", "/actions/{action_id}/approve",
              "/actions/{action_id}/reject", "/connections/{connection_id}/disconnect",
              "/connect/{provider}", "/org"}
MARKERS = ("Acme Secret Books", "Wile E. Coyote", "ACME-INV-777", "acme-owner@acme.example")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def web_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Overrides the web conftest's: the same walk on both real databases."""
    url = f"sqlite:///{tmp_path / 'web.db'}"
    if request.param == "postgres":
        request.getfixturevalue("postgres_engine")  # an empty, migrated schema
        url = request.getfixturevalue("postgres_url")
    return Settings(_env_file=None, home=tmp_path / "home", secret_key="w" * 32,  # type: ignore[call-arg]
                    database_url=url)


def iter_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """Every (path, methods) of the app, descending into included routers."""
    for route in routes:
        if isinstance(route, APIRoute | Route):
            yield prefix + route.path, set(route.methods or ()) - {"HEAD"}
        elif isinstance(route, Mount):
            yield prefix + route.path, {"GET"}
        elif hasattr(route, "original_router"):  # FastAPI's lazily included router
            inner = getattr(route.include_context, "prefix", "")
            yield from iter_routes(route.original_router.routes, prefix + inner)
        else:
            raise AssertionError(f"unknown route type {type(route)!r}: classify it here")


def _snapshot(ctx: AppContext, conn_id: int, org_id: int) -> dict[str, Any]:
    """Everything of organisation A a foreign request could change."""
    with Session(ctx.engine) as db:
        def rows(model: Any, *where: Any) -> list[Any]:
            return sorted(json.dumps(r.model_dump(), default=str, sort_keys=True)
                          for r in db.scalars(select(model).where(*where)))
        return {
            "connection": rows(Connection, Connection.id == conn_id),
            "actions": rows(Action, Action.connection_id == conn_id),
            "invoices": rows(Invoice, Invoice.connection_id == conn_id),
            "grants": rows(OrgConnection, OrgConnection.connection_id == conn_id),
            "members": rows(Membership, Membership.org_id == org_id),
            "sessions": rows(WebSession, WebSession.org_id == org_id),
        }


@pytest.fixture
def victim(web_ctx: AppContext, make_user: Callable[..., WebUser],
           sign_in: Callable[[WebUser], Browser],
           grant: Callable[[int, Connection | int], None]) -> dict[str, int]:
    """Organisation A: a signed-in owner, a connection, a customer, invoices, actions."""
    owner = make_user(MARKERS[3], org_name="Acme Corporation")
    sign_in(owner)  # A has a live session too
    conn = make_connection(web_ctx.engine, name=MARKERS[0], status="needs_reconnect")
    grant(owner.org_id, conn)
    make_customer(web_ctx.engine, conn, "C1", name=MARKERS[1])
    make_invoice(web_ctx.engine, conn, MARKERS[2], "C1", due=TODAY, amount="4321.00")
    action = make_action(web_ctx, conn, invoices=(MARKERS[2],))
    make_action(web_ctx, conn, status="planned", kind="task", task_kind="call")
    return {"connection_id": conn.id or 0, "action_id": action, "org_id": owner.org_id}


@pytest.fixture
def intruder(web_ctx: AppContext, make_user: Callable[..., WebUser],
             sign_in: Callable[[WebUser], Browser],
             grant: Callable[[int, Connection | int], None]) -> Browser:
    """Organisation B's owner, signed in, with a company of its own (pages are not empty)."""
    user = make_user("boss@beta.example", org_name="Beta Ltd")
    conn = make_connection(web_ctx.engine, name="Beta Books")
    grant(user.org_id, conn)
    make_action(web_ctx, conn, customer="B1")
    return sign_in(user)


def _fill(path: str, ids: dict[str, int]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name in ids:
            return str(ids[name])
        if name in NEUTRAL:
            return NEUTRAL[name]
        raise AssertionError(f"{path}: unknown path parameter {name!r}; add another "
                             "organisation's real id for it to the walk (or to NEUTRAL)")
    return re.sub(r"{([^}]+)}", value, path)


def test_every_route_is_404_for_another_organisations_objects(
        web_app: FastAPI, web_ctx: AppContext, victim: dict[str, int],
        intruder: Browser) -> None:
    before = _snapshot(web_ctx, victim["connection_id"], victim["org_id"])
    token = intruder.csrf("/")
    checked: dict[str, list[str]] = {}
    for path, methods in sorted(iter_routes(web_app.routes)):
        if path in PUBLIC and path not in FORM_IDS:
            continue
        url = _fill(path, victim)
        has_object = url != _fill(path, dict.fromkeys(victim, 0)) or path in QUERY_IDS \
            or path in FORM_IDS
        query = {k: victim[v] for k, v in QUERY_IDS.get(path, {}).items()}
        form = {k: victim[v] for k, v in FORM_IDS.get(path, {}).items()}
        for method in sorted(methods):
            if method == "GET":
                response = intruder.client.get(url, params=query)
            else:
                response = intruder.client.request(method, url, params=query,
                                                   data={**form, "csrf_token": token})
            checked.setdefault(path, []).append(f"{method} {response.status_code}")
            body = response.text + response.headers.get("location", "")
            for marker in MARKERS:
                assert marker not in body, f"{method} {url} shows {marker!r}"
            if has_object:
                assert response.status_code == 404, \
                    f"{method} {url} {query or ''}{form or ''}: {response.status_code}"
            else:
                # No object in the request: the page is B's own (a listing); it must work and
                # must not show A's data (checked above).
                assert response.status_code < 500, f"{method} {url}: {response.status_code}"
                assert method == "GET", f"{method} {url} takes no object id: classify it here"
    missing = MUST_CHECK - set(checked)
    assert not missing, f"routes not walked: {missing}"
    assert _snapshot(web_ctx, victim["connection_id"], victim["org_id"]) == before
    # Control: the same routes answer B about B's own objects (the 404s above are tenancy,
    # not broken routes).
    assert "Beta Books" in intruder.get("/").text
    with Session(web_ctx.engine) as db:
        own = db.scalars(select(Connection.id).where(Connection.name == "Beta Books")).one()
    assert intruder.get(f"/connections/{own}").status_code == 200


def test_listings_show_only_the_users_organisation(web_ctx: AppContext, victim: dict[str, int],
                                                   intruder: Browser) -> None:
    for page in ("/", "/actions", "/actions?status=awaiting_approval",
                 "/actions?status=planned"):
        response = intruder.get(page)
        assert response.status_code == 200
        assert f'data-action-id="{victim["action_id"]}"' not in response.text
        for marker in MARKERS:
            assert marker not in response.text, f"{page} shows {marker!r}"


def test_a_member_removed_from_the_organisation_loses_access_at_once(
        web_ctx: AppContext, make_user: Callable[..., WebUser],
        sign_in: Callable[[WebUser], Browser]) -> None:
    user = make_user("leaver@acme.example", org_name="Acme Corporation")
    browser = sign_in(user)
    assert browser.get("/").status_code == 200
    with Session(web_ctx.engine) as db, db.begin():
        db.delete(db.get(Membership, (user.user_id, user.org_id)))
    assert browser.get("/").status_code == 401


def test_customer_names_come_only_from_visible_connections(
        web_ctx: AppContext, victim: dict[str, int], intruder: Browser) -> None:
    # B's connection has a customer with A's customer's external id: B sees its own name only.
    with Session(web_ctx.engine) as db:
        beta = db.scalars(select(Connection).where(Connection.name == "Beta Books")).one()
        assert db.scalars(select(Customer).where(Customer.connection_id == beta.id)).all() == []
    make_customer(web_ctx.engine, beta, "C1", name="Beta's Own Customer")
    make_action(web_ctx, beta, customer="C1")
    html = intruder.get("/").text
    assert "Beta&#39;s Own Customer" in html and MARKERS[1] not in html
