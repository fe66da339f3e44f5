"""Ninety simulated days against the QuickBooks sandbox: the loop end to end.

One small company (three customers, four invoices), arsync and the sandbox on one SimClock, one
pass per simulated day at 10:00 New York time, a few payments along the way. The exact set of
messages is asserted: stage, customer, invoices and local date, no duplicates, nothing for paid
invoices, nothing on weekends or US holidays, at most one message per customer per day.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy import select
from sqlmodel import Session

from arsync.clock import SimClock
from arsync.config import Settings
from arsync.connect import connect_with_refresh_token
from arsync.context import AppContext
from arsync.models import Action
from arsync.passes import run_pass
from arsync.sandbox._http import SandboxServer
from arsync.sandbox.quickbooks import QuickBooksSandbox

REALM = "5550001112223334"
START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday, 10:00 in New York


def _settings(url: str, home: Path) -> Settings:
    return Settings(_env_file=None, home=home, secret_key="e" * 32,  # type: ignore[call-arg]
                    quickbooks_client_id="sandbox-qbo-client",
                    quickbooks_client_secret="sandbox-qbo-secret", quickbooks_api_url=url,
                    quickbooks_token_url=f"{url}/oauth2/v1/tokens/bearer",
                    quickbooks_revoke_url=f"{url}/oauth2/v1/tokens/revoke",
                    quickbooks_auth_url=f"{url}/connect/oauth2")


def test_ninety_days_of_the_loop_against_the_sandbox(tmp_path: Path) -> None:
    clock = SimClock(START)
    sandbox = QuickBooksSandbox(clock=clock)
    sandbox.add_company(REALM, name="Tiny Co", customers=3, invoices=0, seed=1)
    inv = {
        "A": sandbox.create_invoice(REALM, "1", Decimal("500.00"), due_date=date(2026, 1, 20)),
        "B1": sandbox.create_invoice(REALM, "2", Decimal("120.00"), due_date=date(2026, 1, 16)),
        "B2": sandbox.create_invoice(REALM, "2", Decimal("80.00"), due_date=date(2026, 1, 16)),
        "C": sandbox.create_invoice(REALM, "3", Decimal("300.00"), due_date=date(2026, 2, 2)),
    }
    name = {v: k for k, v in inv.items()}
    payments = {  # local date -> (invoice, amount or None for the whole balance)
        date(2026, 1, 26): [("A", None)],
        date(2026, 2, 5): [("C", Decimal("100.00"))],
        date(2026, 2, 12): [("C", None)],
    }
    with SandboxServer(sandbox) as server:
        ctx = AppContext(_settings(server.url, tmp_path), clock=clock)
        [conn] = connect_with_refresh_token(ctx, "quickbooks", sandbox.mint_refresh_token(REALM),
                                            tenant_id=REALM)
        assert conn.timezone == "America/New_York"
        for day in range(90):
            now = START + timedelta(days=day)
            clock.set(now)
            for invoice, amount in payments.get(now.date(), []):
                sandbox.record_payment(REALM, inv[invoice], amount)
            report = run_pass(ctx, conn.id or 0, now)  # the configured senders: .eml outbox
            assert "error" not in report, report
            assert report["synced"]  # a day-old mirror is always refreshed first

    with Session(ctx.engine) as s:
        rows = list(s.scalars(select(Action).order_by(Action.id)))
    messages = {(r.stage, r.customer_external_id,
                 tuple(sorted(name[i] for i in json.loads(r.invoice_ids_json))),
                 r.local_date.isoformat()) for r in rows if r.kind == "message"}
    assert messages == {
        ("due_soon", "2", ("B1", "B2"), "2026-01-13"),
        ("due_soon", "1", ("A",), "2026-01-20"),  # Sat 17th -> Mon 19th is MLK Day -> Tue
        ("overdue_1", "2", ("B1", "B2"), "2026-01-20"),
        ("overdue_1", "1", ("A",), "2026-01-21"),
        ("overdue_7", "2", ("B1", "B2"), "2026-01-23"),
        ("overdue_14", "2", ("B1", "B2"), "2026-01-30"),
        ("due_soon", "3", ("C",), "2026-01-30"),
        ("overdue_1", "3", ("C",), "2026-02-03"),
        ("overdue_7", "3", ("C",), "2026-02-09"),  # partly paid on the 5th: still chased
        ("plan_offer_60", "2", ("B1", "B2"), "2026-03-17"),
    }  # A paid on the 26th and C on the 12th: nothing after that for them
    tasks = {(r.stage, r.customer_external_id, r.local_date.isoformat(), r.status)
             for r in rows if r.kind == "task"}
    assert tasks == {("call_30", "2", "2026-02-17", "planned")}  # Sun 15th, Presidents' Day
    assert all(r.status == "sent" for r in rows if r.kind == "message")
    assert len(rows) == len(messages) + len(tasks)  # no duplicates, nothing cancelled

    us = holidays.country_holidays("US", years=2026)
    for r in rows:
        assert r.local_date.weekday() < 5
        assert r.local_date not in us
        if r.kind == "message":
            assert r.sent_at is not None
            sent_local = r.sent_at.astimezone(ZoneInfo(conn.timezone))
            assert sent_local.date() == r.local_date
            assert 9 <= sent_local.hour < 17
    per_day = Counter((r.customer_external_id, r.local_date) for r in rows if r.kind == "message")
    assert max(per_day.values()) == 1
    files = list(ctx.settings.outbox_dir.glob("*.eml"))
    assert len(files) == len(messages)
    texts = [_text_part(f) for f in files]
    assert any("North Works LLC" in t and "$200.00" in t
               for t in texts)  # the partial payment shows in the overdue_7 message
    assert all(f"{ctx.settings.public_url}/pay/" in t for t in texts)  # the payer page link


def _text_part(path: Path) -> str:
    msg = BytesParser(policy=default).parsebytes(path.read_bytes())
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())
