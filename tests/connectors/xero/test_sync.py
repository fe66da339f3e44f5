"""Full and incremental sync against the Xero sandbox, over real HTTP through xero-python."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from arsync.domain import Entity, InvoiceStatus, RemoteInvoice, RemotePayment
from tests.connectors.xero.conftest import AU, GB, NZ, ORGS, T0, XeroWorld, by_entity

STATUS = {"DRAFT": "draft", "SUBMITTED": "draft", "AUTHORISED": "open", "PAID": "paid",
          "VOIDED": "voided", "DELETED": "deleted"}


def test_one_grant_lists_every_organisation(xero: XeroWorld) -> None:
    tokens = xero.tokens(xero.grant())
    tenants = xero.oauth.list_tenants(tokens.access_token())
    assert {t.tenant_id: t.name for t in tenants} == {k: v["name"] for k, v in ORGS.items()}
    assert {t.tenant_type for t in tenants} == {"ORGANISATION"}


def test_fetch_company_maps_the_organisation(xero: XeroWorld) -> None:
    tokens = xero.tokens(xero.grant())
    expected = {NZ: ("NZD", "NZ", "Pacific/Auckland"), GB: ("GBP", "GB", "Europe/London"),
                AU: ("AUD", "AU", "Australia/Sydney")}
    for tenant_id, (currency, country, zone) in expected.items():
        info = xero.connector(tenant_id, tokens).fetch_company()
        assert (info.name, info.currency, info.country, info.timezone) == (
            ORGS[tenant_id]["name"], currency, country, zone)


def test_full_sync_of_three_organisations_under_one_grant(xero: XeroWorld) -> None:
    tokens = xero.tokens(xero.grant())
    for tenant_id in ORGS:
        connector = xero.connector(tenant_id, tokens)
        pages = list(connector.sync({}, full=True))
        got = by_entity(pages)
        org = xero.sandbox.organisation(tenant_id)

        # every entity ends its listing exactly once, with the server's time as cursor
        ends = [p for p in pages if p.full_listing_done]
        assert [p.entity for p in ends] == [Entity.CUSTOMERS, Entity.INVOICES,
                                            Entity.CREDIT_NOTES, Entity.PAYMENTS]
        assert all(p.cursor == T0 for p in ends)
        assert all(p.cursor is None for p in pages if not p.full_listing_done)

        sales = {i.invoice_id: i for i in org.invoices.values() if i.type == "ACCREC"}
        assert set(got[Entity.INVOICES]) == set(sales)  # bills left out, DELETED kept
        assert any(i.type == "ACCPAY" for i in org.invoices.values())
        for invoice_id, inv in sales.items():
            mirrored = got[Entity.INVOICES][invoice_id]
            assert isinstance(mirrored, RemoteInvoice)
            assert mirrored.status.value == STATUS[inv.status]
            assert (mirrored.total, mirrored.balance) == (inv.total, inv.amount_due)
            assert mirrored.currency == inv.currency
            assert mirrored.customer_external_id == inv.contact_id
            assert mirrored.issue_date == inv.date
            assert mirrored.due_date == inv.due_date
            assert mirrored.updated_at is not None
            assert mirrored.updated_at.tzinfo is not None
        assert {i.currency for i in got[Entity.INVOICES].values()} > {org.currency}

        assert set(got[Entity.CUSTOMERS]) == set(org.contacts)  # archived included...
        archived = {c.contact_id for c in org.contacts.values() if c.status == "ARCHIVED"}
        assert archived
        assert {k for k, c in got[Entity.CUSTOMERS].items() if not c.active} == archived

        notes = {n.credit_note_id for n in org.credit_notes.values() if n.type == "ACCRECCREDIT"}
        assert set(got[Entity.CREDIT_NOTES]) == notes
        ar = {p.payment_id: p for p in org.payments.values()
              if p.payment_type in ("ACCRECPAYMENT", "ARCREDITPAYMENT")}
        assert set(got[Entity.PAYMENTS]) == set(ar)
        for payment_id, p in ar.items():
            mirrored_p = got[Entity.PAYMENTS][payment_id]
            assert isinstance(mirrored_p, RemotePayment)
            assert mirrored_p.voided == (p.status == "DELETED")
            assert mirrored_p.amount == p.amount
            if p.status == "AUTHORISED":
                [app] = mirrored_p.applications
                assert app.target_external_id == (p.invoice_id or p.credit_note_id)
            else:
                assert mirrored_p.applications == ()
        assert connector.api_calls == xero.sandbox.stats[tenant_id]["api_calls"]


def test_money_is_decimal_and_exact(xero: XeroWorld) -> None:
    tokens = xero.tokens(xero.grant([GB]))
    got = by_entity(xero.connector(GB, tokens).sync({}, full=True))
    for inv in got[Entity.INVOICES].values():
        assert isinstance(inv, RemoteInvoice)
        assert isinstance(inv.total, Decimal)
        assert inv.total.as_tuple().exponent == -2
        assert isinstance(inv.balance, Decimal)


def _pick(org: object, status: str, *, unpaid: bool = False) -> str:
    for inv in org.invoices.values():  # type: ignore[attr-defined]
        if inv.type != "ACCREC" or inv.status != status:
            continue
        if unpaid and (inv.amount_paid or inv.amount_credited or inv.payment_ids):
            continue
        return str(inv.invoice_id)
    raise AssertionError(f"no {status} invoice to pick")


def test_incremental_sync_reads_only_what_changed(make_world: object) -> None:
    xero: XeroWorld = make_world([NZ])  # type: ignore[operator]
    tokens = xero.tokens(xero.grant([NZ]))
    connector = xero.connector(NZ, tokens)
    cursors = {p.entity: p.cursor for p in connector.sync({}, full=True) if p.cursor}
    assert set(cursors) == set(Entity)

    sandbox, org = xero.sandbox, xero.sandbox.organisation(NZ)
    xero.clock.advance(timedelta(minutes=10))
    to_pay = _pick(org, "AUTHORISED", unpaid=True)
    payment_id = sandbox.record_payment(NZ, to_pay)
    to_void = next(i for i in org.invoices.values() if i.type == "ACCREC"
                   and i.status == "AUTHORISED" and not i.payment_ids and not i.amount_credited
                   and i.invoice_id != to_pay).invoice_id
    sandbox.void_invoice(NZ, to_void)
    to_delete = _pick(org, "DRAFT")
    sandbox.delete_invoice(NZ, to_delete)
    to_edit = next(i for i in org.invoices.values() if i.type == "ACCREC"
                   and i.status == "AUTHORISED" and i.invoice_id not in (to_pay, to_void)
                   ).invoice_id
    sandbox.edit_invoice(NZ, to_edit, due_date=date(2026, 12, 24))
    contact = next(iter(org.contacts))
    created = sandbox.create_invoice(NZ, contact, Decimal("99.95"), due_date=date(2026, 12, 31))
    old_payment = next(p for p in org.payments.values() if p.status == "AUTHORISED"
                       and p.payment_type == "ACCRECPAYMENT" and p.invoice_id not in
                       (to_pay, to_void, to_edit))
    sandbox.delete_payment(NZ, old_payment.payment_id)
    xero.clock.advance(timedelta(minutes=10))

    pages = list(connector.sync(cursors, full=False))
    got = by_entity(pages)
    assert not any(p.full_listing_done for p in pages)
    changed = {to_pay, to_void, to_delete, to_edit, created, old_payment.invoice_id}
    assert set(got[Entity.INVOICES]) == changed
    status = {k: v.status for k, v in got[Entity.INVOICES].items()}  # type: ignore[union-attr]
    assert status[to_pay] is InvoiceStatus.PAID
    assert status[to_void] is InvoiceStatus.VOIDED
    assert status[to_delete] is InvoiceStatus.DELETED
    assert got[Entity.INVOICES][to_edit].due_date == date(2026, 12, 24)  # type: ignore[union-attr]
    assert got[Entity.INVOICES][created].total == Decimal("99.95")  # type: ignore[union-attr]
    assert set(got[Entity.PAYMENTS]) == {payment_id, old_payment.payment_id}
    assert got[Entity.PAYMENTS][old_payment.payment_id].voided  # type: ignore[union-attr]
    assert got[Entity.CUSTOMERS] == {}
    assert got[Entity.CREDIT_NOTES] == {}
    new_cursors = {p.entity: p.cursor for p in pages if p.cursor}
    assert set(new_cursors.values()) == {T0 + timedelta(minutes=20)}

    # Nothing changed since: the next run reads nothing, and its cursors stay put.
    again = list(connector.sync(new_cursors, full=False))
    assert [len(p.records) for p in again] == [0, 0, 0, 0]


def test_the_overlap_window_catches_late_stamped_changes(make_world: object) -> None:
    """A change that becomes visible with an UpdatedDateUTC just before the cursor is still read."""
    xero: XeroWorld = make_world([NZ])  # type: ignore[operator]
    connector = xero.connector(NZ, xero.tokens(xero.grant([NZ])))
    cursors = {p.entity: p.cursor for p in connector.sync({}, full=True) if p.cursor}
    org = xero.sandbox.organisation(NZ)
    target = _pick(org, "AUTHORISED")
    xero.clock.set(T0 - timedelta(minutes=3))  # a writer whose clock (or commit) lagged
    xero.sandbox.edit_invoice(NZ, target, reference="late")
    xero.clock.set(T0 + timedelta(minutes=1))
    got = by_entity(connector.sync(cursors, full=False))
    assert set(got[Entity.INVOICES]) == {target}
