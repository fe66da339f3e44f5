"""The outbox: due actions are re-checked, rendered, claimed, sent once, and recorded.

For each due ``planned`` message: make sure the mirror is fresh (an incremental sync when the
connection's last sync is older than ``freshness_minutes``), re-evaluate the customer against it,
build the message from the mirror (:mod:`arsync.compose`: templates, pay links, payer link), then
claim the action (``planned`` → ``sending``, committed), send it through its channel's
:class:`~arsync.message.Sender`, and record the outcome. A worker killed at any instant leaves
either a ``planned`` row (claimed by nobody: sent later) or a ``sending`` row whose claim expires;
recovery then asks the sender whether it went out. A sender that can tell (the ``.eml`` outbox:
the file exists or not) settles it; one that cannot (SMTP) turns it ``unknown`` for a person to
look at, and it is never sent again.

Outcomes: sent; refused for good (SMTP 5xx, invalid number) → ``failed`` with the reason;
temporary (4xx, network) → back to ``planned`` after a backoff with full jitter, ``failed`` after
``send_max_attempts``; outcome unknown (connection lost after the body went out) → ``unknown``.

**Freshness rule (the simplest correct one).** An action whose customer, re-evaluated right
before sending, would no longer get exactly that action (an invoice was paid, voided, disputed,
paused or promised; the send day passed; another invoice became due) is ``cancelled`` with the
reason, and the customer is marked for review: the next pass plans what is still due, covering
only the invoices that still need it (``cancelled`` never blocks a new plan).
:func:`recheck_planned` applies the same rule without sending (webhooks, the payer page).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import random
import socket
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from arsync.compose import (
    EMAIL_CHANNELS,
    Draft,
    company_locale,
    compose_message,
    customer_context,
    invoice_lines,
    sender_address,
)
from arsync.context import AppContext
from arsync.errors import ArsyncError, ConfigError
from arsync.ledger import (
    IllegalTransitionError,
    claim,
    finish,
    ledger_key,
    mark_for_review,
    transition,
)
from arsync.links import payer_url
from arsync.mailer import MailerSender, mailer_for
from arsync.message import (
    OutcomeUnknownError,
    OutgoingMessage,
    Sender,
    SendError,
    TransientSendError,
)
from arsync.models import Action, Connection, Invoice
from arsync.models_payer import PayerOptOut
from arsync.render import RenderError
from arsync.render_context import CompanyCtx
from arsync.render_overrides import DbTemplateStore
from arsync.views import CustomerBundle, company_of, load_bundles, policy_for, recipient_for
from connectors.retry import RetryPolicy
from rules import Decision, PlannedAction, evaluate_customer

log = logging.getLogger(__name__)

__all__ = ["DrainReport", "OutgoingMessage", "Sender", "drain_outbox", "recheck_planned",
           "senders_for"]


def _optional(module: str, name: str) -> Any:
    """``module.name`` if that module exists yet, else None (channels other helpers add)."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None


def senders_for(ctx: AppContext) -> dict[str, Sender]:
    """One sender per configured channel; a channel missing here is left ``planned``, said why.

    ``email``: SMTP when ``ARSYNC_SMTP_URL`` is set, else the ``.eml`` outbox. ``sms``: only when
    an SMS account is configured. ``provider_email``: QuickBooks'/Xero's own invoice email.
    """
    senders: dict[str, Sender] = {"email": MailerSender(mailer_for(ctx.settings), ctx.clock)}
    sms = _optional("arsync.sms", "SmsSender")
    if sms is not None and getattr(ctx.settings, "sms_account_sid", None):
        senders["sms"] = sms(ctx)
    provider = _optional("arsync.provider_email", "ProviderEmailSender")
    if provider is not None:
        senders["provider_email"] = provider(ctx)
    return senders


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


def retry_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> timedelta:
    """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))] (AWS's backoff advice), so
    many actions refused by one busy server do not all come back at the same instant."""
    return timedelta(seconds=RetryPolicy(base=base, cap=cap).backoff(attempt - 1, rng))


_RNG = random.SystemRandom()


@dataclass(frozen=True)
class Channels:
    """The sender of each channel; ``fallback`` (a test's single sender) serves every channel."""

    by_channel: Mapping[str, Sender]
    fallback: Sender | None = None

    def get(self, channel: str) -> Sender | None:
        return self.by_channel.get(channel, self.fallback)


