"""The browser connect flows and disconnecting, against both sandboxes over real HTTP.

The app runs in a TestClient (the browser); the hop to the provider's consent page and back is a
real HTTP request to the sandbox server, whose redirect is then followed back into the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select
from sqlmodel import Session

from arsync import registry
from arsync.clock import SimClock
from arsync.config import Settings
from arsync.context import AppContext
from arsync.errors import AuthError
from arsync.models import Connection, Credential
from arsync.models_web import OrgConnection
from arsync.models_webhooks import OAuthState
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.sandbox.xero import XeroSandbox
from arsync.web import auth
from tests.web.conftest import NOW, Browser, WebUser

REALM = "9130355377215626"
ORG_A = "a3f6c1de-0b6e-4c8e-9f3e-7d1c2b3a4e5f"
ORG_B = "b7e2d4c9-1a5f-4e6b-8c7d-9e0f1a2b3c4d"


@pytest.fixture
def qbo() -> Iterator[tuple[QuickBooksSandbox, str]]:
    sandbox = QuickBooksSandbox(clock=SimClock(NOW), rate_limits=False)
    sandbox.add_company(REALM, name="Maple Joinery", customers=3, invoices=4)
    sandbox.oauth.redirect_uris = {"http://testserver/connect/quickbooks/callback"}
    with SandboxServer(sandbox) as server:
        yield sandbox, server.url


@pytest.fixture
def xero() -> Iterator[tuple[XeroSandbox, str]]:
    sandbox = XeroSandbox(clock=SimClock(NOW), rate_limits=False)
    sandbox.add_organisation(ORG_A, name="Kiwi Plumbing", contacts=3, invoices=4)
    sandbox.add_organisation(ORG_B, name="Kiwi Plumbing Wellington", contacts=3, invoices=4,
                             seed=2)
    sandbox.identity.redirect_uris = {"http://testserver/connect/xero/callback"}
    with SandboxServer(sandbox) as server:
        yield sandbox, server.url


@pytest.fixture
def web_settings(tmp_path: Path, qbo: tuple[QuickBooksSandbox, str],
                 xero: tuple[XeroSandbox, str]) -> Settings:
    q, x = qbo[1], xero[1]
    return Settings(_env_file=None, home=tmp_path / "home", secret_key="w" * 32,  # type: ignore[call-arg]
                    database_url=f"sqlite:///{tmp_path / 'web.db'}",
                    public_url="http://testserver",
                    quickbooks_client_id="sandbox-qbo-client",
                    quickbooks_client_secret="sandbox-qbo-secret", quickbooks_api_url=q,
                    quickbooks_auth_url=f"{q}/connect/oauth2",
                    quickbooks_token_url=f"{q}/oauth2/v1/tokens/bearer",
                    quickbooks_revoke_url=f"{q}/oauth2/v1/tokens/revoke",
                    xero_client_id="sandbox-xero-client", xero_client_secret="sandbox-xero-secret",
                    xero_api_url=x, xero_auth_url=f"{x}/identity/connect/authorize",
                    xero_token_url=f"{x}/connect/token", xero_revoke_url=f"{x}/connect/revocation")


def consent(browser: Browser, provider: str, path: str | None = None) -> str:
    """Start connecting; return where the provider sends the browser back (path + query)."""
    start = browser.get(path or f"/connect/{provider}")
    assert start.status_code == 303, start.text
    back = requests.get(start.headers["location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    parts = urlsplit(back.headers["Location"])
    assert f"{parts.scheme}://{parts.netloc}" == "http://testserver"
    return f"{parts.path}?{parts.query}"


def connections(ctx: AppContext) -> list[Connection]:
    with Session(ctx.engine) as s:
        return list(s.scalars(select(Connection).order_by(Connection.id)))


def test_quickbooks_connect_end_to_end(signed_in: Browser, owner: WebUser, web_ctx: AppContext,
                                       qbo: tuple[QuickBooksSandbox, str]) -> None:
    start = signed_in.get("/connect/quickbooks")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["scope"] == ["com.intuit.quickbooks.accounting"]
    assert query["redirect_uri"] == ["http://testserver/connect/quickbooks/callback"]
    assert "code_challenge" not in query  # Intuit does not take PKCE
    back = requests.get(start.headers["location"], allow_redirects=False, timeout=10)
    done = signed_in.get(back.headers["Location"].removeprefix("http://testserver"))
    assert done.status_code == 303 and done.headers["location"] == "/"

    [conn] = connections(web_ctx)
    assert (conn.provider, conn.tenant_id, conn.status) == ("quickbooks", REALM, "active")
    assert conn.name == "Maple Joinery"
    with Session(web_ctx.engine) as s:
        assert s.get(OrgConnection, (owner.org_id, conn.id)) is not None
        cred = s.get(Credential, conn.credential_id)
        assert cred is not None
    # Encrypted at rest: the stored value is not the token, and the vault gives it back.
    token = web_ctx.vault.decrypt(cred.refresh_token_enc)
    assert token not in cred.refresh_token_enc
    assert qbo[0].oauth.realm_of_refresh(token) == REALM


def test_xero_multi_org_consent_makes_one_connection_per_organisation(
        signed_in: Browser, owner: WebUser, web_ctx: AppContext) -> None:
    start = signed_in.get("/connect/xero")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    scopes = query["scope"][0].split()
    assert "accounting.invoices" in scopes and "accounting.transactions" not in scopes
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    back = requests.get(start.headers["location"], allow_redirects=False, timeout=10)
    done = signed_in.get(back.headers["Location"].removeprefix("http://testserver"))
    assert done.status_code == 303, done.text

    conns = connections(web_ctx)
    assert sorted(c.tenant_id for c in conns) == sorted([ORG_A, ORG_B])
    assert len({c.credential_id for c in conns}) == 1  # one grant shared by both
    with Session(web_ctx.engine) as s:
        assert all(s.get(OrgConnection, (owner.org_id, c.id)) for c in conns)


def test_reused_state_is_refused_and_stores_nothing_more(signed_in: Browser,
                                                         web_ctx: AppContext) -> None:
    callback = consent(signed_in, "quickbooks")
    assert signed_in.get(callback).status_code == 303
    again = signed_in.get(callback)
    assert again.status_code == 400 and "already used" in again.text
    assert len(connections(web_ctx)) == 1


def test_forged_state_is_refused_before_any_exchange(signed_in: Browser, web_ctx: AppContext,
                                                     qbo: tuple[QuickBooksSandbox, str]) -> None:
    callback = consent(signed_in, "quickbooks")
    query = parse_qs(urlsplit(callback).query)
    forged = (f"/connect/quickbooks/callback?code={query['code'][0]}&state=forged"
              f"&realmId={REALM}")
    page = signed_in.get(forged)
    assert page.status_code == 400 and "not one arsync started" in page.text
    assert connections(web_ctx) == []
    assert qbo[0].stats[REALM]["token_calls"] == 0  # the code was never even exchanged


def test_state_from_another_session_is_refused(signed_in: Browser, sign_in: object,
                                               owner: WebUser, web_ctx: AppContext) -> None:
    callback = consent(signed_in, "quickbooks")
    other = sign_in(owner)  # type: ignore[operator] - same user, another browser session
    page = other.get(callback)
    assert page.status_code == 400 and "another session" in page.text
    assert connections(web_ctx) == []


def test_expired_state_is_refused(signed_in: Browser, web_ctx: AppContext,
                                  web_clock: SimClock) -> None:
    callback = consent(signed_in, "quickbooks")
    web_clock.advance(timedelta(minutes=11))
    page = signed_in.get(callback)
    assert page.status_code == 400 and "expired" in page.text
    assert connections(web_ctx) == []


def test_declined_consent_shows_a_clear_page(signed_in: Browser, web_ctx: AppContext) -> None:
    callback = consent(signed_in, "xero")
    state = parse_qs(urlsplit(callback).query)["state"][0]
    page = signed_in.get(f"/connect/xero/callback?error=access_denied&state={state}")
    assert page.status_code == 400 and "declined" in page.text
    assert connections(web_ctx) == []


def test_pkce_verifier_must_match(signed_in: Browser, web_ctx: AppContext) -> None:
    """The sandbox checks the verifier: a code redeemed with another verifier is refused."""
    callback = consent(signed_in, "xero")
    state = parse_qs(urlsplit(callback).query)["state"][0]
    with Session(web_ctx.engine, expire_on_commit=False) as s, s.begin():
        row = s.get(OAuthState, state)
        assert row is not None and row.code_verifier_enc
        row.code_verifier_enc = web_ctx.vault.encrypt("x" * 64)  # not the one challenged
    page = signed_in.get(callback)
    assert page.status_code == 400 and "refused the authorization code" in page.text
    assert connections(web_ctx) == []


def test_redirect_uri_must_match_at_the_exchange(signed_in: Browser, web_ctx: AppContext,
                                                 qbo: tuple[QuickBooksSandbox, str]) -> None:
    callback = consent(signed_in, "quickbooks")
    state = parse_qs(urlsplit(callback).query)["state"][0]
    with Session(web_ctx.engine) as s, s.begin():
        row = s.get(OAuthState, state)
        assert row is not None
        row.redirect_uri = "http://testserver/somewhere/else"
    assert signed_in.get(callback).status_code == 400
    assert connections(web_ctx) == []


def test_connect_needs_sign_in_and_launch_sends_to_login(client: Browser) -> None:
    page = client.get("/connect/quickbooks", headers={"accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    launch = client.get("/launch/xero")
    assert launch.status_code == 303
    assert launch.headers["location"] == "/login?next=/connect/xero"


def test_launch_when_signed_in_starts_connecting(signed_in: Browser) -> None:
    launch = signed_in.get("/launch/quickbooks")
    assert launch.headers["location"] == "/connect/quickbooks"
    assert signed_in.get("/connect/nonsense").status_code == 404


@pytest.mark.parametrize("provider", ["quickbooks", "xero"])
def test_sandbox_refuses_an_unregistered_redirect_uri(signed_in: Browser, provider: str) -> None:
    start = signed_in.get(f"/connect/{provider}").headers["location"]
    evil = start.replace("testserver", "evil.example")
    answer = requests.get(evil, allow_redirects=False, timeout=10)
    assert answer.status_code == 400 and "Location" not in answer.headers


# --- disconnecting (ours and the provider's side) and reconnecting ---------------------------


def post(browser: Browser, ctx: AppContext, url: str) -> int:
    """POST a form as the dashboard's button would, with this session's CSRF token."""
    raw = browser.client.cookies.get(auth.SESSION_COOKIE)
    token = auth.csrf_token(ctx.settings, f"session:{raw}")
    return browser.client.post(url, data={"csrf_token": token}).status_code


def connect(browser: Browser, provider: str, path: str | None = None) -> None:
    assert browser.get(consent(browser, provider, path)).status_code == 303


def refresh_token_of(ctx: AppContext, conn: Connection) -> str:
    with Session(ctx.engine) as s:
        cred = s.get(Credential, conn.credential_id)
    assert cred is not None
    return ctx.vault.decrypt(cred.refresh_token_enc)


def test_disconnect_quickbooks_revokes_the_grant(signed_in: Browser, web_ctx: AppContext) -> None:
    connect(signed_in, "quickbooks")
    [conn] = connections(web_ctx)
    token = refresh_token_of(web_ctx, conn)
    assert post(signed_in, web_ctx, f"/connections/{conn.id}/disconnect") == 303
    [after] = connections(web_ctx)
    assert after.status == "disconnected"
    with pytest.raises(AuthError):  # the sandbox refuses the old refresh token now
        registry.oauth_client("quickbooks", web_ctx.settings).refresh(token)


def test_disconnect_needs_csrf_and_tenancy(signed_in: Browser, web_ctx: AppContext,
                                           make_user: object) -> None:
    connect(signed_in, "quickbooks")
    [conn] = connections(web_ctx)
    assert signed_in.client.post(f"/connections/{conn.id}/disconnect",
                                 data={"csrf_token": "forged"}).status_code == 403
    stranger: WebUser = make_user("eve@other.example", org_name="Other")  # type: ignore[operator]
    other = Browser(signed_in.client.app, stranger)  # type: ignore[arg-type]
    assert other.login(stranger.email, stranger.password).status_code == 303
    assert post(other, web_ctx, f"/connections/{conn.id}/disconnect") == 404
    assert connections(web_ctx)[0].status == "active"


def test_disconnect_xero_keeps_the_grant_until_the_last_organisation(
        signed_in: Browser, web_ctx: AppContext, xero: tuple[XeroSandbox, str]) -> None:
    connect(signed_in, "xero")
    by_tenant = {c.tenant_id: c for c in connections(web_ctx)}
    token = refresh_token_of(web_ctx, by_tenant[ORG_A])
    assert post(signed_in, web_ctx, f"/connections/{by_tenant[ORG_A].id}/disconnect") == 303
    assert xero[0].identity.connected_tenants() == {ORG_B}  # DELETE /connections/{id}
    oauth = registry.oauth_client("xero", web_ctx.settings)
    # B still works: the shared grant was not revoked.
    live = refresh_token_of(web_ctx, by_tenant[ORG_B])
    tokens = oauth.refresh(live)
    assert [t.tenant_id for t in oauth.list_tenants(tokens.access_token)] == [ORG_B]
    with Session(web_ctx.engine, expire_on_commit=False) as s, s.begin():
        cred = s.get(Credential, by_tenant[ORG_B].credential_id)
        assert cred is not None
        cred.refresh_token_enc = web_ctx.vault.encrypt(tokens.refresh_token)
    assert post(signed_in, web_ctx, f"/connections/{by_tenant[ORG_B].id}/disconnect") == 303
    assert {c.status for c in connections(web_ctx)} == {"disconnected"}
    with pytest.raises(AuthError):  # the last organisation went: the grant was revoked
        oauth.refresh(tokens.refresh_token)
    with pytest.raises(AuthError):
        oauth.refresh(token)


def test_disconnected_landing_marks_only_what_the_provider_confirms(
        client: Browser, signed_in: Browser, web_ctx: AppContext,
        qbo: tuple[QuickBooksSandbox, str]) -> None:
    connect(signed_in, "quickbooks")
    # Anyone can open the landing URL: while the grant works, nothing is marked.
    page = client.get(f"/disconnected/quickbooks?realmId={REALM}")
    assert page.status_code == 200 and connections(web_ctx)[0].status == "active"
    qbo[0].revoke_refresh_tokens(REALM)  # the person disconnects arsync inside QuickBooks
    page = client.get(f"/disconnected/quickbooks?realmId={REALM}")
    assert page.status_code == 200 and "no longer has access" in page.text
    assert connections(web_ctx)[0].status == "disconnected"


def test_reconnect_reuses_the_connection_row(signed_in: Browser, web_ctx: AppContext,
                                             qbo: tuple[QuickBooksSandbox, str]) -> None:
    connect(signed_in, "quickbooks")
    [conn] = connections(web_ctx)
    qbo[0].revoke_refresh_tokens(REALM)
    with pytest.raises(AuthError):
        web_ctx.connector_for(conn).fetch_company()  # the token store marks it
    [dead] = connections(web_ctx)
    assert dead.status == "needs_reconnect"
    connect(signed_in, "quickbooks", f"/connect/quickbooks?reconnect={conn.id}")
    [again] = connections(web_ctx)
    assert (again.id, again.status) == (conn.id, "active")
    assert again.credential_id != conn.credential_id
    web_ctx.connector_for(again).fetch_company()  # the new grant works


def test_unconfigured_provider_shows_a_clear_page(tmp_path: Path) -> None:
    from arsync.web import accounts
    from arsync.web.app import create_app

    settings = Settings(_env_file=None, home=tmp_path / "bare", secret_key="b" * 32,  # type: ignore[call-arg]
                        database_url=f"sqlite:///{tmp_path / 'bare.db'}")
    ctx = AppContext(settings, clock=SimClock(NOW))
    with Session(ctx.engine) as db, db.begin():
        accounts.create_user(db, "solo@bare.example", "correct horse battery staple",
                             org_name="Bare", now=NOW)
    browser = Browser(create_app(ctx))
    assert browser.login("solo@bare.example", "correct horse battery staple").status_code == 303
    page = browser.get("/connect/xero")
    assert page.status_code == 503 and "not set up on this server" in page.text
    with Session(ctx.engine) as s:
        assert s.scalar(select(func.count()).select_from(OAuthState)) == 0
