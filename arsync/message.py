"""The channel interface: a rendered :class:`OutgoingMessage` and the :class:`Sender` protocol.

Messages are built in :mod:`arsync.compose` (templates, see :mod:`arsync.render`); each channel's
sender (email: :class:`arsync.mailer.MailerSender`; SMS; provider email) delivers them and says,
through its exception type, whether a failure is permanent, temporary or of unknown outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from arsync.errors import ArsyncError


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
