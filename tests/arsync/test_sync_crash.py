"""A sync killed with SIGKILL at any point, then run again, leaves a correct mirror."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, func, select

from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.db import make_engine
from arsync.models import Customer, Invoice, Payment
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.syncing import sync_one

REALM = "5550000000000001"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[QuickBooksSandbox, str]]:
    # Big enough that a full sync spans several batch requests (2 pages per entity each).
    qbo = QuickBooksSandbox(rate_limits=False)
    qbo.add_company(REALM, name="Crash Test Co", customers=300, invoices=9000, seed=21)
    with SandboxServer(qbo) as server:
        yield qbo, server.url


def _env(home: Path, url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ARSYNC_")}
    return {**base, "ARSYNC_HOME": str(home), "ARSYNC_SECRET_KEY": "d" * 32,
            "ARSYNC_QUICKBOOKS_CLIENT_ID": "sandbox-qbo-client",
            "ARSYNC_QUICKBOOKS_CLIENT_SECRET": "sandbox-qbo-secret",
            "ARSYNC_QUICKBOOKS_API_URL": url,
            "ARSYNC_QUICKBOOKS_TOKEN_URL": f"{url}/oauth2/v1/tokens/bearer"}


def _invoice_rows(db: Path) -> int:
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("select count(*) from invoices")).scalar() or 0)
    except Exception:  # the table may not exist yet
        return 0
    finally:
        engine.dispose()


def test_sync_killed_at_random_points_then_rerun_is_correct(
        tmp_path: Path, sandbox: tuple[QuickBooksSandbox, str]) -> None:
    qbo, url = sandbox
    env = _env(tmp_path / "home", url)
    settings = Settings(_env_file=None, home=tmp_path / "home", secret_key="d" * 32,  # type: ignore[call-arg]
                        quickbooks_client_id="sandbox-qbo-client",
                        quickbooks_client_secret="sandbox-qbo-secret", quickbooks_api_url=url,
                        quickbooks_token_url=f"{url}/oauth2/v1/tokens/bearer")
    ctx = AppContext(settings)
    [conn] = connect_with_refresh_token(ctx, "quickbooks", qbo.mint_refresh_token(REALM),
                                        tenant_id=REALM)
    db = tmp_path / "home" / "arsync.db"
    rng = random.Random(5)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-m", "arsync", "sync", "--full"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill after some pages landed (or at a random early instant), never at a set point.
        deadline = time.monotonic() + 60
        target = rng.randint(0, 6000)
        while time.monotonic() < deadline and proc.poll() is None:
            if _invoice_rows(db) >= target:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the sync finished before it could be killed; grow the company"

    report = sync_one(ctx, ctx.connection(conn.id or 0))
    assert "error" not in report
    with Session(ctx.engine) as s:
        ours = {i.external_id: i for i in s.exec(select(Invoice))}
        dupes = s.exec(select(Invoice.external_id, func.count()).group_by(Invoice.external_id)
                       .having(func.count() > 1)).all()
        n_customers = s.exec(select(func.count()).select_from(Customer)).one()
        n_payments = s.exec(select(func.count()).select_from(Payment)).one()
    assert dupes == []
    live = qbo.invoice_ids(REALM, include_deleted=False)
    assert sorted(i for i, inv in ours.items() if inv.status != "deleted") == sorted(live)
    for inv_id in live:
        raw = qbo.get(REALM, "Invoice", inv_id)
        assert ours[inv_id].balance == Decimal(str(raw["Balance"])), inv_id
    assert n_customers == len(qbo.company(REALM).objects["Customer"])
    assert n_payments == len(qbo.company(REALM).objects["Payment"])
