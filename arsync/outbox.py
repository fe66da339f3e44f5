"""The outbox: due actions are re-checked, claimed, sent once, and recorded.

For each due ``planned`` message: make sure the mirror is fresh (an incremental sync when the
connection's last sync is older than ``freshness_minutes``), re-evaluate the customer against it,
then claim the action (``planned`` → ``sending``, committed), send, and mark it ``sent``. A worker
killed at any instant leaves either a ``planned`` row (claimed by nobody: sent later) or a
``sending`` row whose claim expires; recovery then asks the sender whether it went out. A sender
that can tell (the ``.eml`` outbox: the file exists or not) settles it; one that cannot turns it
``unknown`` for a person to look at, and it is never sent again.

**Freshness rule (the simplest correct one).** An action whose customer, re-evaluated right
before sending, would no longer get exactly that action (an invoice was paid, voided, disputed,
paused or promised; the send day passed; another invoice became due) is ``cancelled`` with the
reason, and the customer is marked for review: the next pass plans what is still due, covering
only the invoices that still need it (``cancelled`` never blocks a new plan).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from arsync.context import AppContext
from arsync.errors import ArsyncError
from arsync.files import write_atomically
from arsync.ledger import (
    IllegalTransitionError,
    claim,
    finish,
    ledger_key,
    mark_for_review,
    transition,
)
from arsync.message import (
    OutgoingMessage,
    Sender,
    SendError,
    TransientSendError,
    message_id_for,
    render_interim,
)
from arsync.models import Action, Connection
from arsync.views import company_of, invoice_lookup, load_bundles, policy_for
from rules import Decision, evaluate_customer

log = logging.getLogger(__name__)


class EmlOutboxSender:
    """Writes each message as an ``.eml`` file named after its Message-ID (the local outbox).

    The file is written to a temporary name, fsynced and renamed into place, so it exists
    completely or not at all: "the file exists" means "sent", and a resend overwrites the same
    name instead of adding a second message.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, message: OutgoingMessage) -> Path:
        return self.directory / (message.message_id.strip("<>").split("@", 1)[0] + ".eml")

    def send(self, message: OutgoingMessage) -> None:
        write_atomically(self.path_for(message), _eml(message).encode("utf-8"))

    def outcome(self, message: OutgoingMessage) -> bool | None:
        return self.path_for(message).exists()

    def sweep(self, older_than: float = 3600) -> int:
        """Delete partial files a crash left behind (older than ``older_than`` seconds)."""
        import time

        removed = 0
        for part in self.directory.glob(".tmp-*.part"):
            try:
                if time.time() - part.stat().st_mtime > older_than:
                    part.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _eml(m: OutgoingMessage) -> str:
    return (f"Message-ID: {m.message_id}\nFrom: {m.mail_from}\nTo: {m.recipient}\n"
            f"Subject: {m.subject}\nX-Arsync-Action: {m.action_id}\nX-Arsync-Channel: {m.channel}\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" + m.body)


def default_sender(ctx: AppContext) -> Sender:
    """The sender the settings ask for (today: the local ``.eml`` outbox)."""
    return EmlOutboxSender(ctx.settings.outbox_dir)


