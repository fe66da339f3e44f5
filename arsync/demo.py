"""``arsync demo``: the built-in sandbox companies, connected and mirrored end to end.

Nothing here is faked above the HTTP line: the sandboxes are local HTTP servers speaking the
providers' APIs, and the real connectors, token store and mirror talk to them.
"""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Action, Connection, Invoice
from arsync.queries import local_today, money
from arsync.sandbox._http import SandboxServer
from arsync.syncing import sync_all

QBO_COMPANIES = [("9130357766342571", "Cypress Hill Landscaping", "US", "USD")]
XERO_ORGS = [("6b0a5d34-2a4c-4b7e-9d43-6fb1f1d3e001", "Kauri Joinery Ltd", "NZ", "NZD",
              "NEWZEALANDSTANDARDTIME"),
             ("6b0a5d34-2a4c-4b7e-9d43-6fb1f1d3e002", "Thames Print Works", "GB", "GBP",
              "GMTSTANDARDTIME")]


#: How the simulated weeks are walked: a pass every few hours, so every company's office
#: hours (09:00-17:00 in its own time zone) see at least one pass a day.
TICK = timedelta(hours=3)


def run_demo(base: Settings, *, web: bool = True, weeks: int = 4) -> dict[str, Any]:
    """Start the sandboxes, connect every company, sync, then live ``weeks`` simulated weeks."""
    from arsync.sandbox.quickbooks import QuickBooksSandbox

    home = base.home / "demo"
    shutil.rmtree(home, ignore_errors=True)  # each demo tells the story from the start
    # The sandboxes and arsync share one simulated clock, so weeks pass in seconds.
    start = datetime.now().astimezone().replace(minute=0, second=0, microsecond=0)
    clock = SimClock(start)
    qbo = QuickBooksSandbox(clock=clock)
    for realm, name, country, currency in QBO_COMPANIES:
        qbo.add_company(realm, name=name, country=country, currency=currency, customers=60,
                        invoices=600, seed=2)
    servers = [SandboxServer(qbo)]
    qbo_url = servers[0].start()
    update: dict[str, Any] = {
        "home": home, "demo": True, "database_url": None,
        "quickbooks_client_id": "sandbox-qbo-client",
        "quickbooks_client_secret": "sandbox-qbo-secret",
        "quickbooks_api_url": qbo_url, "quickbooks_token_url": f"{qbo_url}/oauth2/v1/tokens/bearer",
        "quickbooks_auth_url": f"{qbo_url}/connect/oauth2",
        "quickbooks_revoke_url": f"{qbo_url}/oauth2/v1/tokens/revoke",
    }
    xero = None
    if importlib.util.find_spec("connectors.xero.connector") is not None:
        from arsync.sandbox.xero import XeroSandbox

        xero = XeroSandbox(clock=clock)
        for tenant, name, country, currency, tz in XERO_ORGS:
            xero.add_organisation(tenant, name=name, country=country, currency=currency,
                                  timezone=tz, contacts=40, invoices=400, seed=len(name))
        servers.append(SandboxServer(xero))
        xero_url = servers[-1].start()
        update.update({
            "xero_client_id": "sandbox-xero-client", "xero_client_secret": "sandbox-xero-secret",
            "xero_api_url": xero_url, "xero_token_url": f"{xero_url}/connect/token",
            "xero_auth_url": f"{xero_url}/identity/connect/authorize",
            "xero_revoke_url": f"{xero_url}/connect/revocation",
        })
    settings = Settings.model_validate({**base.model_dump(), **update})
    ctx = AppContext(settings, clock=clock)
    try:
        for realm, *_ in QBO_COMPANIES:
            connect_with_refresh_token(ctx, "quickbooks", qbo.mint_refresh_token(realm),
                                       tenant_id=realm)
        if xero is not None:
            connect_with_refresh_token(ctx, "xero",
                                       xero.mint_refresh_token([t[0] for t in XERO_ORGS]))
        reports = sync_all(ctx)
        summary = _summarise(ctx, reports)
        summary["story"] = _live(ctx, clock, qbo, xero, weeks)
        summary["lines"] += summary["story"]["lines"]
        summary["lines"] += [f"mirror: {settings.sqlalchemy_url}",
                             f"messages: {settings.outbox_dir}"]
        if web:  # the sandboxes stay up while the dashboard is served (connect flows use them)
            from arsync.cli_web import serve_demo

            serve_demo(ctx, summary["lines"])
            summary["lines"] = ["arsync demo: the dashboard has stopped"]
    finally:
        for server in servers:
            server.stop()
    return summary


