"""The outbox end to end over real SMTP (aiosmtpd): rendered messages, failures, retries.

Every test plans real actions from a seeded mirror (``tests.arsync.ledger_world``: customer C1
owes I1a, $100.00 due 3 March, and I1b, $40.50 due 20 February; it is 10 March), drains them
into a local SMTP server on both databases, and reads back what the server received.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.context import AppContext
from arsync.links import verify
from arsync.mailer import EmlMailer, MailerSender, SmtpMailer, message_id_for
from arsync.models import Action, Invoice
from arsync.outbox import drain_outbox, senders_for
from arsync.passes import plan_connection, run_pass
from arsync.render_overrides import DbTemplateStore
from tests.arsync.ledger_world import NOW, context_on, seed
from tests.delivery.conftest import Recorder, SmtpServer, free_port

FOREVER = 10**7
PUBLIC = "https://ar.testco.example"
REPLY_TO = "ar@testco.example"


def _ctx(engine: Engine, home: Path, port: int, **settings: Any) -> AppContext:
    return context_on(engine, home, smtp_url=f"smtp://127.0.0.1:{port}?timeout=10",
                      public_url=PUBLIC, mail_reply_to=REPLY_TO, freshness_minutes=FOREVER,
                      **settings)


def _actions(engine: Engine) -> list[Action]:
    with Session(engine) as s:
        return list(s.scalars(select(Action).order_by(Action.id)))


def _parsed(envelope: Envelope) -> EmailMessage:
    return BytesParser(policy=default).parsebytes(envelope.original_content)  # type: ignore[return-value]


def _parts(msg: EmailMessage) -> tuple[str, str]:
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def test_drain_sends_the_rendered_message_with_every_header(
        engine: Engine, tmp_path: Path, smtp_server: SmtpServer) -> None:
    ctx = _ctx(engine, tmp_path, smtp_server.port)
    conn = seed(engine, customers=1)
    with Session(engine) as s, s.begin():  # a cached provider pay link on one invoice only
        s.execute(update(Invoice).where(Invoice.external_id == "I1a")
                  .values(pay_url="https://pay.example/I1a"))
    report = run_pass(ctx, conn.id or 0, NOW)  # the configured senders: SMTP
    [row] = _actions(engine)
    assert report["outbox"]["sent"] == [row.id]
    assert (row.status, row.attempts) == ("sent", 1)
    [envelope] = smtp_server.handler.received
    assert envelope.rcpt_tos == ["ap1@example.com"]
    assert envelope.mail_from == f"accounts@{conn.tenant_id}.arsync.local"
    msg = _parsed(envelope)
    assert msg["Message-ID"] == row.message_id == message_id_for(
        row.idempotency_key, f"accounts@{conn.tenant_id}.arsync.local")
    assert msg["From"] == f"Test Co <accounts@{conn.tenant_id}.arsync.local>"
    assert msg["To"] == "ap1@example.com"
    assert msg["Reply-To"] == REPLY_TO
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Arsync-Action"] == str(row.id)
    assert msg["Date"] is not None
    assert msg.get_content_type() == "multipart/alternative"
    # The payer page link: signed for this customer of this connection.
    text, html = _parts(msg)
    payer = next(w for w in text.split() if w.startswith(f"{PUBLIC}/pay/"))
    ref = verify(ctx.settings.require_secret_key(), payer.rsplit("/", 1)[1], now=NOW)
    assert (ref.connection_id, ref.customer_external_id) == (conn.id, "C1")
    assert msg["List-Unsubscribe"] == (f"<{payer}/unsubscribe>, "
                                       f"<mailto:{REPLY_TO}?subject=unsubscribe>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Byte for byte on the wire: one plain header line, no RFC 2047 encoded-words in the URLs.
    raw = envelope.original_content or b""
    assert (f"\r\nList-Unsubscribe: <{payer}/unsubscribe>, "
            f"<mailto:{REPLY_TO}?subject=unsubscribe>\r\n").encode() in raw
    assert raw.startswith(f"Message-ID: {row.message_id}\r\n".encode())
    for part in (text, html):
        assert "I1a" in part and "I1b" in part
        assert "$100.00" in part and "$40.50" in part and "$140.50" in part  # Babel, en_US
        assert "https://pay.example/I1a" in part  # the provider's pay link
        assert payer in part
    assert "Customer C1" in text
    assert "18 days overdue" in text  # I1b: due 20 February, sent 10 March
    assert msg["Subject"] and "$140.50" in msg["Subject"]


def test_the_companys_own_reply_address_wins_over_the_default(
        engine: Engine, tmp_path: Path, smtp_server: SmtpServer) -> None:
    from arsync.models import Connection

    ctx = _ctx(engine, tmp_path, smtp_server.port)
    conn = seed(engine, customers=1)
    with Session(engine) as s, s.begin():
        s.execute(update(Connection).where(Connection.id == conn.id)
                  .values(reply_to="Test Co Billing <billing@testco.example>"))
    run_pass(ctx, conn.id or 0, NOW)
    [envelope] = smtp_server.handler.received
    msg = _parsed(envelope)
    assert msg["Reply-To"] == "Test Co Billing <billing@testco.example>"
    assert "<mailto:billing@testco.example?subject=unsubscribe>" in msg["List-Unsubscribe"]


def test_a_5xx_refusal_fails_the_action_with_the_servers_reason(
        engine: Engine, tmp_path: Path, smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_reply = "550 5.1.1 <ap1@example.com>: mailbox unavailable"
    ctx = _ctx(engine, tmp_path, smtp_server.port)
    conn = seed(engine, customers=1)
    report = run_pass(ctx, conn.id or 0, NOW)
    [row] = _actions(engine)
    assert report["outbox"]["failed"] == [row.id]
    assert row.status == "failed"
    assert "550" in (row.status_reason or "")
    assert "mailbox unavailable" in (row.status_reason or "")
    assert smtp_server.handler.received == []
    # Failed stays failed: a later drain sends nothing.
    smtp_server.handler.rcpt_reply = None
    drain_outbox(ctx, NOW + timedelta(hours=1))
    assert smtp_server.handler.received == []


def test_a_4xx_is_retried_later_with_the_same_message_id_and_sent_once(
        engine: Engine, tmp_path: Path, smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_reply = "451 4.3.0 Temporary local problem, try later"
    ctx = _ctx(engine, tmp_path, smtp_server.port)
    conn = seed(engine, customers=1)
    plan_connection(ctx, conn, NOW, full=True)
    rng = random.Random(5)
    first = drain_outbox(ctx, NOW, rng=rng)
    [row] = _actions(engine)
    assert first.retried == [row.id] and first.sent == []
    assert (row.status, row.attempts) == ("planned", 1)
    assert "451" in (row.status_reason or "")
    base = ctx.settings.send_retry_base_seconds
    assert NOW < row.planned_for <= NOW + timedelta(seconds=base)  # full jitter, attempt 1
    claimed_id = row.message_id
    smtp_server.handler.data_reply = None
    # Not before its time, even though the server would now take it.
    early = row.planned_for - timedelta(microseconds=1)
    assert drain_outbox(ctx, early, rng=rng).sent == []
    assert smtp_server.handler.received == []
    later = drain_outbox(ctx, row.planned_for, rng=rng)
    assert later.sent == [row.id]
    [row] = _actions(engine)
    assert (row.status, row.attempts, row.message_id) == ("sent", 2, claimed_id)
    [envelope] = smtp_server.handler.received
    assert _parsed(envelope)["Message-ID"] == claimed_id  # stable across the retry
    drain_outbox(ctx, row.planned_for + timedelta(minutes=5), rng=rng)
    assert len(smtp_server.handler.received) == 1


def test_temporary_failures_give_up_after_the_bounded_number_of_attempts(
        engine: Engine, tmp_path: Path, smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_reply = "421 4.7.0 Too many connections, slow down"
    ctx = _ctx(engine, tmp_path, smtp_server.port, send_max_attempts=3,
               send_retry_base_seconds=10, send_retry_cap_seconds=15)
    conn = seed(engine, customers=1)
    plan_connection(ctx, conn, NOW, full=True)
    rng = random.Random(1)
    when = NOW
    delays = []
    for _ in range(2):
        assert drain_outbox(ctx, when, rng=rng).retried
        [row] = _actions(engine)
        delays.append((row.planned_for - when).total_seconds())
        when = row.planned_for
    assert 0 <= delays[0] <= 10 and 0 <= delays[1] <= 15  # base * 2, capped at 15
    report = drain_outbox(ctx, when, rng=rng)
    [row] = _actions(engine)
    assert report.failed == [row.id]
    assert (row.status, row.attempts) == ("failed", 3)
    assert (row.status_reason or "").startswith("gave up after 3 attempts")
    assert "421" in (row.status_reason or "")
    assert smtp_server.handler.received == []


class DropAfterData(Recorder):
    """Takes the whole message, then drops the connection before answering it."""

    async def handle_DATA(self, server: Any, session: SmtpSession, envelope: Envelope) -> str:
        self.received.append(envelope)
        assert server.transport is not None
        server.transport.abort()
        await asyncio.sleep(0)
        return "250 OK"


@pytest.fixture
def dropping_server() -> Iterator[SmtpServer]:
    handler = DropAfterData()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(handler, port)
    controller.stop()


def test_a_connection_lost_after_the_body_is_unknown_and_never_resent(
        engine: Engine, tmp_path: Path, dropping_server: SmtpServer) -> None:
    ctx = _ctx(engine, tmp_path, dropping_server.port)
    conn = seed(engine, customers=1)
    report = run_pass(ctx, conn.id or 0, NOW)
    [row] = _actions(engine)
    assert report["outbox"]["unknown"] == [row.id]
    assert row.status == "unknown"
    assert "may have been delivered" in (row.status_reason or "")
    assert "never re-sent" in (row.status_reason or "")
    assert len(dropping_server.handler.received) == 1
    run_pass(ctx, conn.id or 0, NOW + timedelta(minutes=10))
    run_pass(ctx, conn.id or 0, NOW + timedelta(days=1))
    assert len(dropping_server.handler.received) == 1  # nothing sent again, not even next day
    assert [r.status for r in _actions(engine) if r.stage == row.stage] == ["unknown"]


def test_a_companys_template_override_is_used(engine: Engine, tmp_path: Path,
                                              smtp_server: SmtpServer) -> None:
    ctx = _ctx(engine, tmp_path, smtp_server.port)
    conn = seed(engine, customers=1)
    other = seed(engine, customers=1)
    plan_connection(ctx, conn, NOW, full=True)
    plan_connection(ctx, other, NOW, full=True)
    template = _actions(engine)[0].template
    store = DbTemplateStore(engine, ctx.clock)
    store.save(str(conn.id), "email", f"{template}.subject.j2",
               "A word from {{ company.name }} about {{ totals|money_list }}")
    store.save(str(conn.id), "email", f"{template}.txt.j2",
               "Hello {{ customer.name }}, settle up please.\n"
               "{% for inv in invoices %}{{ inv.number }} {{ inv.balance|money(inv.currency) }}\n"
               "{% endfor %}Cheers, the {{ company.name }} crew")
    drain_outbox(ctx, NOW)
    # Both companies' messages went out; the override belongs to the first company only.
    msgs = [_parsed(e) for e in smtp_server.handler.received]
    assert len(msgs) == 2
    ours = [m for m in msgs if m["Subject"] == "A word from Test Co about $140.50"]
    assert len(ours) == 1
    text, html = _parts(ours[0])
    assert "settle up please" in text and "I1b $40.50" in text and "Test Co crew" in text
    assert "View and pay your invoices" in html  # the HTML part was not overridden
    [theirs] = [m for m in msgs if m is not ours[0]]
    assert "A word from" not in theirs["Subject"]
    assert "settle up please" not in _parts(theirs)[0]


def test_a_refused_override_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    from arsync.render_overrides import TemplateValidationError

    ctx = context_on(engine, tmp_path)
    conn = seed(engine, customers=1)
    store = DbTemplateStore(engine, ctx.clock)
    store.save(str(conn.id), "email", "firm.subject.j2", "Hello from {{ company.name }}")
    with pytest.raises(TemplateValidationError, match="line 1"):
        store.save(str(conn.id), "email", "firm.subject.j2", "Hello {{ no_such_thing }}")
    assert store.overrides(str(conn.id)) == {
        "email/firm.subject.j2": "Hello from {{ company.name }}"}
    store.delete(str(conn.id), "email", "firm.subject.j2")
    assert store.overrides(str(conn.id)) == {}


def test_senders_for_picks_smtp_when_configured_else_the_eml_outbox(
        engine: Engine, tmp_path: Path) -> None:
    port = free_port()
    with_smtp = senders_for(_ctx(engine, tmp_path, port))
    assert isinstance(with_smtp["email"], MailerSender)
    assert isinstance(with_smtp["email"].mailer, SmtpMailer)
    plain = senders_for(context_on(engine, tmp_path))
    assert isinstance(plain["email"], MailerSender)
    assert isinstance(plain["email"].mailer, EmlMailer)
    assert plain["email"].mailer.directory == tmp_path / "outbox"
