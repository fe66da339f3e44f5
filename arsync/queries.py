"""Read-side queries over the mirror, shaped for the CLI's JSON and the web app."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from arsync.models import Connection, Customer, Invoice

INVOICE_FILTERS = ("draft", "open", "overdue", "paid", "voided", "deleted", "all")


def local_today(conn: Connection, now: datetime) -> date:
    """Today in the company's own time zone (overdue is judged there, not in UTC)."""
    return now.astimezone(ZoneInfo(conn.timezone)).date()


def connection_json(conn: Connection) -> dict[str, Any]:
    return {"id": conn.id, "provider": conn.provider, "tenant_id": conn.tenant_id,
            "name": conn.name, "status": conn.status,
            "last_synced_at": conn.last_synced_at.isoformat() if conn.last_synced_at else None,
            "status_reason": conn.status_reason, "currency": conn.currency,
            "country": conn.country, "timezone": conn.timezone, "reply_to": conn.reply_to}


def invoices(session: Session, *, now: datetime, connection_id: int | None = None,
             status: str = "open") -> list[dict[str, Any]]:
    """Invoices as the contract's ``arsync invoices`` reports them, oldest due first."""
    q = (select(Invoice, Connection, Customer.name)
         .join(Connection, Connection.id == Invoice.connection_id)
         .outerjoin(Customer, and_(Customer.connection_id == Invoice.connection_id,
                                   Customer.external_id == Invoice.customer_external_id)))
    if connection_id is not None:
        q = q.where(Invoice.connection_id == connection_id)
    if status not in ("all", "overdue"):
        q = q.where(Invoice.status == status)
    elif status == "overdue":
        q = q.where(Invoice.status == "open")
    q = q.order_by(Invoice.connection_id, Invoice.due_date, Invoice.id)
    out = []
    today_by_conn: dict[int, date] = {}
    for inv, conn, customer_name in session.execute(q):
        today = today_by_conn.setdefault(conn.id, local_today(conn, now))
        overdue_days = (today - inv.due_date).days if inv.due_date else 0
        if status == "overdue" and not (inv.due_date and overdue_days > 0):
            continue
        out.append({
            "connection_id": inv.connection_id, "provider": conn.provider,
            "external_id": inv.external_id, "number": inv.number,
            "customer_external_id": inv.customer_external_id, "customer_name": customer_name,
            "currency": inv.currency, "total": money(inv.total), "balance": money(inv.balance),
            "issue_date": iso(inv.issue_date), "due_date": iso(inv.due_date),
            "status": inv.status,
            "days_overdue": max(0, overdue_days) if inv.status == "open" else 0,
        })
    return out


def money(value: Decimal | None) -> str | None:
    """Money for JSON: a decimal string with at least two places ("1250.00")."""
    if value is None:
        return None
    return format(value.quantize(Decimal("0.01")) if value == value.quantize(Decimal("0.01"))
                  else value.normalize(), "f")


def iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
