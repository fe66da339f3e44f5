"""Delivery tables: a company's own wording for its messages.

Registered by the import at the bottom of :mod:`arsync.models`. Overrides live in the database,
not in files, so every worker (on any machine sharing the database) renders the same wording.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from arsync.models import _when


class TemplateOverride(SQLModel, table=True):
    """One validated template source replacing a shipped file (``email/firm.subject.j2``)."""

    __tablename__ = "template_overrides"

    connection_id: int = Field(foreign_key="connections.id", primary_key=True)
    path: str = Field(primary_key=True, max_length=128)
    source: str
    updated_at: datetime = Field(sa_column=_when(nullable=False))
