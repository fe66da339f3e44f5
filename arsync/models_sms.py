"""SMS delivery state: opt-outs (STOP/START replies) per number.

Tables here are registered by the import at the bottom of :mod:`arsync.models`.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from arsync.models import _when


class SmsOptOut(SQLModel, table=True):
    """A number that must not be texted on behalf of one connection.

    One row per (connection, E.164 number). ``opted_out_at`` is None once the person opted back
    in (START/UNSTOP): the row is kept so the history of consent stays visible. ``source`` says
    how it was learnt: ``inbound`` (a STOP reply), ``provider`` (Twilio refused with 21610) or
    ``manual``.
    """

    __tablename__ = "sms_opt_outs"

    connection_id: int = Field(foreign_key="connections.id", primary_key=True)
    number: str = Field(primary_key=True, max_length=20)
    opted_out_at: datetime | None = Field(default=None, sa_column=_when())
    opted_in_at: datetime | None = Field(default=None, sa_column=_when())
    source: str = Field(max_length=20)
    #: The reply's text (STOP, QUIT...) or the provider's error, for people reading the record.
    detail: str | None = None
    updated_at: datetime = Field(sa_column=_when(nullable=False))
