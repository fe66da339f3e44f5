"""Builders that put mirror rows straight into a database (no connector involved)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.models import Allocation, Connection, Customer, Invoice, Payment

_ids = itertools.count(1)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def make_connection(engine: Engine, *, name: str = "Test Co", timezone: str = "UTC",
                    country: str = "US", pilot_mode: bool = False,
                    last_synced_at: datetime | None = None, **extra: Any) -> Connection:
    with Session(engine, expire_on_commit=False) as s:
        conn = Connection(provider="quickbooks", tenant_id=f"t{next(_ids)}", name=name,
                          timezone=timezone, country=country, pilot_mode=pilot_mode,
                          created_at=EPOCH, last_synced_at=last_synced_at, **extra)
        s.add(conn)
        s.commit()
        return conn


def make_customer(engine: Engine, conn: Connection, external_id: str, *,
                  email: str | None = "ap@example.com", name: str | None = None) -> Customer:
    with Session(engine, expire_on_commit=False) as s:
        row = Customer(connection_id=conn.id or 0, external_id=external_id,
                       name=name or f"Customer {external_id}", email=email, seen_at=EPOCH)
        s.add(row)
        s.commit()
        return row


def make_invoice(engine: Engine, conn: Connection, external_id: str, customer: str, *,
                 due: date, amount: str = "100.00", balance: str | None = None,
                 status: str = "open", issued: date | None = None, currency: str = "USD",
                 billing_email: str | None = None, number: str | None = None) -> Invoice:
    with Session(engine, expire_on_commit=False) as s:
        row = Invoice(connection_id=conn.id or 0, external_id=external_id,
                      number=number or external_id,
                      customer_external_id=customer, currency=currency, total=Decimal(amount),
                      balance=Decimal(balance if balance is not None else amount),
                      issue_date=issued or date.fromordinal(due.toordinal() - 30), due_date=due,
                      status=status, billing_email=billing_email, seen_at=EPOCH)
        s.add(row)
        s.commit()
        return row


def pay_invoice(engine: Engine, conn: Connection, invoice_id: str, *, on: date,
                when: datetime) -> None:
    """Mark an invoice paid in the mirror the way a sync would (balance 0, status, review)."""
    with Session(engine) as s, s.begin():
        inv = s.execute(select(Invoice).where(Invoice.connection_id == conn.id,
                                              Invoice.external_id == invoice_id)).scalar_one()
        pid = f"p{next(_ids)}"
        s.add(Payment(connection_id=conn.id or 0, external_id=pid,
                      customer_external_id=inv.customer_external_id, currency=inv.currency,
                      amount=inv.balance, unapplied=Decimal(0), paid_on=on, seen_at=when))
        s.add(Allocation(connection_id=conn.id or 0, source_type="payment",
                         source_external_id=pid, target_type="invoice",
                         target_external_id=invoice_id, amount=inv.balance))
        inv.balance, inv.status, inv.review_on, inv.seen_at = Decimal(0), "paid", None, when
