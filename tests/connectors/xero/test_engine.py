"""The Xero connector driven by arsync's sync engine into a real SQLite mirror."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlmodel import Session

from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Allocation, Customer, Invoice, Payment
from arsync.sync import sync_connection
from tests.connectors.xero.conftest import GB, NZ, XeroWorld


def test_sync_engine_mirrors_two_organisations_then_their_changes(
        make_world: Callable[..., XeroWorld]) -> None:
    world = make_world([NZ, GB])
    ctx = AppContext(world.settings, clock=world.clock)
    connections = connect_with_refresh_token(ctx, "xero",
                                             world.sandbox.mint_refresh_token([NZ, GB]))
    assert {c.tenant_id for c in connections} == {NZ, GB}
    assert {c.timezone for c in connections} == {"Pacific/Auckland", "Europe/London"}
    nz = next(c for c in connections if c.tenant_id == NZ)
    assert nz.id is not None

    for conn in connections:
        assert conn.id is not None
        stats = sync_connection(ctx.engine, conn.id, ctx.connector_for(conn), world.clock)
        org = world.sandbox.organisation(conn.tenant_id)
        assert stats.full
        assert not stats.deferred
        assert stats.invoices == sum(i.type == "ACCREC" for i in org.invoices.values())
        with Session(ctx.engine) as s:
            archived = s.scalar(select(func.count()).select_from(Customer)
                                .where(Customer.connection_id == conn.id)
                                .where(Customer.active.is_(False)))  # type: ignore[attr-defined]
            assert archived == sum(c.status == "ARCHIVED" for c in org.contacts.values())

    org = world.sandbox.organisation(NZ)
    world.clock.advance(timedelta(minutes=10))
    to_void = next(i for i in org.invoices.values() if i.type == "ACCREC"
                   and i.status == "AUTHORISED" and not i.payment_ids
                   and not i.amount_credited).invoice_id
    world.sandbox.void_invoice(NZ, to_void)
    to_delete = next(i for i in org.invoices.values() if i.status == "DRAFT").invoice_id
    world.sandbox.delete_invoice(NZ, to_delete)
    paid = next(i for i in org.invoices.values() if i.type == "ACCREC"
                and i.status == "AUTHORISED" and i.invoice_id != to_void)
    world.sandbox.record_payment(NZ, paid.invoice_id)
    gone = next(p for p in org.payments.values() if p.status == "AUTHORISED"
                and p.invoice_id and p.invoice_id != paid.invoice_id)
    world.sandbox.delete_payment(NZ, gone.payment_id)
    world.clock.advance(timedelta(minutes=10))

    stats = sync_connection(ctx.engine, nz.id, ctx.connector_for(nz), world.clock)
    assert not stats.full
    assert stats.invoices == 4  # voided, deleted, paid, and the one whose payment was deleted
    assert stats.api_calls == 4
    with Session(ctx.engine) as s:
        status = dict(s.execute(select(Invoice.external_id, Invoice.status)  # type: ignore[call-overload]
                                .where(Invoice.connection_id == nz.id)).all())
        assert status[to_void] == "voided"
        assert status[to_delete] == "deleted"
        assert status[paid.invoice_id] == "paid"
        assert status[gone.invoice_id] == "open"
        payment = s.scalars(select(Payment).where(Payment.external_id == gone.payment_id)).one()
        assert payment.status == "voided"
        assert s.scalars(select(Allocation)
                         .where(Allocation.source_external_id == gone.payment_id)).all() == []
        balance = s.scalars(select(Invoice.balance)  # type: ignore[call-overload]
                            .where(Invoice.external_id == gone.invoice_id)).one()
        assert balance == world.sandbox.organisation(NZ).invoices[gone.invoice_id].amount_due
        assert isinstance(balance, Decimal)
