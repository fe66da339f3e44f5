"""Provider email against both sandboxes: sent once, refusals fail, limits wait, outcome."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from arsync.message import OutcomeUnknownError, OutgoingMessage, SendError, TransientSendError
from arsync.models import Invoice
from arsync.provider_email import ProviderEmailSender
from tests.channels.conftest import NOW, REALM, TENANT, World, make_action


def _message(world: World, invoice_ids: list[str], recipient: str = "ap@payer.example",
             action_id: int = 0) -> OutgoingMessage:
    return OutgoingMessage(action_id, "<m@arsync.local>", "provider_email", recipient,
                           "ar@channel.example", "Invoice overdue", "body",
                           connection_id=world.conn.id or 0,
                           invoice_external_ids=tuple(invoice_ids),
                           idempotency_key=f"key-{'-'.join(invoice_ids)}")


def _sent(world: World) -> list[str]:
    """Invoice ids the sandbox has emailed, in order."""
    if world.provider == "quickbooks":
        return [e["invoice_id"] for e in world.sandbox.company(REALM).outbox]
    return [e[1] for e in world.sandbox.organisation(TENANT).emails_sent]


def test_each_invoice_is_emailed_once(world: World) -> None:
    first, second = world.add_invoice(world.customer()), world.add_invoice(world.customer())
    ProviderEmailSender(world.ctx).send(_message(world, [first, second]))
    assert _sent(world) == [first, second]


def test_qbo_keeps_the_invoice_billing_address(qbo: World) -> None:
    eid = qbo.add_invoice(qbo.customer())
    own = qbo.sandbox.get(REALM, "Invoice", eid)["BillEmail"]["Address"]
    ProviderEmailSender(qbo.ctx).send(_message(qbo, [eid], recipient="someone@else.example"))
    sent = qbo.sandbox.get(REALM, "Invoice", eid)
    assert sent["BillEmail"]["Address"] == own  # no sendTo: the books are not rewritten
    assert qbo.sandbox.company(REALM).outbox[-1]["to"] == own
    assert sent["EmailStatus"] == "EmailSent"


def test_qbo_invoice_without_address_is_sent_to_the_recipient(qbo: World) -> None:
    eid = qbo.add_invoice(qbo.customer())
    qbo.sandbox.edit_invoice(REALM, eid, BillEmail=None)
    with Session(qbo.ctx.engine) as s, s.begin():
        s.exec(select(Invoice).where(Invoice.external_id == eid)).one().billing_email = None
    ProviderEmailSender(qbo.ctx).send(_message(qbo, [eid], recipient="ap@payer.example"))
    assert qbo.sandbox.company(REALM).outbox[-1]["to"] == "ap@payer.example"


def test_xero_draft_is_refused_and_nothing_is_sent(xero: World) -> None:
    draft = xero.add_invoice(xero.customer(), remote_status="DRAFT")
    with pytest.raises(SendError, match="DRAFT cannot be emailed"):
        ProviderEmailSender(xero.ctx).send(_message(xero, [draft]))
    assert _sent(xero) == []


def test_daily_limit_is_transient(world: World) -> None:
    eid = world.add_invoice(world.customer())
    if world.provider == "quickbooks":
        co = world.sandbox.company(REALM)
        co.emails_sent[co.today()] = 40  # the sandbox company's allowance is spent
    else:
        world.sandbox.EMAIL_DAY_LIMIT = 0  # a demo company: no API emails at all
    with pytest.raises(TransientSendError, match="daily email limit"):
        ProviderEmailSender(world.ctx).send(_message(world, [eid]))
    assert _sent(world) == []


def test_a_failure_after_a_partial_send_is_final(qbo: World) -> None:
    first, second = qbo.add_invoice(qbo.customer()), qbo.add_invoice(qbo.customer())
    co = qbo.sandbox.company(REALM)
    co.emails_sent[co.today()] = 39  # room for exactly one more
    with pytest.raises(SendError, match=f"sent invoice\\(s\\) {first} but not {second}"):
        ProviderEmailSender(qbo.ctx).send(_message(qbo, [first, second]))
    assert _sent(qbo) == [first]


def test_qbo_outcome_reads_delivery_info(qbo: World) -> None:
    eid = qbo.add_invoice(qbo.customer())
    action = make_action(qbo.ctx.engine, qbo.conn, channel="provider_email",
                         recipient="ap@payer.example", invoice_ids=[eid])
    sender = ProviderEmailSender(qbo.ctx)
    # The recovery probe carries only the action id: the rest comes from the ledger row.
    probe = OutgoingMessage(action.id or 0, "<m@arsync.local>", "provider_email", "", "", "", "")
    assert sender.outcome(probe) is False  # claimed, never sent
    qbo.clock.advance(timedelta(seconds=30))
    sender.send(_message(qbo, [eid], action_id=action.id or 0))
    assert sender.outcome(probe) is True


def test_qbo_outcome_ignores_an_older_send(qbo: World) -> None:
    eid = qbo.add_invoice(qbo.customer())
    ProviderEmailSender(qbo.ctx).send(_message(qbo, [eid]))  # the invoice went out last week
    qbo.clock.advance(timedelta(days=7))
    action = make_action(qbo.ctx.engine, qbo.conn, channel="provider_email",
                         recipient="ap@payer.example", invoice_ids=[eid],
                         claimed_at=NOW + timedelta(days=7))
    probe = OutgoingMessage(action.id or 0, "<m@arsync.local>", "provider_email", "", "", "", "")
    assert ProviderEmailSender(qbo.ctx).outcome(probe) is False


def test_xero_outcome_cannot_be_known(xero: World) -> None:
    eid = xero.add_invoice(xero.customer())
    action = make_action(xero.ctx.engine, xero.conn, channel="provider_email",
                         recipient="ap@payer.example", invoice_ids=[eid])
    ProviderEmailSender(xero.ctx).send(_message(xero, [eid], action_id=action.id or 0))
    probe = OutgoingMessage(action.id or 0, "<m@arsync.local>", "provider_email", "", "", "", "")
    assert ProviderEmailSender(xero.ctx).outcome(probe) is None


def test_a_repeated_request_is_a_replay_not_a_second_email(world: World) -> None:
    eid = world.add_invoice(world.customer())
    message = _message(world, [eid])
    sender = ProviderEmailSender(world.ctx)
    sender.send(message)
    # A retry after a lost answer carries the same QuickBooks requestid / Xero Idempotency-Key.
    sender.send(message)
    assert _sent(world) == [eid]


def test_qbo_unclear_answer_is_outcome_unknown_and_outcome_settles_it(qbo: World) -> None:
    eid = qbo.add_invoice(qbo.customer())
    action = make_action(qbo.ctx.engine, qbo.conn, channel="provider_email",
                         recipient="ap@payer.example", invoice_ids=[eid])
    qbo.sandbox.inject_faults(503, 1, realm_id=REALM)
    sender = ProviderEmailSender(qbo.ctx)
    with pytest.raises(OutcomeUnknownError):
        sender.send(_message(qbo, [eid], action_id=action.id or 0))
    probe = OutgoingMessage(action.id or 0, "<m@arsync.local>", "provider_email", "", "", "", "")
    assert sender.outcome(probe) is False  # the gateway refused it: safe to send again
    assert _sent(qbo) == []


def test_xero_answer_lost_after_the_email_went_is_replayed_not_resent(xero: World) -> None:
    eid = xero.add_invoice(xero.customer())
    # Xero emails the invoice, then the answer is lost (a 503 after the write): the connector
    # retries with the same Idempotency-Key and Xero replays instead of emailing again.
    xero.sandbox.inject_faults(503, 1, tenant_id=TENANT, after=True)
    ProviderEmailSender(xero.ctx).send(_message(xero, [eid]))
    assert _sent(xero) == [eid]
