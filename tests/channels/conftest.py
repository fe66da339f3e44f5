"""Channel fixtures: each sandbox behind a real server, connected through arsync's own code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Action, Connection
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.sandbox.xero import XeroSandbox
from tests.factories import make_customer, make_invoice

#: Tuesday 10 March 2026, 15:00 UTC.
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
REALM = "9130350000000001"
TENANT = "4c7d1e8a-0b2f-4e5a-9c3d-2f1e0a9b8c7d"


@dataclass
class World:
    """One sandbox company, connected, with a mirror row per invoice the test creates."""

    provider: str
    sandbox: Any
    ctx: AppContext
    conn: Connection
    clock: SimClock

    def add_invoice(self, customer: str, amount: str = "250.00", *, status: str = "open",
                    remote_status: str = "AUTHORISED", billing_email: str | None = None) -> str:
        """An invoice in the sandbox (Xero: ``remote_status``) and the same row in the mirror."""
        due = date(2026, 3, 1)
        if self.provider == "quickbooks":
            eid = self.sandbox.create_invoice(REALM, customer, Decimal(amount), due_date=due)
            billing_email = billing_email or (self.sandbox.get(REALM, "Invoice", eid)
                                              .get("BillEmail") or {}).get("Address")
        else:
            eid = self.sandbox.create_invoice(TENANT, customer, Decimal(amount), due_date=due,
                                              status=remote_status)
        make_invoice(self.ctx.engine, self.conn, eid, customer, due=due, amount=amount,
                     status=status, billing_email=billing_email)
        return str(eid)

    def calls(self, kind: str) -> int:
        """API calls of one kind the sandbox has answered (QuickBooks ``read``; Xero all)."""
        if self.provider == "quickbooks":
            return int(self.sandbox.stats[REALM][kind])
        return int(self.sandbox.stats[TENANT]["api_calls"])

    def customer(self) -> str:
        """A customer (contact) id that has an email address."""
        if self.provider == "quickbooks":
            co = self.sandbox.company(REALM)
            return next(c["Id"] for c in co.rows("Customer") if c.get("PrimaryEmailAddr"))
        org = self.sandbox.organisation(TENANT)
        return next(c.contact_id for c in org.contacts.values() if c.email)


def channel_settings(url: str, home: Path, **extra: Any) -> Settings:
    return Settings(_env_file=None, home=home, secret_key="c" * 32,  # type: ignore[call-arg]
                    quickbooks_client_id="sandbox-qbo-client",
                    quickbooks_client_secret="sandbox-qbo-secret", quickbooks_api_url=url,
                    quickbooks_token_url=f"{url}/oauth2/v1/tokens/bearer",
                    quickbooks_revoke_url=f"{url}/oauth2/v1/tokens/revoke",
                    quickbooks_auth_url=f"{url}/connect/oauth2",
                    xero_client_id="sandbox-xero-client", xero_client_secret="sandbox-xero-secret",
                    xero_api_url=url, xero_token_url=f"{url}/connect/token",
                    xero_revoke_url=f"{url}/connect/revocation",
                    xero_auth_url=f"{url}/identity/connect/authorize", **extra)


def _world(provider: str, engine: Engine, home: Path) -> Iterator[World]:
    clock = SimClock(NOW)
    if provider == "quickbooks":
        sandbox: Any = QuickBooksSandbox(clock=clock, rate_limits=False)
        sandbox.add_company(REALM, name="Channel Co", customers=6, invoices=0, seed=3)
    else:
        sandbox = XeroSandbox(clock=clock, rate_limits=False)
        sandbox.add_organisation(TENANT, name="Channel Ltd", contacts=6, invoices=0, seed=3)
    with SandboxServer(sandbox) as server:
        ctx = AppContext(channel_settings(server.url, home), clock=clock)
        ctx.__dict__["engine"] = engine
        if provider == "quickbooks":
            [conn] = connect_with_refresh_token(ctx, provider, sandbox.mint_refresh_token(REALM),
                                                tenant_id=REALM)
        else:
            [conn] = connect_with_refresh_token(ctx, provider,
                                                sandbox.mint_refresh_token([TENANT]),
                                                tenant_id=TENANT)
        world = World(provider, sandbox, ctx, conn, clock)
        for cid in {world.customer()}:
            make_customer(engine, conn, cid)
        yield world


@pytest.fixture(params=["quickbooks", "xero"])
def world(request: pytest.FixtureRequest, sqlite_engine: Engine, tmp_path: Path
          ) -> Iterator[World]:
    yield from _world(request.param, sqlite_engine, tmp_path / "home")


@pytest.fixture
def qbo(sqlite_engine: Engine, tmp_path: Path) -> Iterator[World]:
    yield from _world("quickbooks", sqlite_engine, tmp_path / "home")


@pytest.fixture
def xero(sqlite_engine: Engine, tmp_path: Path) -> Iterator[World]:
    yield from _world("xero", sqlite_engine, tmp_path / "home")


def make_action(engine: Engine, conn: Connection, *, channel: str, recipient: str,
                invoice_ids: list[str], status: str = "sending",
                claimed_at: datetime = NOW, key: str | None = None) -> Action:
    """A ledger row as the outbox leaves it while sending (``updated_at`` = claim time)."""
    with Session(engine, expire_on_commit=False) as s, s.begin():
        row = Action(connection_id=conn.id or 0, idempotency_key=key or f"k-{channel}-{recipient}",
                     customer_external_id="C1", invoice_ids_json=json.dumps(invoice_ids),
                     stage="overdue_7", channel=channel, kind="message", tone="firm",
                     template="overdue_7", recipient=recipient, status=status,
                     planned_for=claimed_at - timedelta(minutes=5), local_date=claimed_at.date(),
                     covered_json="[]", reason_json="{}", created_at=claimed_at,
                     updated_at=claimed_at, claim_owner="w1",
                     claim_expires_at=claimed_at + timedelta(minutes=5))
        s.add(row)
    return row