@dataclass
class DrainReport:
    """What one drain did, by action id."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    synced: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}


def worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _mail_from(ctx: AppContext, conn: Connection) -> str:
    return ctx.settings.mail_from or f"accounts@{conn.tenant_id}.arsync.local"


def recover_expired(ctx: AppContext, now: datetime, sender: Sender, report: DrainReport,
                    connection_id: int | None = None) -> None:
    """Settle ``sending`` actions whose claim expired: ask the sender, else mark ``unknown``."""
    with Session(ctx.engine) as s:
        q = select(Action).where(Action.status == "sending", Action.claim_expires_at < now)
        if connection_id is not None:
            q = q.where(Action.connection_id == connection_id)
        stale = list(s.scalars(q))
    for row in stale:
        probe = OutgoingMessage(row.id or 0, row.message_id or message_id_for(row.idempotency_key),
                                row.channel, row.recipient or "", "", "", "")
        try:
            delivered = sender.outcome(probe)
        except Exception:  # a sender that fails to answer cannot tell either
            log.exception("outcome check of action %s failed", row.id)
            delivered = None
        owner = row.claim_owner or ""
        if delivered is True:
            ok = finish(ctx.engine, row.id or 0, "sent", owner=owner, now=now, sent_at=now,
                        reason="recovered after a crash: the outbox shows it was delivered")
            if ok:
                report.sent.append(row.id or 0)
        elif delivered is False:
            ok = finish(ctx.engine, row.id or 0, "planned", owner=owner, now=now,
                        reason="recovered after a crash: certainly not delivered; sent again")
            if ok:
                report.retried.append(row.id or 0)
        else:
            ok = finish(ctx.engine, row.id or 0, "unknown", owner=owner, now=now,
                        reason="the worker stopped mid-send and the sender cannot tell whether "
                               "it went out; check with the customer, never re-sent")
            if ok:
                report.unknown.append(row.id or 0)


def drain_outbox(ctx: AppContext, now: datetime, *, sender: Sender | None = None,
                 connection_id: int | None = None, owner: str | None = None,
                 limit: int | None = None) -> DrainReport:
    """Send every message action due at ``now`` (once), after the freshness re-check."""
    sender = sender or default_sender(ctx)
    owner = owner or worker_id()
    report = DrainReport()
    if isinstance(sender, EmlOutboxSender) and sender.directory.exists():
        sender.sweep()
    recover_expired(ctx, now, sender, report, connection_id)
    with Session(ctx.engine) as s:
        q = (select(Action).where(Action.status == "planned", Action.kind == "message")
             .where(Action.planned_for <= now).order_by(Action.planned_for, Action.id))
        if connection_id is not None:
            q = q.where(Action.connection_id == connection_id)
        if limit is not None:
            q = q.limit(limit)
        due = list(s.scalars(q))
    by_conn: dict[int, list[Action]] = defaultdict(list)
    for row in due:
        by_conn[row.connection_id].append(row)
    for cid, rows in by_conn.items():
        try:
            _drain_connection(ctx, cid, rows, now, sender, owner, report)
        except ArsyncError as exc:
            report.errors.append(f"connection {cid}: {exc}")
            log.error("drain of connection %s stopped: %s", cid, exc)
    return report


def is_stale(ctx: AppContext, conn: Connection, now: datetime) -> bool:
    """Whether the mirror is older than ``freshness_minutes`` (or was never synced)."""
    limit = timedelta(minutes=ctx.settings.freshness_minutes)
    return conn.last_synced_at is None or now - conn.last_synced_at > limit


def ensure_fresh(ctx: AppContext, conn: Connection, now: datetime) -> tuple[bool, str | None]:
    """Sync the connection when stale; returns (synced, error or None)."""
    from arsync.syncing import sync_one

    if not is_stale(ctx, conn, now):
        return False, None
    result = sync_one(ctx, conn)
    return True, (str(result["error"]) if result.get("error") else None)


def _drain_connection(ctx: AppContext, cid: int, rows: list[Action], now: datetime,
                      sender: Sender, owner: str, report: DrainReport) -> None:
    conn = ctx.connection(cid)
    if conn.status != "active":
        report.skipped.extend(r.id or 0 for r in rows)
        report.errors.append(f"connection {cid} is {conn.status}; nothing sent")
        return
    synced, error = ensure_fresh(ctx, conn, now)
    if error is not None:
        # Never send on a mirror we could not refresh: the actions wait for the next drain.
        report.skipped.extend(r.id or 0 for r in rows)
        report.errors.append(f"connection {cid}: freshness sync failed ({error}); nothing sent")
        return
    if synced:
        report.synced.append(cid)
    policy, company = policy_for(conn), company_of(conn)
    customers = sorted({r.customer_external_id for r in rows})
    with Session(ctx.engine) as s:
        bundles = load_bundles(s, conn, customers)
    touched: set[str] = set()
    for customer_id in customers:
        mine = [r for r in rows if r.customer_external_id == customer_id]
        bundle = bundles.get(customer_id)
        decision: Decision | None = None
        if bundle is not None:
            decision = evaluate_customer(bundle.customer, bundle.invoices,
                                         bundle.history(without=(r.id or 0 for r in mine)),
                                         policy, company, now=now)
        still = {ledger_key(cid, a): a for a in decision.messages} if decision else {}
        for row in mine:
            if row.idempotency_key not in still or bundle is None or decision is None:
                with Session(ctx.engine) as s, s.begin():
                    try:
                        if transition(s, row.id or 0, "cancelled", now=now, expect={"planned"},
                                      reason=_why_cancelled(row, decision)):
                            report.cancelled.append(row.id or 0)
                    except IllegalTransitionError:
                        pass  # another worker sent it meanwhile: its outcome stands
                touched.add(customer_id)
                continue
            views = invoice_lookup(bundle)
            message = render_interim(
                action_id=row.id or 0, message_id=message_id_for(row.idempotency_key),
                channel=row.channel, recipient=row.recipient or "",
                mail_from=_mail_from(ctx, conn), company=conn.name,
                customer=bundle.customer.name, tone=row.tone,
                invoices=[views[i] for i in still[row.idempotency_key].invoice_external_ids],
                today=row.local_date)
            if _send_one(ctx, row, message, now, sender, owner, report):
                continue
            touched.add(customer_id)
    if touched:
        with Session(ctx.engine) as s, s.begin():
            mark_for_review(s, cid, touched)


def _send_one(ctx: AppContext, row: Action, message: OutgoingMessage, now: datetime,
              sender: Sender, owner: str, report: DrainReport) -> bool:
    """Claim, send, record; True when it went out (or someone else has it)."""
    lease = timedelta(seconds=ctx.settings.send_lease_seconds)
    if not claim(ctx.engine, row.id or 0, owner=owner, now=now, lease=lease,
                 message_id=message.message_id):
        return True  # another worker has it
    try:
        sender.send(message)
    except SendError as exc:
        finish(ctx.engine, row.id or 0, "failed", owner=owner, now=now, reason=str(exc))
        report.failed.append(row.id or 0)
        return False
    except TransientSendError as exc:
        finish(ctx.engine, row.id or 0, "planned", owner=owner, now=now,
               reason=f"will retry: {exc}")
        report.retried.append(row.id or 0)
        return True
    except Exception as exc:
        # Outcome unknown: the claim stays, and recovery settles it once the lease expires.
        log.exception("sending action %s failed unexpectedly", row.id)
        report.errors.append(f"action {row.id}: sender crashed ({exc.__class__.__name__})")
        return True
    if finish(ctx.engine, row.id or 0, "sent", owner=owner, now=now, sent_at=now, reason=None):
        report.sent.append(row.id or 0)
    else:  # our claim expired mid-send and recovery settled it; say so, change nothing
        log.warning("action %s was sent, but its claim had expired and recovery already "
                    "settled it; check its status", row.id)
    return True


def _why_cancelled(row: Action, decision: Decision | None) -> str:
    import json

    if decision is None:
        return "the customer has no open invoices any more"
    ids = set(json.loads(row.invoice_ids_json))
    held = sorted(f"invoice {h.invoice_external_id} {h.code.replace('_', ' ')}"
                  for h in decision.held if h.invoice_external_id in ids
                  and h.code != "nothing_due")
    gone = sorted(ids - {h.invoice_external_id for h in decision.held}
                  - {i for a in decision.actions for i in a.invoice_external_ids})
    parts = held + [f"invoice {i} is no longer open" for i in gone]
    if decision.local_date != row.local_date:
        parts.append(f"its send day {row.local_date} has passed")
    if not parts:
        parts.append("the plan changed (re-evaluated before sending)")
    return "cancelled before sending: " + "; ".join(parts)