def _summarise(ctx: AppContext, reports: list[dict[str, Any]]) -> dict[str, Any]:
    now = ctx.clock.now()
    lines = ["arsync demo: sandbox companies connected and mirrored", ""]
    out = []
    with Session(ctx.engine) as s:
        for conn in s.exec(select(Connection).order_by(Connection.id)):
            report = next(r for r in reports if r["connection_id"] == conn.id)
            today = local_today(conn, now)
            open_by_cur: dict[str, Decimal] = defaultdict(Decimal)
            overdue_by_cur: dict[str, Decimal] = defaultdict(Decimal)
            counts: dict[str, int] = defaultdict(int)
            for inv in s.exec(select(Invoice).where(Invoice.connection_id == conn.id)):
                counts[inv.status] += 1
                if inv.status == "open":
                    open_by_cur[inv.currency] += inv.balance
                    if inv.due_date and inv.due_date < today:
                        overdue_by_cur[inv.currency] += inv.balance
            entry = {"connection_id": conn.id, "provider": conn.provider, "name": conn.name,
                     "timezone": conn.timezone, "currency": conn.currency, "sync": report,
                     "invoices_by_status": dict(counts),
                     "open_balance": {c: money(v) for c, v in sorted(open_by_cur.items())},
                     "overdue_balance": {c: money(v) for c, v in sorted(overdue_by_cur.items())}}
            out.append(entry)
            lines.append(f"#{conn.id} {conn.provider} · {conn.name} ({conn.timezone}, "
                         f"{conn.currency})")
            lines.append(f"   synced {report['customers']} customers, {report['invoices']} "
                         f"invoices, {report['payments']} payments, {report['credit_notes']} "
                         f"credit notes in {report['api_calls']} API calls")
            lines.append("   invoices: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
            lines.append("   open: "
                         + ", ".join(f"{c} {v}" for c, v in entry["open_balance"].items())
                         + " · overdue: "
                         + ", ".join(f"{c} {v}" for c, v in entry["overdue_balance"].items()))
    return {"connections": out, "lines": lines}


def _live(ctx: AppContext, clock: SimClock, qbo: Any, xero: Any, weeks: int) -> dict[str, Any]:
    """Walk simulated time: run the loop every TICK; some reminded customers pay in the books."""
    from arsync.passes import run_all

    rng = random.Random(42)
    end = clock.now() + timedelta(weeks=weeks)
    lines = ["", f"{weeks} simulated weeks of reminders (a pass every {TICK}):"]
    paid_after_reminder = 0
    seen: set[int] = set()
    by_stage: Counter[str] = Counter()
    while clock.now() < end:
        run_all(ctx, clock.now())
        with Session(ctx.engine) as s:
            fresh = [a for a in s.exec(select(Action).where(Action.status == "sent"))
                     if a.id not in seen]
            conns = {c.id: c for c in s.exec(select(Connection))}
        for action in sorted(fresh, key=lambda a: (a.sent_at or clock.now(), a.id or 0)):
            seen.add(action.id or 0)
            conn = conns[action.connection_id]
            invoices = json.loads(action.invoice_ids_json)
            by_stage[action.stage] += 1
            when = (action.sent_at or clock.now()).astimezone(ZoneInfo(conn.timezone))
            lines.append(f"  {when:%a %d %b %H:%M} {conn.name[:24]:<24} {action.stage:<12} "
                         f"{action.channel:<6} → {action.recipient or '?'} "
                         f"({len(invoices)} invoice{'s' * (len(invoices) != 1)})")
            # A share of reminded customers pay within the next days, in the books themselves;
            # the next pass's freshness sync sees it and nothing more is sent for those.
            if rng.random() < 0.4:
                for invoice_id in invoices:
                    _pay(conn, invoice_id, qbo, xero)
                paid_after_reminder += len(invoices)
        clock.advance(TICK)
    lines.append("  sent by stage: " + ", ".join(f"{k} {v}" for k, v in sorted(by_stage.items())))
    lines.append(f"  invoices paid after a reminder: {paid_after_reminder}")
    notes = _notes_written(ctx, qbo, xero, lines)
    return {"messages_by_stage": dict(by_stage), "paid_after_reminder": paid_after_reminder,
            "notes": notes, "lines": lines}


def _notes_written(ctx: AppContext, qbo: Any, xero: Any, lines: list[str]) -> dict[str, Any]:
    """Notes written back per connection, and one invoice's notes read from its sandbox."""
    from arsync.models_notes import NoteJob

    out: dict[str, Any] = {}
    with Session(ctx.engine) as s:
        for conn in s.exec(select(Connection).order_by(Connection.id)):
            jobs = list(s.exec(select(NoteJob).where(NoteJob.connection_id == conn.id)))
            by_status = Counter(j.status for j in jobs)
            done = [j for j in jobs if j.status == "done"]
            sample: list[str] = []
            if done:
                inv = Counter(j.invoice_external_id for j in done).most_common(1)[0][0]
                if conn.provider == "quickbooks":
                    note = qbo.get(conn.tenant_id, "Invoice", inv).get("PrivateNote") or ""
                    sample = [ln for ln in note.splitlines() if "[ar:" in ln]
                elif xero is not None:
                    sample = [r["Details"] for r in xero.history(conn.tenant_id, inv)
                              if r["Changes"] == "Note"]
                lines.append(f"  notes on {conn.name}: {by_status.get('done', 0)} written, "
                             f"{by_status.get('failed', 0)} failed; invoice {inv} carries:")
                lines.extend(f"    {text}" for text in sample[:3])
            out[str(conn.id)] = {"written": by_status.get("done", 0),
                                 "failed": by_status.get("failed", 0),
                                 "pending": by_status.get("pending", 0), "sample": sample}
    return out


def _pay(conn: Connection, invoice_id: str, qbo: Any, xero: Any) -> None:
    try:
        if conn.provider == "quickbooks":
            qbo.record_payment(conn.tenant_id, invoice_id)
        elif xero is not None:
            xero.record_payment(conn.tenant_id, invoice_id)
    except Exception:
        return
