"""The QuickBooks connector against the sandbox, over real HTTP, into a real SQLite mirror."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, func, select

from arsync.domain import Entity
from arsync.errors import AuthError
from arsync.models import Allocation, Connection, Customer, Invoice, Payment, SyncCursor
from arsync.syncing import sync_one
from arsync.tokens import StoredTokens
from tests.connectors.quickbooks.conftest import REALM, QBOWorld


def mirror(world: QBOWorld, conn: Connection) -> dict[str, Invoice]:
    with Session(world.ctx.engine) as s:
        return {i.external_id: i for i in s.exec(
            select(Invoice).where(Invoice.connection_id == conn.id))}


def books(world: QBOWorld) -> dict[str, dict]:
    """Every invoice the sandbox holds, deleted ones as tombstones, by Id."""
    return {i: world.sandbox.get(REALM, "Invoice", i) for i in world.sandbox.invoice_ids(REALM)}


def editable_open_ids(world: QBOWorld, realm: str = REALM) -> list[str]:
    """Open invoices a person could still edit (QuickBooks refuses edits once the customer is
    inactive, with fault 610)."""
    out = []
    for inv_id in world.sandbox.open_invoice_ids(realm):
        ref = world.sandbox.get(realm, "Invoice", inv_id)["CustomerRef"]["value"]
        customer = world.sandbox.get(realm, "Customer", ref)
        if customer.get("Active", True):
            out.append(inv_id)
    return out


def expected_status(raw: dict) -> str:
    if raw.get("status") == "Deleted":
        return "deleted"
    if Decimal(str(raw["TotalAmt"])) == 0 and str(raw.get("PrivateNote", "")).startswith("Voided"):
        return "voided"
    return "paid" if Decimal(str(raw["Balance"])) <= 0 else "open"


def assert_mirror_matches(world: QBOWorld, conn: Connection) -> None:
    ours = mirror(world, conn)
    theirs = books(world)
    for inv_id, raw in theirs.items():
        if raw.get("status") == "Deleted":
            assert inv_id not in ours or ours[inv_id].status == "deleted", inv_id
            continue
        mine = ours[inv_id]
        assert mine.status == expected_status(raw), inv_id
        assert mine.balance == Decimal(str(raw["Balance"])), inv_id
        assert mine.total == Decimal(str(raw["TotalAmt"])), inv_id
        assert mine.remote_version == raw["SyncToken"], inv_id
    assert set(ours) <= set(theirs)


def test_full_sync_mirrors_the_company(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    assert conn.currency == "USD" and conn.timezone and conn.status == "active"
    report = sync_one(qbo.ctx, conn)
    assert "error" not in report and report["full"]
    assert report["invoices"] == len(qbo.sandbox.invoice_ids(REALM, include_deleted=False))
    # 40 customers, 400 invoices, their payments and credit notes: all in one batch request.
    assert report["api_calls"] == 1
    assert_mirror_matches(qbo, conn)
    with Session(qbo.ctx.engine) as s:
        inactive = s.exec(select(func.count()).select_from(Customer).where(
            Customer.connection_id == conn.id, Customer.active.is_(False))).one()
        cursors = s.exec(select(SyncCursor).where(SyncCursor.connection_id == conn.id)).all()
        paid_by_payments = s.exec(select(func.count()).select_from(Allocation)).one()
    assert inactive > 0, "inactive customers must be mirrored too (their invoices need names)"
    assert {c.entity for c in cursors} == {e.value for e in Entity}
    assert paid_by_payments > 0


def test_incremental_sync_after_payments_voids_deletes_and_edits(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    sync_one(qbo.ctx, conn)
    open_ids = editable_open_ids(qbo)
    qbo.clock.advance(timedelta(minutes=10))
    paid, partial, voided, edited = open_ids[:4]
    qbo.sandbox.record_payment(REALM, paid)
    qbo.sandbox.record_payment(REALM, partial, Decimal("1.25"))
    qbo.sandbox.void_invoice(REALM, voided)
    qbo.sandbox.edit_invoice(REALM, edited, DueDate="2026-12-24")
    deleted = open_ids[5]
    qbo.sandbox.delete_invoice(REALM, deleted)
    qbo.clock.advance(timedelta(minutes=1))

    report = sync_one(qbo.ctx, conn)
    assert "error" not in report and not report["full"]
    assert report["api_calls"] == 1  # one CDC request for every entity
    assert report["invoices"] >= 4 and report["payments"] == 2
    ours = mirror(qbo, conn)
    assert ours[paid].status == "paid" and ours[paid].balance == 0
    assert ours[voided].status == "voided"
    assert ours[deleted].status == "deleted"
    assert str(ours[edited].due_date) == "2026-12-24"
    assert_mirror_matches(qbo, conn)


def test_big_change_set_splits_cdc_and_stays_correct(qbo: QBOWorld) -> None:
    qbo.sandbox.add_company("7777", name="Busy Co", customers=30, invoices=2500, seed=9)
    from arsync.connect import connect_with_refresh_token

    [conn] = connect_with_refresh_token(qbo.ctx, "quickbooks",
                                        qbo.sandbox.mint_refresh_token("7777"), tenant_id="7777")
    sync_one(qbo.ctx, conn)
    qbo.clock.advance(timedelta(minutes=5))
    for inv_id in editable_open_ids(qbo, "7777")[:1100]:  # more than CDC's 1,000 cap
        qbo.sandbox.edit_invoice("7777", inv_id, DueDate="2027-01-15")
    report = sync_one(qbo.ctx, conn)
    assert "error" not in report
    with Session(qbo.ctx.engine) as s:
        moved = s.exec(select(func.count()).select_from(Invoice).where(
            Invoice.connection_id == conn.id, Invoice.due_date == "2027-01-15")).one()
    assert moved == 1100
    # 1 combined CDC (full) + 4 per-entity CDCs + the invoice re-listing in batches.
    assert report["api_calls"] <= 1 + 4 + 3


def test_cursor_older_than_30_days_falls_back_to_full_sync(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    sync_one(qbo.ctx, conn)
    qbo.clock.advance(timedelta(days=31))
    report = sync_one(qbo.ctx, conn)
    assert "error" not in report
    assert report["full"]  # CDC can't look back that far: everything was listed again
    assert report["invoices"] == len(qbo.sandbox.invoice_ids(REALM, include_deleted=False))
    assert_mirror_matches(qbo, conn)


def test_refresh_tokens_rotate_and_the_rotated_one_is_kept(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    tokens = qbo.ctx.tokens_for(conn)
    first = tokens.access_token()
    qbo.clock.advance(timedelta(hours=2))  # access token expired
    second = tokens.access_token()
    assert second != first and tokens.refreshes == 1
    qbo.clock.advance(timedelta(hours=2))
    assert tokens.access_token() not in (first, second)  # the rotated refresh token worked
    assert "error" not in sync_one(qbo.ctx, conn)


def test_two_workers_refresh_once(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    qbo.clock.advance(timedelta(hours=2))
    before = qbo.sandbox.stats[REALM]["token_calls"]
    workers = [qbo.ctx.tokens_for(conn) for _ in range(6)]
    got: list[str] = []
    barrier = threading.Barrier(len(workers))

    def run(t: StoredTokens) -> None:
        barrier.wait()
        got.append(t.access_token())

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1, "every worker must end up with the one refreshed token"
    assert sum(w.refreshes for w in workers) == 1
    assert qbo.sandbox.stats[REALM]["token_calls"] - before == 1


def test_revoked_grant_turns_connection_to_needs_reconnect(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    qbo.sandbox.revoke_refresh_tokens(REALM)
    qbo.clock.advance(timedelta(hours=2))
    report = sync_one(qbo.ctx, conn)
    assert "reconnect" in report["error"]
    with Session(qbo.ctx.engine) as s:
        row = s.get(Connection, conn.id)
    assert row.status == "needs_reconnect" and "invalid_grant" in (row.status_reason or "")
    calls = qbo.sandbox.stats[REALM]["token_calls"]
    again = sync_one(qbo.ctx, row)  # no crash loop: a dead grant is not tried again
    assert "needs_reconnect" in again["error"]
    assert qbo.sandbox.stats[REALM]["token_calls"] == calls
    with pytest.raises(AuthError):
        qbo.ctx.tokens_for(row).access_token()


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_outage_storms_end_in_a_correct_mirror(qbo: QBOWorld, status: int) -> None:
    conn = qbo.connect()
    qbo.sandbox.inject_faults(status, 4, realm_id=REALM)
    start = qbo.clock.now()
    report = sync_one(qbo.ctx, conn)
    assert "error" not in report
    assert report["api_calls"] == 5  # four refused, then the batch that worked
    assert qbo.clock.now() > start  # it backed off (in simulated time)
    assert_mirror_matches(qbo, conn)


def test_retries_are_bounded(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    qbo.sandbox.inject_faults(503, 50, realm_id=REALM)
    report = sync_one(qbo.ctx, conn)
    assert "503" in report["error"] and report["api_calls"] == 6
    assert mirror(qbo, conn) == {}


def test_validation_faults_are_not_retried(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    qbo.sandbox.inject_faults(400, 1, realm_id=REALM)
    report = sync_one(qbo.ctx, conn)
    assert report["error"] and report["api_calls"] == 1


def test_expired_access_token_mid_sync_is_refreshed_once(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    qbo.sandbox.expire_access_tokens(REALM)  # the provider ends them early; arsync can't know
    report = sync_one(qbo.ctx, conn)
    assert "error" not in report
    assert report["api_calls"] == 2  # the 401, then the retried request
    with Session(qbo.ctx.engine) as s:
        assert s.get(Connection, conn.id).status == "active"
    assert_mirror_matches(qbo, conn)


def test_payments_record_what_they_paid(qbo: QBOWorld) -> None:
    conn = qbo.connect()
    target = editable_open_ids(qbo)[0]
    pay_id = qbo.sandbox.record_payment(REALM, target, Decimal("10.00"))
    sync_one(qbo.ctx, conn)
    with Session(qbo.ctx.engine) as s:
        pay = s.exec(select(Payment).where(Payment.external_id == pay_id)).one()
        alloc = s.exec(select(Allocation).where(Allocation.source_external_id == pay_id)).all()
    assert pay.amount == Decimal("10.00")
    assert [(a.target_type, a.target_external_id, a.amount) for a in alloc] == [
        ("invoice", target, Decimal("10.00"))]


def _listing(qbo: QBOWorld, realm: str, delete_after_first_batch: int) -> tuple[set[str], list]:
    """Drive a full listing one batch at a time, deleting invoices from the first page
    between the first and the second batch request (as a person might, mid-sync)."""
    from arsync.domain import Entity
    from connectors.quickbooks.connector import QuickBooksConnector

    [conn] = __import__("arsync.connect", fromlist=["x"]).connect_with_refresh_token(
        qbo.ctx, "quickbooks", qbo.sandbox.mint_refresh_token(realm), tenant_id=realm)
    connector = QuickBooksConnector(qbo.settings, tenant_id=realm, tokens=qbo.ctx.tokens_for(conn),
                                    clock=qbo.clock, pages_per_batch=1)
    pages = connector.sync(dict.fromkeys(Entity), full=True)
    seen: set[str] = set()
    done = []
    first_batch_ids: list[str] = []
    for page in pages:
        if page.entity is Entity.INVOICES:
            ids = [r.external_id for r in page.records]
            if not first_batch_ids:
                first_batch_ids = ids
                victims = [i for i in editable_open_ids(qbo, realm) if i in set(ids)]
                for victim in victims[:delete_after_first_batch]:
                    qbo.sandbox.delete_invoice(realm, victim)
            seen.update(ids)
            if page.full_listing_done:
                done.append(page)
    return seen, done


def test_a_deletion_mid_listing_hides_no_invoice(qbo: QBOWorld) -> None:
    qbo.sandbox.add_company("8888", name="Shifty Co", customers=30, invoices=2500, seed=4)
    seen, done = _listing(qbo, "8888", delete_after_first_batch=3)
    live = set(qbo.sandbox.invoice_ids("8888", include_deleted=False))
    assert live - seen == set(), "a live invoice fell between two pages"
    assert len(done) == 1


def test_a_listing_shifted_beyond_the_overlap_stops_before_reconciling(qbo: QBOWorld) -> None:
    from arsync.errors import TransientError

    qbo.sandbox.add_company("8889", name="Purge Co", customers=30, invoices=2500, seed=4)
    with pytest.raises(TransientError, match="shifted"):
        _listing(qbo, "8889", delete_after_first_batch=80)
