"""Requests made by payers on their self-service page.

Tables here are registered by the import at the bottom of :mod:`arsync.models`.

* :class:`PayerRequest` records every answer a payer gave on the page (promise, dispute, plan
  request). Promises and disputes are also recorded in the rows people keep
  (:class:`arsync.models.Promise`, :class:`arsync.models.Dispute`), which the rules and the note
  write-back read; this row says the payer made them, and its unique ``submission_key`` (one per
  rendered form) makes a re-submitted form (refresh, double click) a no-op.
* A payment-plan *request* is a proposal, not an agreed plan (agreed instalments must add up to
  the balance and are a person's decision, ``arsync plan``), so it is kept here as an open
  request (``handled_at`` NULL) for a person, rather than as a ledger task: ledger rows are the
  rules' own history (stages, idempotency keys) and a hand-made one would skew it.
* :class:`PayerOptOut` is a customer's "no more email" from the unsubscribe link.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from arsync.models import _when


class PayerRequest(SQLModel, table=True):
    """One answer a payer gave on their page."""

    __tablename__ = "payer_requests"
    __table_args__ = (
        UniqueConstraint("submission_key"),
        Index("ix_payer_requests_customer", "connection_id", "customer_external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    customer_external_id: str = Field(max_length=64)
    kind: str = Field(max_length=10)  # promise|dispute|plan
    #: JSON list of the invoice external ids the answer is about.
    invoice_ids_json: str
    #: JSON of what the payer entered (date, amount, reason, instalments, proposal).
    details_json: str
    #: Digest of the form's nonce: the same form submitted twice is recorded once.
    submission_key: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_when(nullable=False))
    #: Plan requests wait for a person; set when one has answered.
    handled_at: datetime | None = Field(default=None, sa_column=_when())


class PayerOptOut(SQLModel, table=True):
    """A customer who asked for no more messages on a channel (today: email)."""

    __tablename__ = "payer_opt_outs"

    connection_id: int = Field(foreign_key="connections.id", primary_key=True)
    customer_external_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(primary_key=True, max_length=20)
    created_at: datetime = Field(sa_column=_when(nullable=False))
