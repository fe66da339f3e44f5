"""The scripted interface (CONTRACT.md): real `arsync` processes against the QuickBooks sandbox."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox

REALM = "4620816365212345678"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[QuickBooksSandbox, str]]:
    qbo = QuickBooksSandbox()
    qbo.add_company(REALM, name="CLI Test Co", customers=25, invoices=150, seed=5)
    with SandboxServer(qbo) as server:
        yield qbo, server.url


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arsync", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def env(tmp_path: Path, sandbox: tuple[QuickBooksSandbox, str]) -> dict[str, str]:
    _, url = sandbox
    base = {k: v for k, v in os.environ.items() if not k.startswith("ARSYNC_")}
    return {**base, "ARSYNC_HOME": str(tmp_path / "home"), "ARSYNC_SECRET_KEY": "c" * 32,
            "ARSYNC_QUICKBOOKS_CLIENT_ID": "sandbox-qbo-client",
            "ARSYNC_QUICKBOOKS_CLIENT_SECRET": "sandbox-qbo-secret",
            "ARSYNC_QUICKBOOKS_API_URL": url,
            "ARSYNC_QUICKBOOKS_TOKEN_URL": f"{url}/oauth2/v1/tokens/bearer"}


def test_connect_sync_and_list_as_the_contract_says(
        env: dict[str, str], sandbox: tuple[QuickBooksSandbox, str]) -> None:
    qbo, _ = sandbox
    out = run(env, "connect", "quickbooks", "--realm-id", REALM,
              "--refresh-token", qbo.mint_refresh_token(REALM), "--name", "Books", "--json")
    assert out.returncode == 0, out.stderr
    [conn] = json.loads(out.stdout)
    assert {"id", "provider", "tenant_id", "name", "status", "last_synced_at"} <= conn.keys()
    assert (conn["provider"], conn["tenant_id"], conn["name"], conn["status"]) == (
        "quickbooks", REALM, "Books", "active")
    # Replies go to the address the company uses with its customers in QuickBooks.
    # (the sandbox's CustomerCommunicationEmailAddr is billing@<company slug>.example.com)
    assert re.fullmatch(r"billing@[a-z0-9]+\.example\.com", conn["reply_to"] or "")

    out = run(env, "sync", "--json")
    assert out.returncode == 0, out.stderr
    [report] = json.loads(out.stdout)
    assert report["connection_id"] == conn["id"]
    for field in ("customers", "invoices", "payments", "credit_notes", "api_calls"):
        assert isinstance(report[field], int)
    assert report["invoices"] > 0

    [listed] = json.loads(run(env, "connections", "--json").stdout)
    assert listed["last_synced_at"] and "+" in listed["last_synced_at"][-6:]

    out = run(env, "invoices", "--status", "all", "--json")
    rows = json.loads(out.stdout)
    assert len(rows) == report["invoices"]
    row = rows[0]
    assert {"connection_id", "provider", "external_id", "number", "customer_external_id",
            "customer_name", "currency", "total", "balance", "issue_date", "due_date",
            "status"} <= row.keys()
    assert isinstance(row["total"], str) and "." in row["total"]
    assert {r["status"] for r in rows} <= {"open", "paid", "voided", "deleted", "draft"}
    overdue = json.loads(run(env, "invoices", "--status", "overdue", "--json").stdout)
    assert overdue and all(r["status"] == "open" and r["days_overdue"] > 0 for r in overdue)
    # Logs go to stderr: stdout held exactly one JSON document every time.


@pytest.mark.parametrize(("args", "message"), [
    (("invoices", "--status", "late"), "--status must be one of"),
    (("sync", "--connection", "99"), "no connection with id 99"),
    (("connect", "quickbooks", "--realm-id", REALM, "--refresh-token", "nope"), "invalid_grant"),
])
def test_bad_input_exits_2_with_one_line(env: dict[str, str], args: tuple[str, ...],
                                              message: str) -> None:
    out = run(env, *args)
    assert out.returncode == 2 and out.stdout == ""
    assert message in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("arsync: ")


def test_missing_secret_key_is_refused(env: dict[str, str]) -> None:
    del env["ARSYNC_SECRET_KEY"]  # nothing may store a token unencrypted
    out = run(env, "connect", "quickbooks", "--realm-id", REALM, "--refresh-token", "whatever")
    assert out.returncode == 2 and "ARSYNC_SECRET_KEY" in out.stderr


def test_remote_plain_http_provider_urls_are_refused(env: dict[str, str]) -> None:
    env["ARSYNC_QUICKBOOKS_API_URL"] = "http://quickbooks.example.com"
    out = run(env, "connections")
    assert out.returncode == 2
    assert out.stderr == ("arsync: ARSYNC_QUICKBOOKS_API_URL: 'http://quickbooks.example.com': "
                          "provider URLs must be https:// (http:// only for loopback)\n")


def test_secrets_never_reach_the_logs(env: dict[str, str],
                                      sandbox: tuple[QuickBooksSandbox, str]) -> None:
    qbo, _ = sandbox
    token = qbo.mint_refresh_token(REALM)
    out = run(env, "connect", "quickbooks", "--realm-id", REALM, "--refresh-token", token)
    out2 = run(env, "sync")
    assert out.returncode == 0 and out2.returncode == 0
    db = (Path(env["ARSYNC_HOME"]) / "arsync.db").read_bytes()
    for text in (out.stdout, out.stderr, out2.stdout, out2.stderr):
        assert token not in text and "sandbox-qbo-secret" not in text
    assert token.encode() not in db  # tokens are encrypted at rest