def recover_expired(ctx: AppContext, now: datetime, senders: Channels,
                    report: DrainReport, connection_id: int | None = None) -> None:
    """Settle ``sending`` actions whose claim expired: ask the sender, else mark ``unknown``."""
    with Session(ctx.engine) as s:
        q = select(Action).where(Action.status == "sending", Action.claim_expires_at < now)
        if connection_id is not None:
            q = q.where(Action.connection_id == connection_id)
        stale = list(s.scalars(q))
    for row in stale:
        sender = senders.get(row.channel)
        probe = OutgoingMessage(row.id or 0, row.message_id or "", row.channel,
                                row.recipient or "", "", "", "", connection_id=row.connection_id,
                                invoice_external_ids=tuple(json.loads(row.invoice_ids_json)),
                                idempotency_key=row.idempotency_key)
        delivered: bool | None = None
        if sender is not None and row.message_id:
            try:
                delivered = sender.outcome(probe)
            except Exception:  # a sender that fails to answer cannot tell either
                log.exception("outcome check of action %s failed", row.id)
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
                 senders: Mapping[str, Sender] | None = None, connection_id: int | None = None,
                 owner: str | None = None, limit: int | None = None,
                 rng: random.Random | None = None) -> DrainReport:
    """Send every message action due at ``now`` (once), after the freshness re-check.

    ``sender`` (one for every channel, e.g. a test's) or ``senders`` (by channel) replace the
    configured ones (:func:`senders_for`). ``rng`` draws the retry backoff.
    """
    channels = Channels(senders if senders is not None
                        else {} if sender is not None else senders_for(ctx), sender)
    owner = owner or worker_id()
    report = DrainReport()
    email = channels.get("email")
    if isinstance(email, MailerSender):
        email.sweep()
    recover_expired(ctx, now, channels, report, connection_id)
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
            _drain_connection(ctx, cid, rows, now, _Run(channels, owner, rng or _RNG, report))
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


# -- the freshness re-check ------------------------------------------------------------------


@dataclass
class _Rechecked:
    """Actions that still hold (with the rules' current plan for each), and what was cancelled."""

    keep: list[tuple[Action, PlannedAction, CustomerBundle]] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)


def _recheck(ctx: AppContext, conn: Connection, rows: list[Action], now: datetime,
             expect: frozenset[str]) -> _Rechecked:
    """Re-evaluate each row's customer on the mirror as it is now; cancel what no longer holds.

    A message holds when the rules, leaving these rows out of the history, would plan exactly
    it again (same idempotency key). A task (work for a person) holds while any of its invoices
    is still open: a changed plan is no reason to drop a call someone is about to make.
    """
    cid = conn.id or 0
    policy, company = policy_for(conn), company_of(conn)
    customers = sorted({r.customer_external_id for r in rows})
    with Session(ctx.engine) as s:
        bundles = load_bundles(s, conn, customers)
    out = _Rechecked()
    for customer_id in customers:
        mine = [r for r in rows if r.customer_external_id == customer_id]
        bundle = bundles.get(customer_id)
        decision: Decision | None = None
        if bundle is not None:
            decision = evaluate_customer(bundle.customer, bundle.invoices,
                                         bundle.history(without=(r.id or 0 for r in mine)),
                                         policy, company, now=now)
        still = {ledger_key(cid, a): a for a in decision.actions} if decision else {}
        open_ids = {i.external_id for i in bundle.invoices} if bundle else set()
        for row in mine:
            planned = still.get(row.idempotency_key)
            if bundle is not None and planned is not None and row.kind == "message":
                out.keep.append((row, planned, bundle))
                continue
            if row.kind != "message" and open_ids & set(json.loads(row.invoice_ids_json)):
                continue
            with Session(ctx.engine) as s, s.begin():
                try:
                    if transition(s, row.id or 0, "cancelled", now=now, expect=expect,
                                  reason=_why_cancelled(row, decision)):
                        out.cancelled.append(row.id or 0)
                except IllegalTransitionError:
                    pass  # another worker sent it meanwhile: its outcome stands
            out.touched.add(customer_id)
    return out


