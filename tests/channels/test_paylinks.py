"""Pay links against both sandboxes: present, absent, cached (no second request), re-checked."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from arsync.models import Invoice
from arsync.paylinks import RECHECK_NONE, ensure_pay_links
from tests.channels.conftest import REALM, TENANT, World


def _row(world: World, eid: str) -> Invoice:
    with Session(world.ctx.engine) as s:
        return s.exec(select(Invoice).where(Invoice.external_id == eid)).one()


def test_link_fetched_once_then_served_from_the_mirror(world: World) -> None:
    eid = world.add_invoice(world.customer())
    before = world.calls("read")
    links = ensure_pay_links(world.ctx, world.conn, [eid])
    url = links[eid]
    assert url is not None
    if world.provider == "quickbooks":
        assert url.endswith(f"/pay/{REALM}/{eid}")
    else:
        assert url.startswith("https://in.xero.com/")
    assert world.calls("read") == before + 1
    assert _row(world, eid).pay_url == url

    again = ensure_pay_links(world.ctx, world.conn, [eid])
    assert again == {eid: url}
    assert world.calls("read") == before + 1  # cached: no request at all


def test_no_link_offered_is_cached_and_asked_again_only_after_the_interval(qbo: World) -> None:
    eid = qbo.add_invoice(qbo.customer())
    qbo.sandbox.company(REALM).online_payments = False  # QuickBooks then omits InvoiceLink
    before = qbo.calls("read")
    assert ensure_pay_links(qbo.ctx, qbo.conn, [eid]) == {eid: None}
    row = _row(qbo, eid)
    assert row.pay_url is None
    assert row.pay_url_checked_at == qbo.clock.now()
    assert qbo.calls("read") == before + 1

    qbo.clock.advance(RECHECK_NONE - timedelta(minutes=1))
    assert ensure_pay_links(qbo.ctx, qbo.conn, [eid]) == {eid: None}
    assert qbo.calls("read") == before + 1  # still believed

    qbo.sandbox.company(REALM).online_payments = True  # the company turned payments on
    qbo.clock.advance(timedelta(minutes=1))
    [url] = ensure_pay_links(qbo.ctx, qbo.conn, [eid]).values()
    assert url is not None
    assert url.endswith(f"/pay/{REALM}/{eid}")
    assert qbo.calls("read") == before + 2


def test_qbo_invoice_without_an_email_address_gets_no_link(qbo: World) -> None:
    eid = qbo.add_invoice(qbo.customer())
    qbo.sandbox.edit_invoice(REALM, eid, BillEmail=None)
    co = qbo.sandbox.company(REALM)
    with co.lock:  # and the customer has none either
        co.objects["Customer"][qbo.customer()].pop("PrimaryEmailAddr", None)
    assert ensure_pay_links(qbo.ctx, qbo.conn, [eid]) == {eid: None}


def test_xero_draft_is_never_asked_and_a_refusal_is_cached_as_none(xero: World) -> None:
    draft = xero.add_invoice(xero.customer(), status="draft", remote_status="DRAFT")
    # The mirror is stale: it still says open, but Xero has a draft (OnlineInvoice: 400).
    stale = xero.add_invoice(xero.customer(), status="open", remote_status="DRAFT")
    before = xero.calls("")
    links = ensure_pay_links(xero.ctx, xero.conn, [draft, stale])
    assert links == {draft: None, stale: None}
    assert xero.calls("") == before + 1  # only the one the mirror thought open
    assert _row(xero, draft).pay_url_checked_at is None
    assert _row(xero, stale).pay_url_checked_at == xero.clock.now()
    assert ensure_pay_links(xero.ctx, xero.conn, [stale]) == {stale: None}
    assert xero.calls("") == before + 1


def test_an_outage_never_blocks_and_caches_nothing(world: World) -> None:
    first, second = world.add_invoice(world.customer()), world.add_invoice(world.customer())
    kw = {"realm_id": REALM} if world.provider == "quickbooks" else {"tenant_id": TENANT}
    world.sandbox.inject_faults(503, 50, **kw)
    assert ensure_pay_links(world.ctx, world.conn, [first, second]) == {first: None,
                                                                        second: None}
    assert _row(world, first).pay_url_checked_at is None  # asked again next time
    assert _row(world, second).pay_url_checked_at is None
    world.sandbox._faults.clear()  # the outage is over
    links = ensure_pay_links(world.ctx, world.conn, [first, second])
    assert links[first] is not None
    assert links[second] is not None


def test_paid_and_unknown_invoices_cost_no_call(qbo: World) -> None:
    paid = qbo.add_invoice(qbo.customer(), status="paid")
    before = qbo.calls("read")
    assert ensure_pay_links(qbo.ctx, qbo.conn, [paid, "no-such-invoice"]) == {
        paid: None, "no-such-invoice": None}
    assert qbo.calls("read") == before
