"""INTERIM message renderer: one plain, honest text email per action.

The Jinja2 templates (per company, per stage, per language) replace this in the delivery issue;
until then every message is built here, in :func:`render_interim`, and nowhere else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from arsync.errors import ArsyncError
from rules import InvoiceView

_TONE_OPENING = {
    "friendly": "This is a friendly reminder about the following",
    "firm": "Our records show the following",
    "urgent": "We still have not received payment for the following",
    "final": "This is our final notice about the following",
}


@dataclass(frozen=True)
class OutgoingMessage:
    """A rendered message, ready for a :class:`Sender` of its ``channel``.

    ``body`` is the plain text (an email's text part, an SMS's text); ``html`` an email's HTML
    part. ``connection_id`` and ``invoice_external_ids`` let a provider channel (QuickBooks'
    invoice send, Xero's invoice email) act on the invoices themselves.
    """

    action_id: int
    message_id: str
    channel: str
    recipient: str
    mail_from: str
    subject: str
    body: str
    html: str | None = None
    connection_id: int = 0
    invoice_external_ids: tuple[str, ...] = ()
    idempotency_key: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


class SendError(ArsyncError):
    """The sender refused the message for good (bad address, rejected): the action fails."""


class TransientSendError(ArsyncError):
    """The sender could not send now but certainly sent nothing: try again later."""

    retryable = True


class OutcomeUnknownError(ArsyncError):
    """The sender may or may not have delivered it (connection lost mid-send): never retry."""


class Sender(Protocol):
    """Delivers rendered messages of one channel; the boundary between the ledger and the world.

    ``send`` delivers or raises :class:`SendError` (permanent), :class:`TransientSendError`
    (nothing was sent) or :class:`OutcomeUnknownError`. ``outcome`` answers after a crash:
    True if it was delivered, False if certainly not, None if that cannot be known.
    """

    def send(self, message: OutgoingMessage) -> None: ...

    def outcome(self, message: OutgoingMessage) -> bool | None: ...


def message_id_for(idempotency_key: str, domain: str = "arsync.local") -> str:
    """A Message-ID derived from the ledger key: the same action always has the same id."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<arsync-{digest}@{domain}>"


def render_interim(*, action_id: int, message_id: str, channel: str, recipient: str,
                   mail_from: str, company: str, customer: str, tone: str,
                   invoices: list[InvoiceView], today: date) -> OutgoingMessage:
    """Subject and body listing each invoice: number, amount, currency, due date, days overdue."""
    count = len(invoices)
    noun = "invoice" if count == 1 else "invoices"
    overdue = any(i.due_date < today for i in invoices)
    subject = (f"{company}: {count} {noun} {'overdue' if overdue else 'due soon'}")
    lines = [f"Dear {customer},", "",
             f"{_TONE_OPENING.get(tone, _TONE_OPENING['friendly'])} {noun} from {company}:", ""]
    for inv in sorted(invoices, key=lambda i: (i.due_date, i.number)):
        days = (today - inv.due_date).days
        when = (f"{days} day{'s' if days != 1 else ''} overdue" if days > 0
                else "due today" if days == 0 else f"due in {-days} day{'s' if days != -1 else ''}")
        lines.append(f"  Invoice {inv.number}: {inv.currency} {inv.balance:,.2f} "
                     f"due {inv.due_date.isoformat()} ({when})")
    lines += ["", "If you have already paid, thank you, and please ignore this message.",
              "If something is wrong with an invoice, just reply and tell us.", "",
              f"{company}"]
    return OutgoingMessage(action_id, message_id, channel, recipient, mail_from, subject,
                           "\n".join(lines) + "\n")