def recheck_planned(ctx: AppContext, connection_id: int, customer_ids: Iterable[str],
                    now: datetime) -> list[int]:
    """Cancel these customers' ``planned``/``awaiting_approval`` actions that no longer hold.

    The freshness re-check the outbox does before sending, run at once when news arrives (a
    webhook, a promise on the payer page) so a paid invoice is not chased in the meantime.
    Sends nothing; marks the customers for review so the next pass plans what is still due.
    Returns the ids cancelled.
    """
    ids = sorted(set(customer_ids))
    if not ids:
        return []
    conn = ctx.connection(connection_id)
    with Session(ctx.engine) as s:
        rows = list(s.scalars(
            select(Action).where(Action.connection_id == connection_id,
                                 Action.customer_external_id.in_(ids),
                                 Action.status.in_(["planned", "awaiting_approval"]))
            .order_by(Action.id)))
    if not rows:
        return []
    result = _recheck(ctx, conn, rows, now, frozenset({"planned", "awaiting_approval"}))
    if result.touched:
        with Session(ctx.engine) as s, s.begin():
            mark_for_review(s, connection_id, result.touched)
    return result.cancelled


# -- building and sending ---------------------------------------------------------------------


@dataclass
class _Run:
    senders: Channels
    owner: str
    rng: random.Random
    report: DrainReport


def _pay_links(ctx: AppContext, conn: Connection, invoice_ids: set[str]) -> dict[str, str | None]:
    """Cached provider pay links; fetched once (``arsync.paylinks``) where that exists.

    A failure here never blocks a message: it renders without the link and says how to pay.
    """
    if not invoice_ids:
        return {}
    with Session(ctx.engine) as s:
        links: dict[str, str | None] = {ext: url for ext, url in s.execute(
            select(Invoice.external_id, Invoice.pay_url)
            .where(Invoice.connection_id == conn.id,
                   Invoice.external_id.in_(sorted(invoice_ids))))}
    ensure = _optional("arsync.paylinks", "ensure_pay_links")
    if ensure is not None:
        try:
            links.update(ensure(ctx, conn, sorted(invoice_ids)))
        except Exception as exc:
            log.warning("pay links for connection %s unavailable (%s: %s); sending without",
                        conn.id, exc.__class__.__name__, exc)
    return links


def _opted_out(ctx: AppContext, cid: int, customers: Iterable[str]) -> set[str]:
    """Customers who unsubscribed from email on their payer page."""
    with Session(ctx.engine) as s:
        return set(s.scalars(select(PayerOptOut.customer_external_id).where(
            PayerOptOut.connection_id == cid, PayerOptOut.channel == "email",
            PayerOptOut.customer_external_id.in_(sorted(set(customers))))))


def _payer_link(ctx: AppContext, cid: int, customer_id: str, now: datetime) -> str | None:
    try:
        return payer_url(ctx.settings, cid, customer_id, now=now)
    except ConfigError as exc:  # no secret key: the message still goes, without the page link
        log.warning("no payer link in messages: %s", exc)
        return None


