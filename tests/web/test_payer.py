"""The payer's page over real HTTP semantics (TestClient) on a real database.

Each test seeds a small mirror (two customers, two overdue invoices each), plans today's
reminders into the ledger, then acts as the payer of customer C1 through their signed link.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync import links, payer
from arsync.context import AppContext
from arsync.models import Action, Dispute, InvoiceOverride, Promise
from arsync.models_payer import PayerOptOut, PayerRequest
from arsync.passes import plan_connection, run_pass
from arsync.render_links import unsubscribe_token
from arsync.web.app import create_app
from tests.arsync.ledger_world import NOW, RecordingSender, context_on, seed

TODAY = NOW.date()  # the seeded company keeps UTC


class World:
    """The app, its context, the connection id and a link for each customer."""

    def __init__(self, engine: Engine, home: Path) -> None:
        self.ctx: AppContext = context_on(engine, home)
        self.conn = seed(engine, customers=2)
        self.cid = self.conn.id or 0
        plan_connection(self.ctx, self.conn, NOW, full=True)
        self.secret = self.ctx.settings.require_secret_key()
        self.token = links.sign(self.secret, self.cid, "C1", now=NOW)
        self.other = links.sign(self.secret, self.cid, "C2", now=NOW)
        self.client = TestClient(create_app(self.ctx), follow_redirects=False)

    def actions(self, customer: str = "C1") -> list[Action]:
        with Session(self.ctx.engine) as s:
            return list(s.scalars(select(Action).where(Action.customer_external_id == customer)
                                  .order_by(Action.id)))

    def rows(self, model: Any) -> list[Any]:
        with Session(self.ctx.engine) as s:
            return list(s.scalars(select(model)))

    def form(self, kind: str, token: str | None = None) -> dict[str, str]:
        """The hidden fields of one form, as the page rendered it."""
        page = self.client.get(f"/pay/{token or self.token}")
        assert page.status_code == 200
        return form_fields(page.text, f"{kind}-form")

    def post(self, kind: str, token: str | None = None, **fields: str) -> Any:
        token = token or self.token
        return self.client.post(f"/pay/{token}/{kind}", data={**self.form(kind, token), **fields})


def form_fields(html: str, form_id: str) -> dict[str, str]:
    block = re.search(rf'<form[^>]*id="{form_id}".*?</form>', html, re.S)
    assert block is not None, f"no form {form_id}"
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', block.group(0)))


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[World]:
    w = World(engine, tmp_path)
    with w.client:
        yield w


@pytest.fixture
def sqlite_world(sqlite_engine: Engine, tmp_path: Path) -> Iterator[World]:
    w = World(sqlite_engine, tmp_path)
    with w.client:
        yield w


def test_a_valid_link_shows_only_that_customers_open_invoices(sqlite_world: World) -> None:
    w = sqlite_world
    page = w.client.get(f"/pay/{w.token}")
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    text = page.text
    assert "Test Co" in text and "Customer C1" in text
    assert "$100.00" in text and "$40.50" in text and "$140.50" in text  # Babel, en_US
    assert 'data-invoice="I1a"' in text and 'data-invoice="I1b"' in text
    assert "I2a" not in text and "Customer C2" not in text  # the other customer's books
    assert "Pay online" not in text  # no cached provider link: nothing shown


def test_the_provider_pay_link_shows_when_cached(sqlite_world: World) -> None:
    w = sqlite_world
    from arsync.models import Invoice

    with Session(w.ctx.engine) as s, s.begin():
        inv = s.scalar(select(Invoice).where(Invoice.external_id == "I1a"))
        assert inv is not None
        inv.pay_url = "https://connect.intuit.com/pay/abc"
    text = w.client.get(f"/pay/{w.token}").text
    assert 'href="https://connect.intuit.com/pay/abc" rel="noopener noreferrer"' in text


@pytest.mark.parametrize("how", ["payload", "signature", "garbage", "other-key"])
def test_a_tampered_link_is_a_polite_404_that_reveals_nothing(sqlite_world: World,
                                                              how: str) -> None:
    w = sqlite_world
    body, sig = w.token.split(".")
    token = {
        "payload": links.sign(w.secret, w.cid, "C2", now=NOW).split(".")[0] + "." + sig,
        "signature": body + "." + sig[:-2] + ("AA" if not sig.endswith("AA") else "BB"),
        "garbage": "not-a-token",
        "other-key": links.sign("x" * 32, w.cid, "C1", now=NOW),
    }[how]
    for response in (w.client.get(f"/pay/{token}"),
                     w.client.post(f"/pay/{token}/promise",
                                   data={**w.form("promise"), "invoice": "I1a",
                                         "date": str(TODAY + timedelta(days=5))}),
                     w.client.get(f"/pay/{token}/unsubscribe")):
        assert response.status_code == 404
        assert "This link is not valid" in response.text
        for secret in ("Test Co", "Customer", "$", "I1a", "100.00"):
            assert secret not in response.text
    assert w.rows(Promise) == [] and w.rows(PayerRequest) == []


def test_an_expired_link_is_a_polite_410(sqlite_world: World) -> None:
    w = sqlite_world
    old = links.sign(w.secret, w.cid, "C1", now=NOW - timedelta(days=61))
    response = w.client.get(f"/pay/{old}")
    assert response.status_code == 410
    assert "This link has expired" in response.text
    for secret in ("Test Co", "Customer", "$", "I1a"):
        assert secret not in response.text
    # A link for a customer the mirror does not have is just as quiet.
    ghost = links.sign(w.secret, w.cid, "C9", now=NOW)
    assert w.client.get(f"/pay/{ghost}").status_code == 404


def test_a_promise_is_recorded_and_the_pending_reminder_moves(world: World) -> None:
    w = world
    [pending] = w.actions()
    assert pending.status == "planned"
    on = TODAY + timedelta(days=10)
    response = w.post("promise", invoice="all", date=on.isoformat())
    assert response.status_code == 303
    assert response.headers["location"] == f"/pay/{w.token}?done=promise"
    promises = w.rows(Promise)
    assert sorted((p.invoice_external_id, p.promised_on, p.amount) for p in promises) == [
        ("I1a", on, None), ("I1b", on, None)]
    [request] = w.rows(PayerRequest)
    assert (request.kind, json.loads(request.invoice_ids_json)) == ("promise", ["I1a", "I1b"])
    # The reminder planned before the answer is cancelled at once, not at its send time.
    [after] = w.actions()
    assert after.status == "cancelled"
    assert "promise" in (after.status_reason or "")
    assert [a.status for a in w.actions("C2")] == ["planned"]  # the other customer: untouched
    page = w.client.get(response.headers["location"]).text
    assert "your promise to pay is recorded" in page and "Promised by" in page
    # Nothing more is planned while the promise holds; the day after it breaks, chasing resumes
    # anchored on the promise date.
    assert plan_connection(w.ctx, w.conn, NOW + timedelta(hours=1)).new == 0
    later = NOW + timedelta(days=11)  # the day after the promise date
    plan_connection(w.ctx, w.conn, later)
    [new] = [a for a in w.actions() if a.status == "planned" and a.kind == "message"]
    reason = json.loads(new.reason_json)
    assert (new.stage, reason["anchor"], reason["anchor_date"]) == (
        "promise_broken", "promise_date", on.isoformat())
    assert new.local_date == date(2026, 3, 23)  # the 21st is a Saturday: the next business day


def test_a_partial_promise_keeps_the_other_invoice_chased(sqlite_world: World) -> None:
    w = sqlite_world
    on = TODAY + timedelta(days=7)
    assert w.post("promise", invoice="I1a", date=on.isoformat(),
                  amount="60.00").status_code == 303
    [p] = w.rows(Promise)
    assert (p.invoice_external_id, p.amount) == ("I1a", Decimal("60.00"))
    assert w.actions()[0].status == "cancelled"  # it covered both invoices
    plan_connection(w.ctx, w.conn, NOW + timedelta(minutes=5))
    [new] = [a for a in w.actions() if a.status == "planned"]
    assert json.loads(new.invoice_ids_json) == ["I1b"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"invoice": "I1a", "date": str(TODAY)}, "must be after today"),
    ({"invoice": "I1a", "date": str(TODAY - timedelta(days=3))}, "must be after today"),
    ({"invoice": "I1a", "date": str(TODAY + timedelta(days=91))}, "within 90 days"),
    ({"invoice": "I1a", "date": "next week"}, "YYYY-MM-DD"),
    ({"invoice": "I1a", "date": str(TODAY + timedelta(days=3)), "amount": "100.01"},
     "more than the balance"),
    ({"invoice": "I1a", "date": str(TODAY + timedelta(days=3)), "amount": "-5"},
     "more than zero"),
    ({"invoice": "I1a", "date": str(TODAY + timedelta(days=3)), "amount": "1.234"},
     "two decimal places"),
    ({"invoice": "I1a", "date": str(TODAY + timedelta(days=3)), "amount": "NaN"},
     "more than zero"),
    ({"invoice": "all", "date": str(TODAY + timedelta(days=3)), "amount": "10"},
     "choose one invoice"),
    ({"invoice": "I2a", "date": str(TODAY + timedelta(days=3))}, "choose one of the invoices"),
])
def test_a_bad_promise_is_refused_and_changes_nothing(sqlite_world: World,
                                                      fields: dict[str, str],
                                                      message: str) -> None:
    w = sqlite_world
    response = w.post("promise", **fields)
    assert response.status_code == 400
    assert message in response.text
    assert w.rows(Promise) == [] and w.rows(PayerRequest) == []
    assert [a.status for a in w.actions()] == ["planned"]


def test_a_dispute_stops_chasing_that_invoice(world: World) -> None:
    w = world
    assert w.post("dispute", invoice="I1b", reason="   ").status_code == 400
    assert w.rows(Dispute) == []
    response = w.post("dispute", invoice="I1b", reason="We never received the goods.")
    assert response.status_code == 303
    [d] = w.rows(Dispute)
    assert (d.invoice_external_id, d.reason, d.resolved_at) == (
        "I1b", "payer: We never received the goods.", None)
    assert w.actions()[0].status == "cancelled"
    plan_connection(w.ctx, w.conn, NOW + timedelta(minutes=5))
    [new] = [a for a in w.actions() if a.status == "planned"]
    assert json.loads(new.invoice_ids_json) == ["I1a"]  # the undisputed one is still chased
    assert "Disputed" in w.client.get(f"/pay/{w.token}").text


def test_a_plan_request_is_kept_for_a_person_and_pauses_briefly(sqlite_world: World) -> None:
    w = sqlite_world
    assert w.post("plan", invoice="all", instalments="1").status_code == 400
    response = w.post("plan", invoice="all", instalments="4",
                      proposal="Four monthly payments starting next month.")
    assert response.status_code == 303
    [req] = w.rows(PayerRequest)
    details = json.loads(req.details_json)
    assert (req.kind, req.handled_at, details["instalments"]) == ("plan", None, 4)
    assert details["paused_until"] == str(TODAY + payer.PLAN_PAUSE)
    assert details["proposal"] == "Four monthly payments starting next month."
    pauses = {o.invoice_external_id: o.paused_until for o in w.rows(InvoiceOverride)}
    assert pauses == {"I1a": TODAY + payer.PLAN_PAUSE, "I1b": TODAY + payer.PLAN_PAUSE}
    assert w.actions()[0].status == "cancelled"
    assert "request for a payment plan is with us" in w.client.get(f"/pay/{w.token}").text
    # Asking again records the request but does not pause any further.
    assert w.post("plan", invoice="I1a", instalments="6").status_code == 303
    again = next(r for r in w.rows(PayerRequest) if r.id != req.id)
    assert "paused_until" not in json.loads(again.details_json)
    assert {o.paused_until for o in w.rows(InvoiceOverride)} == {TODAY + payer.PLAN_PAUSE}


def test_forms_need_a_token_bound_to_the_link_kind_and_time(sqlite_world: World) -> None:
    w = sqlite_world
    good = {"invoice": "I1a", "date": str(TODAY + timedelta(days=5))}
    url = f"/pay/{w.token}/promise"
    attempts = [
        good,  # no token at all
        {**good, **w.form("promise", w.other)},  # C2's form, posted to C1's link
        {**good, **w.form("dispute")},  # the dispute form's token on the promise form
        {**good, **w.form("promise"), "form_token": "0" * 64},
    ]
    old_nonce = payer.new_nonce(NOW - payer.FORM_MAX_AGE - timedelta(minutes=1))
    attempts.append({**good, "nonce": old_nonce,
                     "form_token": payer.form_token(w.secret, w.token, "promise", old_nonce)})
    for data in attempts:
        response = w.client.post(url, data=data)
        assert response.status_code == 403, data
        assert "form has expired" in response.text
    assert w.rows(Promise) == [] and w.rows(PayerRequest) == []


def test_a_double_submission_records_once(world: World) -> None:
    w = world
    fields = {**w.form("promise"), "invoice": "I1a", "date": str(TODAY + timedelta(days=5))}
    first = w.client.post(f"/pay/{w.token}/promise", data=fields)
    again = w.client.post(f"/pay/{w.token}/promise", data=fields)  # refresh / double click
    assert (first.status_code, again.status_code) == (303, 303)
    assert len(w.rows(Promise)) == 1 and len(w.rows(PayerRequest)) == 1


def test_posts_are_rate_limited_per_link(sqlite_world: World) -> None:
    w = sqlite_world
    limit = payer.RateLimiter().limit
    codes = [w.post("dispute", invoice="I1a", reason="").status_code for _ in range(limit + 1)]
    assert codes == [400] * limit + [429]
    # The limit is per link: the other customer's link still works.
    assert w.post("dispute", w.other, invoice="I2a", reason="wrong").status_code == 303
    assert [d.invoice_external_id for d in w.rows(Dispute)] == ["I2a"]


def test_unsubscribe_needs_a_confirmation_and_is_recorded_once(sqlite_world: World) -> None:
    w = sqlite_world
    page = w.client.get(f"/pay/{w.token}/unsubscribe")
    assert page.status_code == 200 and "confirm-unsubscribe" in page.text
    assert w.rows(PayerOptOut) == []  # a GET (a mail scanner) never unsubscribes
    fields = form_fields(page.text.replace("<form", '<form id="u"', 1), "u")
    assert w.client.post(f"/pay/{w.token}/unsubscribe", data={}).status_code == 403
    for _ in range(2):
        done = w.client.post(f"/pay/{w.token}/unsubscribe", data=fields)
        assert done.status_code == 200 and "will not receive further" in done.text
    [row] = w.rows(PayerOptOut)
    assert (row.customer_external_id, row.channel) == ("C1", "email")
    with Session(w.ctx.engine) as s:
        assert payer.opted_out(s, w.cid, ["C1", "C2"]) == {"C1"}
    assert "You have unsubscribed" in w.client.get(f"/pay/{w.token}").text


def test_one_click_unsubscribe_works_even_on_an_expired_link(sqlite_world: World) -> None:
    w = sqlite_world
    old = links.sign(w.secret, w.cid, "C2", now=NOW - timedelta(days=200))
    assert w.client.get(f"/pay/{old}").status_code == 410  # the page itself is gone...
    assert w.client.get(f"/pay/{old}/unsubscribe").status_code == 200  # ...opting out is not
    response = w.client.post(f"/pay/{old}/unsubscribe", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "will not receive further" in response.text
    assert [(r.customer_external_id, r.channel) for r in w.rows(PayerOptOut)] == [("C2", "email")]
    forged = links.sign("z" * 32, w.cid, "C1", now=NOW)
    assert w.client.post(f"/pay/{forged}/unsubscribe",
                         data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert len(w.rows(PayerOptOut)) == 1


def test_the_outbox_sends_nothing_to_an_unsubscribed_customer(sqlite_world: World) -> None:
    w = sqlite_world
    assert w.client.post(f"/pay/{w.token}/unsubscribe",
                         data={"List-Unsubscribe": "One-Click"}).status_code == 200
    sender = RecordingSender()
    run_pass(w.ctx, w.cid, NOW, sender=sender)
    assert sorted(m.recipient for m in sender.sent) == ["ap2@example.com"]
    [mine] = w.actions()  # planned before the opt-out: cancelled by the outbox's re-check
    assert mine.status == "cancelled" and "unsubscribed" in (mine.status_reason or "")
    # Later days plan nothing for them at all: no reminder planned then cancelled (and noted
    # on the invoice) every day.
    from sqlalchemy import update

    from arsync.models import Connection

    for days in (1, 2, 8, 15):
        at = NOW + timedelta(days=days)
        with Session(w.ctx.engine) as s, s.begin():  # the mirror is fresh: no sync needed
            s.execute(update(Connection).where(Connection.id == w.cid)
                      .values(last_synced_at=at))
        report = run_pass(w.ctx, w.cid, at, sender=sender)
        assert "error" not in report, report
    assert [a.id for a in w.actions() if a.kind == "message"] == [mine.id]
    assert {a.kind for a in w.actions()} == {"message", "task"}  # a person may still call
    assert {m.recipient for m in sender.sent} == {"ap2@example.com"}
    assert len(w.actions("C2")) > 1  # the other customer is still chased


def test_list_unsubscribe_one_click(sqlite_world: World) -> None:
    w = sqlite_world
    token = unsubscribe_token(w.secret, f"{w.cid}:C2")
    assert w.client.post(f"/unsubscribe/{token}x",
                         data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert w.client.get(f"/unsubscribe/{token}").status_code == 200
    assert w.rows(PayerOptOut) == []
    response = w.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert [(r.customer_external_id, r.channel) for r in w.rows(PayerOptOut)] == [("C2", "email")]


def test_the_link_check_tells_expired_from_forged() -> None:
    secret = "s" * 32
    token = links.sign(secret, 1, "C1", now=NOW)
    assert payer.resolve_link(secret, token, NOW).customer_external_id == "C1"
    with pytest.raises(payer.PageGoneError):
        payer.resolve_link(secret, token, NOW + links.DEFAULT_TTL)
    with pytest.raises(links.InvalidLinkError) as forged:
        payer.resolve_link("t" * 32, token, NOW)
    assert not isinstance(forged.value, payer.PageGoneError)


def test_promise_dates_are_bounded() -> None:
    today = date(2026, 3, 10)
    assert payer.parse_promise_date("2026-03-11", today) == date(2026, 3, 11)
    assert payer.parse_promise_date(str(today + payer.PROMISE_HORIZON), today)
    with pytest.raises(payer.InputError):
        payer.parse_promise_date(str(today + payer.PROMISE_HORIZON + timedelta(days=1)), today)


def test_access_logs_never_keep_a_link_token(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import arsync.web.payer  # noqa: F401 - installs the filter

    caplog.set_level(logging.INFO, logger="uvicorn.access")
    token = links.sign("s" * 32, 1, "C1", now=NOW)
    access = logging.getLogger("uvicorn.access")
    for path in (f"/pay/{token}?done=promise", f"/pay/{token}/unsubscribe",
                 f"/unsubscribe/{token}"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    assert token not in caplog.text and token.split(".")[0] not in caplog.text
    assert '"GET /pay/[redacted]?done=promise HTTP/1.1" 200' in caplog.text
    assert "/pay/[redacted]/unsubscribe" in caplog.text


def test_every_payer_answer_is_queued_as_a_note_on_its_invoices(sqlite_world: World) -> None:
    from arsync.models_notes import NoteJob
    from arsync.notes_enqueue import enqueue_pending

    w = sqlite_world
    assert w.post("promise", invoice="I1a", date=str(TODAY + timedelta(days=9))).status_code == 303
    assert w.post("dispute", invoice="I1b", reason="Wrong quantity").status_code == 303
    assert w.post("plan", invoice="all", instalments="3").status_code == 303
    later = NOW + timedelta(minutes=1)
    with Session(w.ctx.engine) as s, s.begin():
        enqueue_pending(s, later, connection_id=w.cid)
    with Session(w.ctx.engine) as s, s.begin():
        assert enqueue_pending(s, later, connection_id=w.cid) == 0  # once, however often run
    jobs = {(j.kind, j.invoice_external_id): j.text for j in w.rows(NoteJob)}
    assert {k for k in jobs if k[0] in ("promise", "dispute", "plan_request")} == {
        ("promise", "I1a"), ("dispute", "I1b"), ("plan_request", "I1a"), ("plan_request", "I1b")}
    plan_note = jobs[("plan_request", "I1a")]
    assert "asked for a payment plan" in plan_note and "(3 instalments)" in plan_note
    assert "reminders paused until" in plan_note and len(plan_note) <= 250
    assert "Wrong quantity" in jobs[("dispute", "I1b")]
