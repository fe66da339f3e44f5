"""Accounts over the real app and a real SQLite database: sign-up, sign-in, sessions, CSRF,
throttling."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.context import AppContext
from arsync.models_web import LoginFailure, Membership, Organisation, User, WebSession
from arsync.web import accounts, auth
from tests.web.conftest import PASSWORD, Browser, WebUser


def _count(ctx: AppContext, model: type) -> int:
    with Session(ctx.engine) as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


def _session_hashes(ctx: AppContext) -> set[str]:
    with Session(ctx.engine) as db:
        return set(db.scalars(select(WebSession.id_hash)))


# -- passwords -------------------------------------------------------------------------------

def test_password_hash_is_salted_scrypt_with_its_parameters() -> None:
    one, two = accounts.hash_password("a long password"), accounts.hash_password("a long password")
    assert one != two  # a fresh salt each time
    scheme, n, r, p, _salt, _key = one.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert accounts.verify_password("a long password", one)
    assert not accounts.verify_password("a long passwore", one)
    assert not accounts.verify_password("a long password", "garbage")


def test_emails_are_unique_whatever_the_case(web_ctx: AppContext,
                                            make_user: Callable[..., WebUser]) -> None:
    make_user("Ann@Example.com")
    with pytest.raises(accounts.InputError, match="already exists"), \
            Session(web_ctx.engine) as db:
        accounts.create_user(db, "  ann@EXAMPLE.com", PASSWORD, now=web_ctx.clock.now())
    with Session(web_ctx.engine) as db:
        assert list(db.scalars(select(User.email))) == ["ann@example.com"]


def test_weak_password_and_bad_role_are_refused(web_ctx: AppContext) -> None:
    with Session(web_ctx.engine) as db:
        with pytest.raises(accounts.InputError, match="at least 10"):
            accounts.create_user(db, "a@example.com", "short", now=web_ctx.clock.now())
        with pytest.raises(accounts.InputError, match="role must be"):
            accounts.create_user(db, "a@example.com", PASSWORD, role="admin",
                                 now=web_ctx.clock.now())


# -- sign-up, sign-in, sign-out --------------------------------------------------------------

def test_signup_creates_org_and_owner_and_signs_in(client: Browser, web_ctx: AppContext) -> None:
    response = client.post("/signup", {"email": "New@Shop.example", "password": PASSWORD,
                                       "org_name": "Corner Shop"}, page="/signup")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "arsync_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # the public URL is http:// here
    with Session(web_ctx.engine) as db:
        user = db.scalars(select(User)).one()
        member = db.scalars(select(Membership)).one()
        org = db.get(Organisation, member.org_id)
    assert user.email == "new@shop.example" and member.role == "owner"
    assert org is not None and org.name == "Corner Shop"
    page = client.get("/")
    assert page.status_code == 200 and "Corner Shop" in page.text


def test_signup_never_joins_an_existing_organisation_by_name(
        client: Browser, owner: WebUser, web_ctx: AppContext) -> None:
    response = client.post("/signup", {"email": "intruder@evil.example", "password": PASSWORD,
                                       "org_name": "Acme Ltd"}, page="/signup")
    assert response.status_code == 303
    with Session(web_ctx.engine) as db:
        orgs = list(db.scalars(select(Organisation.id).where(Organisation.name == "Acme Ltd")))
    assert len(orgs) == 2 and owner.org_id in orgs


def test_signup_with_taken_email_changes_nothing(client: Browser, owner: WebUser,
                                                 web_ctx: AppContext) -> None:
    before = (_count(web_ctx, User), _count(web_ctx, Organisation))
    response = client.post("/signup", {"email": owner.email.upper(), "password": PASSWORD,
                                       "org_name": "Other"}, page="/signup")
    assert response.status_code == 400 and "already exists" in response.text
    assert (_count(web_ctx, User), _count(web_ctx, Organisation)) == before


def test_signup_can_be_disabled(client: Browser, web_ctx: AppContext) -> None:
    web_ctx.settings.web_signup_enabled = False
    assert client.get("/signup").status_code == 404
    token = client.csrf("/login")
    response = client.client.post("/signup", data={"email": "a@b.example", "password": PASSWORD,
                                                   "org_name": "X", "csrf_token": token})
    assert response.status_code == 404
    assert _count(web_ctx, User) == 0


def test_login_rotates_the_session_and_logout_deletes_it(
        client: Browser, owner: WebUser, web_ctx: AppContext) -> None:
    first = client.login(owner.email, owner.password)
    assert first.status_code == 303
    old = client.client.cookies.get(auth.SESSION_COOKIE)
    assert _session_hashes(web_ctx) == {auth.hash_session_id(old)}
    second = client.login(owner.email, owner.password)  # signing in again: a new id
    new = client.client.cookies.get(auth.SESSION_COOKIE)
    assert second.status_code == 303 and new != old
    assert _session_hashes(web_ctx) == {auth.hash_session_id(new)}  # the old one is gone
    response = client.post("/logout", page="/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert _session_hashes(web_ctx) == set()
    # The old cookie, replayed, no longer works.
    client.client.cookies.set(auth.SESSION_COOKIE, new)
    assert client.get("/").status_code == 401


def test_only_the_hash_of_the_session_id_is_stored(signed_in: Browser,
                                                   web_ctx: AppContext) -> None:
    raw = signed_in.client.cookies.get(auth.SESSION_COOKIE)
    assert raw and len(raw) >= 43  # 32 random bytes, base64
    assert _session_hashes(web_ctx) == {auth.hash_session_id(raw)}
    assert raw not in _session_hashes(web_ctx)


def test_wrong_password_is_refused_without_saying_which(client: Browser,
                                                       owner: WebUser) -> None:
    wrong = client.login(owner.email, "not the password")
    unknown = client.login("nobody@acme.example", owner.password)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "wrong email or password" in response.text
        assert auth.SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert client.get("/").status_code == 401


def test_unauthenticated_browser_is_sent_to_login_with_next(client: Browser) -> None:
    response = client.get("/actions?status=planned", headers={"accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/actions%3Fstatus%3Dplanned"


def test_login_returns_to_next_but_never_off_site(client: Browser, owner: WebUser) -> None:
    assert client.login(owner.email, owner.password, "/actions").headers["location"] == "/actions"
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert client.login(owner.email, owner.password, evil).headers["location"] == "/"


def test_cookie_is_secure_when_served_over_https(client: Browser, owner: WebUser,
                                                 web_ctx: AppContext) -> None:
    web_ctx.settings.public_url = "https://ar.example.com"
    client.client.base_url = "https://testserver"  # type: ignore[assignment]
    response = client.login(owner.email, owner.password)
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


# -- session expiry --------------------------------------------------------------------------

def test_idle_session_expires(signed_in: Browser, web_ctx: AppContext,
                              web_clock: SimClock) -> None:
    idle = web_ctx.settings.web_session_idle_minutes
    web_clock.advance(timedelta(minutes=idle - 1))
    assert signed_in.get("/").status_code == 200  # activity keeps it alive...
    web_clock.advance(timedelta(minutes=idle - 1))
    assert signed_in.get("/").status_code == 200
    web_clock.advance(timedelta(minutes=idle))  # ...idleness ends it
    assert signed_in.get("/").status_code == 401
    assert _session_hashes(web_ctx) == set()


def test_session_has_an_absolute_lifetime(signed_in: Browser, web_ctx: AppContext,
                                          web_clock: SimClock) -> None:
    step = timedelta(minutes=web_ctx.settings.web_session_idle_minutes // 2)
    end = web_clock.now() + timedelta(hours=web_ctx.settings.web_session_max_hours)
    while web_clock.now() + step < end:
        web_clock.advance(step)
        assert signed_in.get("/").status_code == 200
    web_clock.advance(step)
    assert signed_in.get("/").status_code == 401


def test_signing_in_sweeps_sessions_nobody_came_back_to(
        signed_in: Browser, make_user: Callable[..., WebUser],
        sign_in: Callable[[WebUser], Browser], web_ctx: AppContext,
        web_clock: SimClock) -> None:
    assert len(_session_hashes(web_ctx)) == 1
    web_clock.advance(timedelta(minutes=web_ctx.settings.web_session_idle_minutes))
    later = sign_in(make_user("later@acme.example", org_name="Acme Ltd"))
    raw = later.client.cookies.get(auth.SESSION_COOKIE)
    assert _session_hashes(web_ctx) == {auth.hash_session_id(raw)}


# -- CSRF ------------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "", "0" * 64, "forged"])
def test_logout_without_the_right_csrf_token_is_403_and_changes_nothing(
        signed_in: Browser, web_ctx: AppContext, token: str | None) -> None:
    before = _session_hashes(web_ctx)
    data = {} if token is None else {"csrf_token": token}
    response = signed_in.client.post("/logout", data=data)
    assert response.status_code == 403
    assert _session_hashes(web_ctx) == before
    assert signed_in.get("/").status_code == 200


def test_csrf_token_of_another_session_is_refused(signed_in: Browser,
                                                  sign_in: Callable[[WebUser], Browser],
                                                  owner: WebUser, web_ctx: AppContext) -> None:
    other = sign_in(owner)  # the same user in another browser: another session, another token
    theirs = other.csrf("/")
    assert theirs != signed_in.csrf("/")
    before = _session_hashes(web_ctx)
    assert signed_in.post("/logout", csrf=theirs).status_code == 403
    assert _session_hashes(web_ctx) == before


def test_login_form_needs_its_csrf_cookie(client: Browser, owner: WebUser,
                                          web_ctx: AppContext) -> None:
    token = client.csrf("/login")
    client.client.cookies.clear()  # a cross-site form has the token's text but not the cookie
    response = client.client.post("/login", data={"email": owner.email,
                                                  "password": owner.password,
                                                  "csrf_token": token})
    assert response.status_code == 403
    assert _session_hashes(web_ctx) == set()


def test_signup_without_csrf_creates_nothing(client: Browser, web_ctx: AppContext) -> None:
    client.csrf("/signup")
    response = client.client.post("/signup", data={"email": "x@y.example", "password": PASSWORD,
                                                   "org_name": "X"})
    assert response.status_code == 403
    assert (_count(web_ctx, User), _count(web_ctx, Organisation)) == (0, 0)


# -- throttling ------------------------------------------------------------------------------

def test_five_failures_lock_the_email_then_it_unlocks(client: Browser, owner: WebUser,
                                                      web_ctx: AppContext,
                                                      web_clock: SimClock) -> None:
    for _ in range(5):
        assert client.login(owner.email, "wrong password").status_code == 401
        web_clock.advance(timedelta(minutes=1))
    locked = client.login(owner.email, owner.password)  # even the right password
    assert locked.status_code == 429
    retry = int(locked.headers["Retry-After"])
    # The first failure leaves the 15-minute window 11 minutes from now.
    assert 10 * 60 < retry <= 11 * 60 + 1
    web_clock.advance(timedelta(seconds=retry))
    assert client.login(owner.email, owner.password).status_code == 303
    with Session(web_ctx.engine) as db:  # success clears the email's record
        assert accounts.failure_count(db, f"email:{owner.email}") == 0


def test_success_resets_the_email_count(client: Browser, owner: WebUser) -> None:
    for _ in range(4):
        client.login(owner.email, "wrong password")
    assert client.login(owner.email, owner.password).status_code == 303
    for _ in range(4):
        assert client.login(owner.email, "wrong password").status_code == 401
    assert client.login(owner.email, owner.password).status_code == 303


def test_one_address_guessing_many_emails_is_throttled(client: Browser, owner: WebUser,
                                                       web_ctx: AppContext) -> None:
    limit = web_ctx.settings.login_max_failures_per_ip
    for i in range(limit):
        assert client.login(f"guess{i}@acme.example", "wrong password").status_code == 401
    response = client.login(owner.email, owner.password)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0


def test_failures_outside_the_window_are_pruned(client: Browser, owner: WebUser,
                                                web_ctx: AppContext,
                                                web_clock: SimClock) -> None:
    client.login(owner.email, "wrong password")
    web_clock.advance(timedelta(minutes=web_ctx.settings.login_window_minutes + 1))
    client.login("someone@else.example", "wrong password")
    with Session(web_ctx.engine) as db:
        keys = set(db.scalars(select(LoginFailure.key)))
    assert keys == {"email:someone@else.example", "ip:testclient"}
