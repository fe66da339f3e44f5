"""Both sandboxes on loopback ports, arsync connected to them on one SimClock, and a helper that
records ledger rows (actions, promises, disputes, plans) the way the loop and people do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Action, Connection, Dispute, Invoice, PaymentPlan, Promise
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox
from arsync.sandbox.xero import XeroSandbox
from arsync.syncing import sync_one
from connectors.xero.budget import reset_budgets

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # a Monday
REALM = "4620816365254771"
TENANT = "7a2b9c1d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"


@dataclass
class World:
    """One connected company in a sandbox, and arsync's context for it."""

    provider: str
    ctx: AppContext
    sandbox: Any
    clock: SimClock
    conn: Connection

    @property
    def cid(self) -> int:
        return self.conn.id or 0

    def open_invoices(self, n: int) -> list[str]:
        with Session(self.ctx.engine) as s:
            rows = s.scalars(select(Invoice.external_id).where(
                Invoice.connection_id == self.cid, Invoice.status == "open")
                .order_by(Invoice.external_id).limit(n))
            return list(rows)

    def sync(self) -> dict[str, Any]:
        return sync_one(self.ctx, self.ctx.connection(self.cid))

    def notes_on(self, invoice_id: str) -> list[str]:
        """The notes arsync can see on the invoice in the sandbox (QBO: block lines)."""
        if self.provider == "xero":
            return [r["Details"] for r in self.sandbox.history(TENANT, invoice_id)
                    if r["Changes"] == "Note"]
        from connectors.quickbooks.note_block import parse

        return parse(self.private_note(invoice_id)).lines

    def private_note(self, invoice_id: str) -> str:
        return str(self.sandbox.get(REALM, "Invoice", invoice_id).get("PrivateNote") or "")


def _qbo_settings(url: str, home: Path) -> Settings:
    return Settings(_env_file=None, home=home, secret_key="w" * 32,  # type: ignore[call-arg]
                    quickbooks_client_id="sandbox-qbo-client",
                    quickbooks_client_secret="sandbox-qbo-secret", quickbooks_api_url=url,
                    quickbooks_token_url=f"{url}/oauth2/v1/tokens/bearer",
                    quickbooks_revoke_url=f"{url}/oauth2/v1/tokens/revoke",
                    quickbooks_auth_url=f"{url}/connect/oauth2")


def _xero_settings(url: str, home: Path, **extra: Any) -> Settings:
    return Settings(_env_file=None, home=home, secret_key="w" * 32,  # type: ignore[call-arg]
                    xero_client_id="sandbox-xero-client", xero_client_secret="sandbox-xero-secret",
                    xero_api_url=url, xero_token_url=f"{url}/connect/token",
                    xero_revoke_url=f"{url}/connect/revocation",
                    xero_auth_url=f"{url}/identity/connect/authorize", **extra)


def qbo_world(home: Path, *, invoices: int = 40, database_url: str | None = None
              ) -> Iterator[World]:
    clock = SimClock(T0)
    sandbox = QuickBooksSandbox(clock=clock)
    sandbox.add_company(REALM, name="Notes Co", customers=8, invoices=invoices, seed=3)
    with SandboxServer(sandbox) as server:
        settings = _qbo_settings(server.url, home)
        if database_url:
            settings = Settings.model_validate({**settings.model_dump(),
                                                "database_url": database_url})
        ctx = AppContext(settings, clock=clock)
        [conn] = connect_with_refresh_token(ctx, "quickbooks", sandbox.mint_refresh_token(REALM),
                                            tenant_id=REALM)
        world = World("quickbooks", ctx, sandbox, clock, conn)
        world.sync()
        yield world


