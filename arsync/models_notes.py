"""The write-back queue: notes waiting to be written onto invoices in the books.

One row per (source, invoice): ``key`` is ``action:{id}:{event}:{invoice}``,
``promise:{id}:{invoice}``, ``dispute:{id}:{event}:{invoice}`` or ``plan:{id}:{invoice}`` and is
unique, so enqueueing is insert-once and concurrent workers or re-runs converge on one row.
``(source_type, source_id, event)`` is what :mod:`arsync.notes_queue` anti-joins on to find
ledger rows that have no job yet. Statuses: ``pending`` → ``writing`` (leased) → ``done`` |
``failed``; an expired lease goes back to ``pending`` (writes are idempotent at the provider).

Tables here are registered by the import at the bottom of :mod:`arsync.models`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from arsync.models import _when

NOTE_STATUSES = ("pending", "writing", "done", "failed")


class NoteJob(SQLModel, table=True):
    """One note to write on one invoice, and what became of it."""

    __tablename__ = "note_jobs"
    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_note_jobs_due", "status", "next_attempt_at"),
        Index("ix_note_jobs_source", "source_type", "source_id", "event"),
        Index("ix_note_jobs_connection", "connection_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200)
    connection_id: int = Field(foreign_key="connections.id")
    invoice_external_id: str = Field(max_length=64)
    source_type: str = Field(max_length=12)  # action|promise|dispute|plan
    source_id: int
    event: str = Field(max_length=12)  # sent|escalated|cancelled|recorded|opened|resolved|agreed
    kind: str = Field(max_length=12)  # the note template (render.NOTE_KINDS) or "resolved"
    text: str
    #: When the action happened (the note's date).
    event_at: datetime = Field(sa_column=_when(nullable=False))
    status: str = Field(default="pending", max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_when(nullable=False))
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_column=_when())
    last_error: str | None = None
    written_at: datetime | None = Field(default=None, sa_column=_when())
    #: What the provider said about the write (QuickBooks: the invoice's SyncToken after it).
    provider_ref: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(sa_column=_when(nullable=False))
    updated_at: datetime = Field(sa_column=_when(nullable=False))
