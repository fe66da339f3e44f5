"""``arsync users add`` and ``arsync web`` as a person runs them: real subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from arsync.context import AppContext
from arsync.db import make_engine
from arsync.models_web import Membership, Organisation, User
from arsync.web import accounts
from tests.factories import make_connection
from tests.web.conftest import Browser

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSYNC_")}
    env.update({"ARSYNC_HOME": str(tmp_path / "home"),
                "ARSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
                "PYTHONPATH": str(REPO)}, **extra)
    return env


def arsync(tmp_path: Path, *args: str, stdin: str = "",
           **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arsync", *args], input=stdin,
                          capture_output=True, text=True, cwd=tmp_path,
                          env=_env(tmp_path, **env), timeout=120, check=False)


def test_users_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    done = arsync(tmp_path, "users", "add", "Pat@Bakery.example", "--org", "Bakery",
                  "--json", stdin="a very good password\n")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["email"] == "pat@bakery.example" and out["created"] is True
    assert out["organisations"] == [{"id": out["organisations"][0]["id"], "name": "Bakery",
                                     "role": "owner"}]
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with Session(engine) as db:
        user = db.scalars(select(User)).one()
        # The newline ends the password; it is not part of it.
        assert accounts.verify_password("a very good password", user.password_hash)
        assert "a very good password" not in user.password_hash
    assert "a very good password" not in done.stdout + done.stderr


def test_users_add_refuses_bad_input_and_changes_nothing(tmp_path: Path) -> None:
    weak = arsync(tmp_path, "users", "add", "a@b.example", stdin="short\n")
    assert weak.returncode == 2 and "at least 10 characters" in weak.stderr
    role = arsync(tmp_path, "users", "add", "a@b.example", "--role", "admin",
                  stdin="a very good password\n")
    assert role.returncode == 2 and "--role must be one of" in role.stderr
    bad = arsync(tmp_path, "users", "add", "not-an-email", stdin="a very good password\n")
    assert bad.returncode == 2 and "not an email address" in bad.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with Session(engine) as db:
        assert db.scalars(select(User)).all() == []
        assert db.scalars(select(Organisation)).all() == []


def test_users_add_twice_is_refused_but_org_adds_a_membership(tmp_path: Path) -> None:
    first = arsync(tmp_path, "users", "add", "cpa@ledgers.example", "--role", "accountant",
                   "--org", "Bakery", stdin="a very good password\n")
    assert first.returncode == 0, first.stderr
    again = arsync(tmp_path, "users", "add", "CPA@ledgers.example", stdin="another password\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    more = arsync(tmp_path, "users", "add", "cpa@ledgers.example", "--role", "accountant",
                  "--org", "Florist", "--json")
    assert more.returncode == 0, more.stderr
    assert {o["name"] for o in json.loads(more.stdout)["organisations"]} == {"Bakery",
                                                                             "Florist"}
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with Session(engine) as db:
        assert len(db.scalars(select(User)).all()) == 1
        assert {m.role for m in db.scalars(select(Membership))} == {"accountant"}
        user = db.scalars(select(User)).one()
        assert accounts.verify_password("a very good password", user.password_hash)


def test_web_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    done = arsync(tmp_path, "web", "--port", "1")
    assert done.returncode == 2
    assert "ARSYNC_SECRET_KEY is not set" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_web_serves_the_app(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "arsync", "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=_env(tmp_path, ARSYNC_SECRET_KEY="s" * 32),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"arsync web did not start: {proc.communicate()[1][-2000:]}")
                time.sleep(0.2)
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        login = httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert login.status_code == 200 and 'name="csrf_token"' in login.text
        assert "server" not in login.headers  # no version banner
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_demo_login_sees_every_demo_connection(web_ctx: AppContext,
                                               new_browser: Callable[[], Browser]) -> None:
    from arsync.cli_web import demo_login

    names = ["Cypress Hill Landscaping", "Kauri Joinery Ltd"]
    for name in names:
        make_connection(web_ctx.engine, name=name)
    email, password = demo_login(web_ctx)
    browser = new_browser()
    assert browser.login(email, password).status_code == 303
    page = browser.get("/").text
    assert all(name in page for name in names)