def xero_world(home: Path, *, invoices: int = 40, database_url: str | None = None,
               **limits: Any) -> Iterator[World]:
    reset_budgets()
    clock = SimClock(T0)
    sandbox = XeroSandbox(clock=clock, **limits)
    sandbox.add_organisation(TENANT, name="Notes Ltd", country="NZ", currency="NZD",
                             timezone="NEWZEALANDSTANDARDTIME", contacts=8, invoices=invoices,
                             seed=4)
    with SandboxServer(sandbox) as server:
        settings = _xero_settings(server.url, home)
        if database_url:
            settings = Settings.model_validate({**settings.model_dump(),
                                                "database_url": database_url})
        ctx = AppContext(settings, clock=clock)
        [conn] = connect_with_refresh_token(ctx, "xero", sandbox.mint_refresh_token([TENANT]))
        world = World("xero", ctx, sandbox, clock, conn)
        world.sync()
        yield world
    reset_budgets()


@pytest.fixture
def qbo(tmp_path: Path) -> Iterator[World]:
    yield from qbo_world(tmp_path)


@pytest.fixture
def xero(tmp_path: Path) -> Iterator[World]:
    yield from xero_world(tmp_path)


@pytest.fixture(params=["quickbooks", "xero"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    maker = qbo_world if request.param == "quickbooks" else xero_world
    yield from maker(tmp_path)


_seq = iter(range(1, 10**9))


def add_action(w: World, invoices: list[str], *, status: str = "sent", kind: str = "message",
               planned_for: datetime | None = None, reason: str | None = None,
               updated_at: datetime | None = None, stage: str = "overdue_7") -> int:
    """A ledger row as the outbox leaves it (``sent``) or as a pass/expiry leaves it."""
    now = w.clock.now()
    planned_for = planned_for or now - timedelta(hours=1)
    n = next(_seq)
    with Session(w.ctx.engine) as s, s.begin():
        customer = s.scalar(select(Invoice.customer_external_id).where(
            Invoice.connection_id == w.cid, Invoice.external_id == invoices[0]))
        row = Action(connection_id=w.cid, idempotency_key=f"{w.cid}:test:{n}",
                     customer_external_id=customer or "?",
                     invoice_ids_json=json.dumps(sorted(invoices)), stage=stage,
                     channel="email" if kind == "message" else "task", kind=kind, tone="firm",
                     template=stage, status=status, status_reason=reason,
                     planned_for=planned_for, local_date=planned_for.date(), covered_json="[]",
                     reason_json="{}", recipient="ap@example.com" if kind == "message" else None,
                     sent_at=now if status == "sent" else None, created_at=planned_for,
                     updated_at=updated_at or now)
        s.add(row)
        s.flush()
        return row.id or 0


def add_people_records(w: World, invoice: str) -> dict[str, int]:
    """A promise, a dispute (opened and resolved) and a payment plan on ``invoice``."""
    now = w.clock.now()
    with Session(w.ctx.engine) as s, s.begin():
        customer = s.scalar(select(Invoice.customer_external_id).where(
            Invoice.connection_id == w.cid, Invoice.external_id == invoice)) or "?"
        promise = Promise(connection_id=w.cid, customer_external_id=customer,
                          invoice_external_id=invoice, promised_on=date(2026, 12, 1),
                          amount=Decimal("120.00"), recorded_at=now)
        dispute = Dispute(connection_id=w.cid, customer_external_id=customer,
                          invoice_external_id=invoice, reason="Wrong quantity", opened_at=now,
                          resolved_at=now, resolution="credit issued")
        plan = PaymentPlan(connection_id=w.cid, customer_external_id=customer,
                           invoice_external_id=invoice,
                           instalments_json=json.dumps([{"date": "2026-12-01", "amount": "50.00"},
                                                        {"date": "2027-01-01",
                                                         "amount": "50.00"}]),
                           balance_at_start=Decimal("100.00"), created_at=now)
        s.add_all([promise, dispute, plan])
        s.flush()
        return {"promise": promise.id or 0, "dispute": dispute.id or 0, "plan": plan.id or 0}