def _drain_connection(ctx: AppContext, cid: int, rows: list[Action], now: datetime,
                      run: _Run) -> None:
    report = run.report
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
    checked = _recheck(ctx, conn, rows, now, frozenset({"planned"}))
    report.cancelled.extend(checked.cancelled)
    touched = set(checked.touched)
    links = _pay_links(ctx, conn, {i for _, a, _ in checked.keep
                                   for i in a.invoice_external_ids})
    unsubscribed = _opted_out(ctx, cid, (r.customer_external_id for r, _, _ in checked.keep))
    overrides = DbTemplateStore(ctx.engine, ctx.clock).overrides(str(cid))
    company = CompanyCtx(conn.name, None, None, company_locale(conn.country))
    mail_from = sender_address(ctx.settings.mail_from, conn.name, conn.tenant_id)
    for row, planned, bundle in checked.keep:
        sender = run.senders.get(row.channel)
        if sender is None:
            _hold(ctx, row, now, f"no sender is configured for channel {row.channel!r}; "
                                 "it waits until one is", report)
            continue
        if row.channel in EMAIL_CHANNELS and row.customer_external_id in unsubscribed:
            _cancel(ctx, row, now, "the customer unsubscribed from email", report)
            touched.add(row.customer_external_id)
            continue
        recipient = recipient_for(bundle, planned.invoice_external_ids, row.channel)
        if not recipient:
            what = "phone number" if row.channel == "sms" else "email address"
            _fail(ctx, row, now, f"no {what} for customer {row.customer_external_id}", report)
            touched.add(row.customer_external_id)
            continue
        views = {i.external_id: i for i in bundle.invoices}
        draft = Draft(row.id or 0, row.idempotency_key, cid, row.channel, row.template,
                      row.stage, row.tone, recipient, mail_from,
                      conn.reply_to or ctx.settings.mail_reply_to,
                      row.local_date, tuple(planned.invoice_external_ids))
        try:
            message = compose_message(
                draft, company=company,
                customer=customer_context(bundle.customer.name, None),
                invoices=invoice_lines((views[i] for i in planned.invoice_external_ids),
                                       today=row.local_date, pay_urls=links),
                payer_link=_payer_link(ctx, cid, row.customer_external_id, now),
                overrides=overrides)
        except RenderError as exc:
            _fail(ctx, row, now, f"could not render the message: {exc}", report)
            touched.add(row.customer_external_id)
            continue
        if not _send_one(ctx, row, message, now, sender, run):
            touched.add(row.customer_external_id)
    if touched:
        with Session(ctx.engine) as s, s.begin():
            mark_for_review(s, cid, touched)


def _hold(ctx: AppContext, row: Action, now: datetime, reason: str, report: DrainReport) -> None:
    """Leave it ``planned``, saying why (never silently dropped)."""
    with Session(ctx.engine) as s, s.begin():
        s.execute(update(Action).where(Action.id == row.id, Action.status == "planned")
                  .values(status_reason=reason, updated_at=now))
    report.skipped.append(row.id or 0)
    report.errors.append(f"action {row.id}: {reason}")


def _cancel(ctx: AppContext, row: Action, now: datetime, reason: str,
            report: DrainReport) -> None:
    with Session(ctx.engine) as s, s.begin():
        try:
            if transition(s, row.id or 0, "cancelled", now=now, expect={"planned"},
                          reason=reason):
                report.cancelled.append(row.id or 0)
        except IllegalTransitionError:
            pass


def _fail(ctx: AppContext, row: Action, now: datetime, reason: str, report: DrainReport) -> None:
    with Session(ctx.engine) as s, s.begin():
        try:
            if transition(s, row.id or 0, "failed", now=now, expect={"planned"}, reason=reason):
                report.failed.append(row.id or 0)
        except IllegalTransitionError:
            pass


def _send_one(ctx: AppContext, row: Action, message: OutgoingMessage, now: datetime,
              sender: Sender, run: _Run) -> bool:
    """Claim, send, record; True when it went out (or is settled or someone else has it)."""
    report, owner, settings = run.report, run.owner, ctx.settings
    lease = timedelta(seconds=settings.send_lease_seconds)
    if not claim(ctx.engine, row.id or 0, owner=owner, now=now, lease=lease,
                 message_id=message.message_id):
        return True  # another worker has it
    attempt = row.attempts + 1  # the claim counted this one
    try:
        sender.send(message)
    except SendError as exc:
        finish(ctx.engine, row.id or 0, "failed", owner=owner, now=now, reason=str(exc))
        report.failed.append(row.id or 0)
        return False
    except TransientSendError as exc:
        if attempt >= settings.send_max_attempts:
            finish(ctx.engine, row.id or 0, "failed", owner=owner, now=now,
                   reason=f"gave up after {attempt} attempts: {exc}")
            report.failed.append(row.id or 0)
            return False
        later = now + retry_delay(attempt, base=settings.send_retry_base_seconds,
                                  cap=settings.send_retry_cap_seconds, rng=run.rng)
        finish(ctx.engine, row.id or 0, "planned", owner=owner, now=now, planned_for=later,
               reason=f"attempt {attempt} failed, retrying after {later.isoformat()}: {exc}")
        report.retried.append(row.id or 0)
        return True
    except OutcomeUnknownError as exc:
        finish(ctx.engine, row.id or 0, "unknown", owner=owner, now=now,
               reason=f"{exc}; check with the customer, never re-sent")
        report.unknown.append(row.id or 0)
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
