"""Sync orchestration across connections (CLI ``sync``, the scheduler, pre-send freshness)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from arsync.context import AppContext
from arsync.errors import ArsyncError
from arsync.models import Connection
from arsync.sync import sync_connection

log = logging.getLogger(__name__)


def sync_one(ctx: AppContext, conn: Connection, *, full: bool = False) -> dict[str, Any]:
    """Sync one connection and report it as the contract's ``sync --json`` entry."""
    report: dict[str, Any] = {"connection_id": conn.id, "provider": conn.provider,
                              "customers": 0, "invoices": 0, "payments": 0, "credit_notes": 0,
                              "api_calls": 0}
    if conn.status != "active":
        report["error"] = f"connection is {conn.status}: {conn.status_reason or 'reconnect it'}"
        return report
    connector = None
    try:
        connector = ctx.connector_for(conn)
        stats = sync_connection(ctx.engine, conn.id or 0, connector, ctx.clock, full=full)
    except ArsyncError as exc:
        log.error("sync of connection %s failed: %s", conn.id, exc)
        report["error"] = str(exc)
        report["api_calls"] = connector.api_calls if connector is not None else 0
        return report
    report.update(customers=stats.customers, invoices=stats.invoices, payments=stats.payments,
                  credit_notes=stats.credit_notes, api_calls=stats.api_calls, full=stats.full)
    if stats.deferred:
        report["deferred"] = stats.deferred
    return report


def sync_all(ctx: AppContext, *, connection_id: int | None = None,
             full: bool = False) -> list[dict[str, Any]]:
    """Sync the named connection, or every connection, and report each."""
    if connection_id is not None:
        conns = [ctx.connection(connection_id)]
    else:
        with Session(ctx.engine) as s:
            conns = list(s.scalars(select(Connection).where(Connection.status != "disconnected")
                                   .order_by(Connection.id)))
    return [sync_one(ctx, c, full=full) for c in conns]
