"""A small seeded mirror plus an AppContext on a given engine, for ledger and outbox tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.context import AppContext
from arsync.message import OutgoingMessage
from arsync.models import Connection
from tests.factories import make_connection, make_customer, make_invoice

#: Tuesday 10 March 2026, 15:00 UTC: inside the default send window (09:00-17:00 UTC company).
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


@dataclass
class RecordingSender:
    """Delivers into a list; cannot tell after a crash whether something went out."""

    sent: list[OutgoingMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: OutgoingMessage) -> None:
        with self.lock:
            self.sent.append(message)

    def outcome(self, message: OutgoingMessage) -> bool | None:
        return None


def context_on(engine: Engine, home: Path, now: datetime = NOW, **settings: object) -> AppContext:
    s = Settings(_env_file=None, home=home, secret_key="k" * 32, **settings)  # type: ignore[call-arg]
    ctx = AppContext(s, clock=SimClock(now))
    ctx.__dict__["engine"] = engine  # the cached_property, pointed at the test's database
    return ctx


def seed(engine: Engine, *, customers: int = 3, pilot: bool = False,
         synced: datetime = NOW, timezone: str = "UTC") -> Connection:
    """``customers`` customers, each with two overdue invoices (one message each today)."""
    conn = make_connection(engine, pilot_mode=pilot, last_synced_at=synced, timezone=timezone)
    for c in range(1, customers + 1):
        make_customer(engine, conn, f"C{c}", email=f"ap{c}@example.com")
        make_invoice(engine, conn, f"I{c}a", f"C{c}", due=date(2026, 3, 3), amount="100.00")
        make_invoice(engine, conn, f"I{c}b", f"C{c}", due=date(2026, 2, 20), amount="40.50")
    return conn
