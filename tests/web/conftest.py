"""Web fixtures: the real app over a real database, browsers (TestClients), users, grants.

Stable names other web tests use: ``web_settings``, ``web_clock``, ``web_ctx``, ``web_app``,
``client``, ``new_browser``, ``make_user``, ``owner``, ``signed_in``, ``grant``, and the
:class:`Browser` helper (``csrf()``, ``post()`` with the token filled in, ``login()``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.context import AppContext
from arsync.models import Connection
from arsync.web import accounts
from arsync.web.app import create_app

NOW = datetime(2026, 3, 16, 15, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class WebUser:
    email: str
    password: str
    user_id: int
    org_id: int


class Browser:
    """One browser: a TestClient with its own cookie jar, redirects not followed."""

    def __init__(self, app: FastAPI, user: WebUser | None = None) -> None:
        self.client = TestClient(app, follow_redirects=False)
        self.user = user

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.client.get(url, **kw)

    def csrf(self, page: str = "/login") -> str:
        """The CSRF token a form on ``page`` carries (fetching it sets the cookies it needs)."""
        response = self.client.get(page)
        match = _CSRF.search(response.text)
        assert match, f"no csrf_token on {page} ({response.status_code})"
        return match.group(1)

    def post(self, url: str, data: dict[str, Any] | None = None, *, page: str = "/",
             csrf: str | None = None, **kw: Any) -> httpx.Response:
        """POST a form the way the page would, with its CSRF token."""
        token = csrf if csrf is not None else self.csrf(page if self.user else "/login")
        return self.client.post(url, data={**(data or {}), "csrf_token": token}, **kw)

    def login(self, email: str, password: str, next_path: str = "/") -> httpx.Response:
        token = self.csrf("/login")
        return self.client.post("/login", data={"email": email, "password": password,
                                                "next": next_path, "csrf_token": token})


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, home=tmp_path / "home", secret_key="w" * 32,  # type: ignore[call-arg]
                    database_url=f"sqlite:///{tmp_path / 'web.db'}")


@pytest.fixture
def web_clock() -> SimClock:
    return SimClock(NOW)


@pytest.fixture
def web_ctx(web_settings: Settings, web_clock: SimClock) -> Iterator[AppContext]:
    ctx = AppContext(web_settings, clock=web_clock)
    yield ctx
    ctx.engine.dispose()


@pytest.fixture
def web_app(web_ctx: AppContext) -> FastAPI:
    return create_app(web_ctx)


@pytest.fixture
def new_browser(web_app: FastAPI) -> Callable[[], Browser]:
    return lambda: Browser(web_app)


@pytest.fixture
def client(new_browser: Callable[[], Browser]) -> Browser:
    """A signed-out browser."""
    return new_browser()


@pytest.fixture
def make_user(web_ctx: AppContext) -> Callable[..., WebUser]:
    """``make_user(email, role="owner", org_name=None, password=PASSWORD)`` in the database."""

    def make(email: str, *, role: str = "owner", org_name: str | None = None,
             password: str = PASSWORD) -> WebUser:
        with Session(web_ctx.engine) as db, db.begin():
            user = accounts.create_user(db, email, password, role=role, org_name=org_name,
                                        now=web_ctx.clock.now())
            org_id = accounts.memberships(db, user.id or 0)[0][0].id or 0
            return WebUser(email=user.email, password=password, user_id=user.id or 0,
                           org_id=org_id)

    return make


@pytest.fixture
def owner(make_user: Callable[..., WebUser]) -> WebUser:
    return make_user("owner@acme.example", org_name="Acme Ltd")


@pytest.fixture
def sign_in(web_app: FastAPI) -> Callable[[WebUser], Browser]:
    """A new browser signed in as the given user."""

    def sign(user: WebUser) -> Browser:
        browser = Browser(web_app, user)
        response = browser.login(user.email, user.password)
        assert response.status_code == 303, response.text
        return browser

    return sign


@pytest.fixture
def signed_in(sign_in: Callable[[WebUser], Browser], owner: WebUser) -> Browser:
    """A browser signed in as ``owner`` (Acme Ltd)."""
    return sign_in(owner)


@pytest.fixture
def grant(web_ctx: AppContext) -> Callable[[int, Connection | int], None]:
    """``grant(org_id, connection)``: let an organisation see a connection."""

    def give(org_id: int, conn: Connection | int) -> None:
        cid = conn if isinstance(conn, int) else conn.id or 0
        with Session(web_ctx.engine) as db, db.begin():
            accounts.grant_connection(db, org_id, cid, now=web_ctx.clock.now())

    return give
