"""Money stays exact and datetimes stay aware through both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from arsync.models import Connection, Invoice


def _conn(s: Session) -> Connection:
    c = Connection(provider="quickbooks", tenant_id="1", name="Co",
                   created_at=datetime(2026, 1, 1, tzinfo=UTC))
    s.add(c)
    s.flush()
    return c


def test_money_is_exact_and_datetimes_aware(engine: Engine) -> None:
    pacific = timezone(timedelta(hours=-8))
    amount = Decimal("1234567890.1234")
    with Session(engine) as s:
        c = _conn(s)
        s.add(Invoice(connection_id=c.id, external_id="1", customer_external_id="9", currency="USD",
                      total=amount, balance=Decimal("0.10"), due_date=date(2026, 2, 28),
                      status="open", seen_at=datetime(2026, 3, 1, 9, 30, tzinfo=pacific)))
        s.commit()
    with Session(engine) as s:
        inv = s.exec(select(Invoice)).one()
    assert inv.total == amount and isinstance(inv.total, Decimal)
    assert inv.balance == Decimal("0.10")
    assert inv.seen_at == datetime(2026, 3, 1, 17, 30, tzinfo=UTC)
    assert inv.seen_at.tzinfo is not None


def test_float_money_and_naive_datetimes_are_refused(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as s:
        c = _conn(s)
        s.add(Invoice(connection_id=c.id, external_id="1", customer_external_id="9",
                      currency="USD", total=0.1, balance=Decimal(0),  # type: ignore[arg-type]
                      status="open", seen_at=datetime(2026, 1, 1, tzinfo=UTC)))
        with pytest.raises(Exception, match="Decimal"):
            s.commit()
    with Session(sqlite_engine) as s:
        s.add(Connection(provider="xero", tenant_id="t", name="n",
                         created_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="naive"):
            s.commit()
