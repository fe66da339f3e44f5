"""The ``provider_email`` channel: the books send the invoice email themselves.

For companies that want reminders to come from QuickBooks or Xero (their own templates, their
own sender address, the "sent" mark on the invoice), each invoice of a message is sent with:

* QuickBooks ``POST /v3/company/{realm}/invoice/{id}/send`` (``application/octet-stream``). Given
  ``sendTo``, QuickBooks also *overwrites the invoice's BillEmail* with it, so ``sendTo`` is passed
  only when the invoice has no billing address of its own (QuickBooks would refuse to send
  otherwise, and filling an empty BillEmail is what its own UI does). An invoice that has one is
  sent to it and the books are left as they are.
* Xero ``POST /Invoices/{id}/Email`` (204): Xero mails the invoice's contact; approved sales
  invoices only, within the organisation's daily email limit.

A message covering several invoices is several provider emails. Errors:

==========================================  ===================================================
what happened                               raised
==========================================  ===================================================
invoice refused (draft, no address, 400)    SendError: the action fails with the reason
throttled (429), daily email limit          TransientSendError: nothing was sent, try later
network failure or 5xx on the send          OutcomeUnknownError: it may have gone out
some invoices sent, then a failure          SendError naming what went out: never re-sent
==========================================  ===================================================

``outcome`` after a crash: QuickBooks stamps ``DeliveryInfo.DeliveryTime`` (and
``EmailStatus=EmailSent``) on a sent invoice, so a delivery time at or after the action's claim
means it went out, and an earlier one (or none) that it did not. Xero keeps no such trace that
can be read reliably (``SentToContact`` is also set by a person marking it sent), so None.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from arsync.context import AppContext
from arsync.errors import (
    ArsyncError,
    AuthError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from arsync.message import OutcomeUnknownError, OutgoingMessage, SendError, TransientSendError
from arsync.models import Action, Connection, Invoice
from connectors.quickbooks import mapping as qbo_mapping

log = logging.getLogger(__name__)

CHANNEL = "provider_email"
#: Our clock and Intuit's may disagree a little; a delivery this much before the claim counts.
CLOCK_SKEW = timedelta(minutes=2)
#: Words in a provider's refusal that mean "the daily email allowance is spent", not "this
#: invoice can never be emailed" (QuickBooks sandbox: 40 a day; Xero: 1,000 / 20 trial / 0 demo).
_LIMIT_WORDS = ("a day", "daily limit", "daily email", "limit for emailing")


@dataclass(frozen=True)
class _Target:
    conn: Connection
    invoice_ids: tuple[str, ...]
    claimed_at: datetime | None


class ProviderEmailSender:
    """Implements :class:`arsync.message.Sender` for the ``provider_email`` channel."""

    channel = CHANNEL

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # -- send -------------------------------------------------------------------------------

    def send(self, message: OutgoingMessage) -> None:
        target = self._target(message)
        if not target.invoice_ids:
            raise SendError("a provider email needs at least one invoice")
        connector = self._connector(target.conn)
        sent: list[str] = []
        for invoice_id in target.invoice_ids:
            try:
                self._send_one(connector, target.conn, invoice_id, message)
            except (SendError, TransientSendError, OutcomeUnknownError) as exc:
                if not sent:
                    raise
                # Part of the message went out: retrying would send those invoices again.
                raise SendError(f"{target.conn.provider} sent invoice(s) {', '.join(sent)} but "
                                f"not {invoice_id}: {exc}; not retried, so nothing goes twice"
                                ) from exc
            sent.append(invoice_id)
        log.info("action %s: %s emailed invoice(s) %s", message.action_id, target.conn.provider,
                 ", ".join(sent))

    def _send_one(self, connector: object, conn: Connection, invoice_id: str,
                  message: OutgoingMessage) -> None:
        key = _request_key(message, invoice_id)
        try:
            if conn.provider == "quickbooks":
                send_to = None if self._billing_email(conn, invoice_id) else message.recipient
                connector.send_invoice(invoice_id, send_to=send_to or None,  # type: ignore[attr-defined]
                                       request_id=key)
            elif conn.provider == "xero":
                connector.email_invoice(invoice_id, idempotency_key=key)  # type: ignore[attr-defined]
            else:
                raise SendError(f"provider email is not available for {conn.provider}")
        except ArsyncError as exc:
            raise _map(exc, conn.provider, invoice_id) from exc

    def _billing_email(self, conn: Connection, invoice_id: str) -> str | None:
        with Session(self.ctx.engine) as s:
            return s.scalars(select(Invoice.billing_email)  # type: ignore[call-overload]
                             .where(Invoice.connection_id == conn.id)
                             .where(Invoice.external_id == invoice_id)).first()

    # -- outcome ----------------------------------------------------------------------------

    def outcome(self, message: OutgoingMessage) -> bool | None:
        try:
            target = self._target(message)
        except SendError:
            return None
        if target.conn.provider != "quickbooks" or not target.invoice_ids \
                or target.claimed_at is None:
            return None  # Xero keeps no reliable trace of its invoice emails
        connector = self._connector(target.conn)
        since = target.claimed_at - CLOCK_SKEW
        delivered = []
        for invoice_id in target.invoice_ids:
            invoice = connector.read_invoice(invoice_id)  # type: ignore[attr-defined]
            info = invoice.get("DeliveryInfo") or {}
            when = qbo_mapping.parse_time(info.get("DeliveryTime"), "DeliveryInfo.DeliveryTime")
            delivered.append(invoice.get("EmailStatus") == "EmailSent" and when is not None
                             and when >= since)
        if all(delivered):
            return True
        if not any(delivered):
            return False
        return None  # some went out and some did not: a person must look

    # -- plumbing ---------------------------------------------------------------------------

    def _target(self, message: OutgoingMessage) -> _Target:
        """Connection and invoices from the message, else from its action row (after a crash
        the outbox's probe carries only the action id), plus when the send was claimed."""
        with Session(self.ctx.engine) as s:
            action = s.get(Action, message.action_id) if message.action_id else None
            conn_id = message.connection_id or (action.connection_id if action else 0)
            conn = s.get(Connection, conn_id) if conn_id else None
            if conn is None:
                raise SendError(f"no connection {conn_id} for action {message.action_id}")
            s.expunge(conn)
        ids = message.invoice_external_ids or (
            tuple(json.loads(action.invoice_ids_json)) if action else ())
        return _Target(conn, tuple(ids), claimed_at(action, self.ctx.settings.send_lease_seconds))

    def _connector(self, conn: Connection) -> object:
        try:
            return self.ctx.connector_for(conn)
        except ArsyncError as exc:
            raise SendError(f"cannot reach {conn.provider} for connection {conn.id}: {exc}"
                            ) from exc


def claimed_at(action: Action | None, lease_seconds: float) -> datetime | None:
    """When the send being settled was claimed (None: the action is not being sent).

    The claim stamps ``updated_at`` and sets the lease's end; the earlier of the two readings is
    used, since an earlier "since" can only make an older send count as this one (a reminder
    taken as sent), never make a real send look absent (a reminder sent twice).
    """
    if action is None or action.status != "sending":
        return None
    times = [action.updated_at]
    if action.claim_expires_at is not None:
        times.append(action.claim_expires_at - timedelta(seconds=lease_seconds))
    return min(times)


def _request_key(message: OutgoingMessage, invoice_id: str) -> str:
    """The same action and invoice always give the same QuickBooks requestid / Xero key."""
    basis = f"{message.idempotency_key or message.message_id or message.action_id}|{invoice_id}"
    return hashlib.sha256(basis.encode()).hexdigest()[:36]


def _map(exc: ArsyncError, provider: str, invoice_id: str) -> ArsyncError:
    """A connector error as the send outcome it means (table in the module docstring)."""
    what = f"{provider} invoice {invoice_id}: {exc}"
    if isinstance(exc, (SendError, TransientSendError, OutcomeUnknownError)):
        return exc
    if isinstance(exc, RateLimitedError):
        return TransientSendError(f"throttled by {what}")
    if isinstance(exc, AuthError):
        return SendError(f"the {provider} connection needs reconnecting ({what})")
    if isinstance(exc, PermanentError):
        if any(w in str(exc).lower() for w in _LIMIT_WORDS):
            return TransientSendError(f"daily email limit reached ({what})")
        return SendError(f"refused: {what}")
    if isinstance(exc, TransientError):
        return OutcomeUnknownError(f"no clear answer from {what}")
    return SendError(what)
