"""The payer's self-service page, minus HTTP: what a link may see, and what its answers record.

A payer reaches the page through a signed, expiring link (:mod:`arsync.links`) naming one customer
of one connection; they see only that customer's open invoices. Their three answers go through the
same functions people use (:mod:`arsync.work`), so the rules, the ledger and the note write-back
treat them exactly like a promise or dispute a person typed in:

1. validate everything first (a bad answer changes nothing);
2. in one transaction, record the :class:`PayerRequest` (its unique ``submission_key`` makes a
   re-submitted form a no-op) and the promise / dispute rows, which mark the customer for review;
3. after the commit, re-check the customer's pending messages at once
   (:func:`arsync.outbox.recheck_planned`), so a reminder planned before the answer is cancelled
   now, not at its send time.

There is no session on this page, so forms are protected by a token bound to the link: an HMAC
over the link token, the form's kind and a per-render nonce (see :func:`form_token`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from arsync.context import AppContext
from arsync.errors import InputError
from arsync.ledger import mark_for_review
from arsync.links import InvalidLinkError, PayerRef, verify
from arsync.models import Connection, Customer, Dispute, Invoice, InvoiceOverride, Promise
from arsync.models_payer import PayerOptOut, PayerRequest
from arsync.queries import local_today
from arsync.render import usable_locale

#: A promise further out than this is not a promise to pay but a request for a plan.
PROMISE_HORIZON = timedelta(days=90)
#: How long a rendered form may be submitted (a tab left open over a weekend still works).
FORM_MAX_AGE = timedelta(days=3)
#: A plan request pauses chasing of its invoices this long, so a person can answer first; a
#: further request within :data:`PLAN_PAUSE_ONCE_PER` pauses nothing more (no endless pausing).
PLAN_PAUSE = timedelta(days=7)
PLAN_PAUSE_ONCE_PER = timedelta(days=60)
MAX_TEXT = 2000
MIN_INSTALMENTS, MAX_INSTALMENTS = 2, 24
KINDS = ("promise", "dispute", "plan", "unsubscribe")
CENT = Decimal("0.01")


class PageGoneError(InvalidLinkError):
    """A genuine link that has expired (HTTP 410); still says nothing about whose it was."""


class FormTokenError(InputError):
    """The form's anti-forgery token is missing, altered, for another link, or too old."""


class TooManyRequestsError(InputError):
    """Too many submissions through one link in a short time."""


# -- the link and what it may see -------------------------------------------------------------


def resolve_link(secret_key: str, token: str, now: datetime) -> PayerRef:
    """The reference behind ``token``; :class:`PageGoneError` when genuine but expired, else
    :class:`InvalidLinkError` (tampered, malformed, unknown)."""
    try:
        return verify(secret_key, token, now=now)
    except InvalidLinkError:
        pass
    try:  # signed by us but past its expiry? (checked as of the epoch, so expiry cannot bite)
        verify(secret_key, token, now=datetime.fromtimestamp(0, tz=UTC))
    except InvalidLinkError:
        raise InvalidLinkError("this link is not valid") from None
    raise PageGoneError("this link has expired")


def unsubscribe_ref(secret_key: str, token: str) -> PayerRef:
    """The reference of a genuine link, expired or not: an unsubscribe link in an old message
    must keep working (RFC 8058), and opting out reveals nothing and can only reduce mail."""
    try:
        return verify(secret_key, token, now=datetime.fromtimestamp(0, tz=UTC))
    except InvalidLinkError:
        raise InvalidLinkError("this link is not valid") from None


@dataclass(frozen=True)
class PayerInvoice:
    """One open invoice as the payer sees it."""

    external_id: str
    number: str
    currency: str
    total: Decimal
    balance: Decimal
    issue_date: date | None
    due_date: date | None
    pay_url: str | None
    promised_on: date | None
    disputed: bool


@dataclass(frozen=True)
class PayerView:
    """Everything the page shows for one link."""

    connection_id: int
    customer_external_id: str
    company_name: str
    customer_name: str
    locale: str
    today: date
    invoices: tuple[PayerInvoice, ...]
    opted_out: bool
    plan_requested: bool

    def invoice(self, external_id: str) -> PayerInvoice | None:
        return next((i for i in self.invoices if i.external_id == external_id), None)


def load_view(session: Session, ref: PayerRef, now: datetime) -> PayerView:
    """The customer's open invoices; :class:`InvalidLinkError` when the link names nothing live
    (connection gone or disconnected, customer deleted) — the page then reveals nothing."""
    conn = session.get(Connection, ref.connection_id)
    if conn is None or conn.status == "disconnected":
        raise InvalidLinkError("this link is not valid")
    customer = session.scalar(select(Customer).where(
        Customer.connection_id == conn.id, Customer.external_id == ref.customer_external_id))
    if customer is None or customer.deleted:
        raise InvalidLinkError("this link is not valid")
    cid, who = ref.connection_id, ref.customer_external_id
    rows = list(session.scalars(
        select(Invoice).where(Invoice.connection_id == cid, Invoice.customer_external_id == who,
                              Invoice.status == "open", Invoice.balance > 0)
        .order_by(Invoice.due_date, Invoice.external_id)))
    promised: dict[str, date] = {}
    for inv_id, on in session.execute(
            select(Promise.invoice_external_id, Promise.promised_on)
            .where(Promise.connection_id == cid, Promise.customer_external_id == who)
            .order_by(Promise.recorded_at, Promise.id)):
        promised[inv_id] = on  # the newest promise per invoice counts
    disputed = set(session.scalars(select(Dispute.invoice_external_id).where(
        Dispute.connection_id == cid, Dispute.customer_external_id == who,
        Dispute.resolved_at.is_(None))))  # type: ignore[union-attr]
    opted = session.get(PayerOptOut, (cid, who, "email")) is not None
    plan = session.scalar(select(PayerRequest.id).where(
        PayerRequest.connection_id == cid, PayerRequest.customer_external_id == who,
        PayerRequest.kind == "plan", PayerRequest.handled_at.is_(None)))  # type: ignore[union-attr]
    today = local_today(conn, now)
    return PayerView(
        connection_id=cid, customer_external_id=who, company_name=conn.name,
        customer_name=customer.name, locale=usable_locale(f"en_{conn.country}"), today=today,
        invoices=tuple(PayerInvoice(
            external_id=i.external_id, number=i.number or i.external_id, currency=i.currency,
            total=i.total, balance=i.balance, issue_date=i.issue_date, due_date=i.due_date,
            pay_url=i.pay_url, promised_on=(p if (p := promised.get(i.external_id)) and p >= today
                                            else None),
            disputed=i.external_id in disputed) for i in rows),
        opted_out=opted, plan_requested=plan is not None)


# -- forms: anti-forgery without a session ------------------------------------------------------


def _form_key(secret_key: str) -> bytes:
    return hashlib.sha256(b"arsync-payer-form:" + secret_key.encode()).digest()


def new_nonce(now: datetime) -> str:
    """A fresh per-render nonce: issue time plus randomness (its age bounds the form's life)."""
    return f"{int(now.timestamp())}.{secrets.token_urlsafe(12)}"


def form_token(secret_key: str, link_token: str, kind: str, nonce: str) -> str:
    """The anti-forgery token of one rendered form: useless with another link, kind or nonce."""
    msg = f"{kind}\n{link_token}\n{nonce}".encode()
    return hmac.new(_form_key(secret_key), msg, hashlib.sha256).hexdigest()


def check_form(secret_key: str, link_token: str, kind: str, nonce: str, token: str,
               now: datetime) -> str:
    """Verify a submitted form; returns its submission key (the same for a re-submission)."""
    if kind not in KINDS or not nonce or not token or len(nonce) > 64 or len(token) > 128:
        raise FormTokenError("the form has expired; please reload the page and try again")
    if not hmac.compare_digest(form_token(secret_key, link_token, kind, nonce), token):
        raise FormTokenError("the form has expired; please reload the page and try again")
    try:
        issued = datetime.fromtimestamp(int(nonce.split(".", 1)[0]), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise FormTokenError("the form has expired; please reload the page") from None
    if not (now - FORM_MAX_AGE <= issued <= now + timedelta(minutes=5)):
        raise FormTokenError("the form has expired; please reload the page and try again")
    return hashlib.sha256(f"{kind}\n{link_token}\n{nonce}".encode()).hexdigest()


class RateLimiter:
    """At most ``limit`` submissions per key in any ``window`` (sliding; per process).

    Keys are digests of link tokens. One process serves a deployment's web app; behind several
    processes each counts alone, which still bounds what one link can do.
    """

    def __init__(self, limit: int = 10, window: timedelta = timedelta(minutes=10)) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: datetime) -> None:
        """Count one submission; :class:`TooManyRequestsError` once over the limit."""
        with self._lock:
            if len(self._hits) > 50_000:  # forget idle keys rather than grow without bound
                self._hits = {k: v for k, v in self._hits.items()
                              if v and v[-1] > now - self.window}
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                raise TooManyRequestsError(
                    "too many requests from this link; please wait a few minutes")
            hits.append(now)


def link_key(link_token: str) -> str:
    """The rate limiter's key for a link (the token itself is never kept)."""
    return hashlib.sha256(link_token.encode()).hexdigest()


# -- parsing what the payer typed ---------------------------------------------------------------


def pick_invoices(view: PayerView, choice: str | None) -> list[PayerInvoice]:
    """The invoices a form names: one external id, or ``all`` of the open ones."""
    if not view.invoices:
        raise InputError("there are no open invoices to answer about")
    if choice == "all":
        return list(view.invoices)
    inv = view.invoice(choice or "")
    if inv is None:
        raise InputError("please choose one of the invoices listed")
    return [inv]


def parse_promise_date(text: str | None, today: date) -> date:
    """A date after today and within :data:`PROMISE_HORIZON`."""
    try:
        on = date.fromisoformat((text or "").strip())
    except ValueError:
        raise InputError("please give the date you will pay by (YYYY-MM-DD)") from None
    if on <= today:
        raise InputError("the date you will pay by must be after today")
    if on > today + PROMISE_HORIZON:
        raise InputError(f"please choose a date within {PROMISE_HORIZON.days} days, or ask "
                         "for a payment plan instead")
    return on


def parse_amount(text: str | None, limit: Decimal | None) -> Decimal | None:
    """An optional positive amount in cents, at most ``limit`` (the balance)."""
    text = (text or "").strip().replace(",", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InputError("the amount must be a number, like 250.00") from None
    if not value.is_finite() or value <= 0:
        raise InputError("the amount must be more than zero")
    if value != value.quantize(CENT):
        raise InputError("the amount can have at most two decimal places")
    if limit is not None and value > limit:
        raise InputError("the amount cannot be more than the balance of the invoice")
    return value


def parse_text(text: str | None, what: str, *, required: bool) -> str:
    value = (text or "").strip()
    if required and not value:
        raise InputError(f"please tell us {what}")
    if len(value) > MAX_TEXT:
        raise InputError(f"please keep it under {MAX_TEXT} characters")
    return value


def parse_instalments(text: str | None) -> int:
    try:
        n = int((text or "").strip())
    except ValueError:
        raise InputError("please give the number of instalments you propose") from None
    if not MIN_INSTALMENTS <= n <= MAX_INSTALMENTS:
        raise InputError(f"a plan has between {MIN_INSTALMENTS} and {MAX_INSTALMENTS} "
                         "instalments")
    return n


# -- recording answers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What a submission did: ``created`` False means the same form was already recorded."""

    request_id: int
    created: bool


def _existing(session: Session, key: str) -> int | None:
    return session.scalar(select(PayerRequest.id).where(PayerRequest.submission_key == key))


def _record(ctx: AppContext, view: PayerView, kind: str, invoices: Sequence[PayerInvoice],
            details: dict[str, Any], key: str, now: datetime,
            apply: Callable[[Session, PayerRequest], None]) -> Recorded:
    """Steps 2 and 3 of the module docstring, for any kind of answer."""
    cid, who = view.connection_id, view.customer_external_id
    try:
        with Session(ctx.engine) as s, s.begin():
            found = _existing(s, key)
            if found is not None:
                return Recorded(found, created=False)
            row = PayerRequest(connection_id=cid, customer_external_id=who, kind=kind,
                               invoice_ids_json=json.dumps(sorted(i.external_id for i in invoices)),
                               details_json=json.dumps(details, default=str, sort_keys=True),
                               submission_key=key, created_at=now)
            s.add(row)
            s.flush()  # the unique key is checked here, before anything else is written
            apply(s, row)
            request_id = row.id or 0
    except IntegrityError:
        # The same form raced in twice: the other submission won and is the one recorded.
        with Session(ctx.engine) as s:
            found = _existing(s, key)
        if found is None:
            raise
        return Recorded(found, created=False)
    recheck(ctx, cid, [who], now)
    return Recorded(request_id, created=True)


def recheck(ctx: AppContext, connection_id: int, customers: Iterable[str], now: datetime) -> None:
    """Re-evaluate the customer's pending messages now (cancel what no longer applies)."""
    from arsync.outbox import recheck_planned

    recheck_planned(ctx, connection_id, list(customers), now)


def promise(ctx: AppContext, view: PayerView, *, choice: str | None, on_text: str | None,
            amount_text: str | None, key: str, now: datetime) -> Recorded:
    """The payer promises to pay one invoice (or all) by a date, optionally a set amount."""
    from arsync.work import record_promise

    invoices = pick_invoices(view, choice)
    on = parse_promise_date(on_text, view.today)
    if len(invoices) > 1 and (amount_text or "").strip():
        raise InputError("to promise part of the balance, choose one invoice")
    amount = parse_amount(amount_text, invoices[0].balance)

    def apply(s: Session, _: PayerRequest) -> None:
        for inv in invoices:
            record_promise(s, view.connection_id, inv.external_id, on=on, amount=amount, now=now)

    return _record(ctx, view, "promise", invoices,
                   {"date": on.isoformat(), "amount": amount}, key, now, apply)


def dispute(ctx: AppContext, view: PayerView, *, choice: str | None, reason: str | None,
            key: str, now: datetime) -> Recorded:
    """The payer disputes an invoice: chasing it stops until a person resolves it."""
    from arsync.work import open_dispute

    invoices = pick_invoices(view, choice)
    text = parse_text(reason, "what is wrong with the invoice", required=True)

    def apply(s: Session, _: PayerRequest) -> None:
        for inv in invoices:
            if not inv.disputed:  # one open dispute per invoice is enough
                open_dispute(s, view.connection_id, inv.external_id,
                             reason=f"payer: {text}", now=now)

    return _record(ctx, view, "dispute", invoices, {"reason": text}, key, now, apply)


def request_plan(ctx: AppContext, view: PayerView, *, choice: str | None,
                 instalments_text: str | None, proposal: str | None, key: str,
                 now: datetime) -> Recorded:
    """The payer asks for a payment plan: an open request for a person, and a short pause."""
    invoices = pick_invoices(view, choice)
    n = parse_instalments(instalments_text)
    text = parse_text(proposal, "your proposal", required=False)
    until = view.today + PLAN_PAUSE

    def apply(s: Session, row: PayerRequest) -> None:
        recent = s.scalar(select(PayerRequest.id).where(
            PayerRequest.connection_id == view.connection_id,
            PayerRequest.customer_external_id == view.customer_external_id,
            PayerRequest.kind == "plan", PayerRequest.submission_key != key,
            PayerRequest.created_at > now - PLAN_PAUSE_ONCE_PER))
        if recent is not None:
            return  # recorded for a person, but no second pause
        for inv in invoices:
            override = s.get(InvoiceOverride, (view.connection_id, inv.external_id))
            if override is None:
                override = InvoiceOverride(connection_id=view.connection_id,
                                           invoice_external_id=inv.external_id, updated_at=now)
            if override.paused_until is None or override.paused_until < until:
                override.paused_until = until  # extend a pause, never shorten a person's
                override.note = override.note or "payment plan requested on the payer page"
                override.updated_at = now
                s.add(override)
        row.details_json = json.dumps({**json.loads(row.details_json),
                                       "paused_until": until.isoformat()}, sort_keys=True)
        mark_for_review(s, view.connection_id, [view.customer_external_id])

    return _record(ctx, view, "plan", invoices, {"instalments": n, "proposal": text},
                   key, now, apply)


def unsubscribe(ctx: AppContext, connection_id: int, customer_external_id: str,
                now: datetime, channel: str = "email") -> bool:
    """Record the customer's opt-out from ``channel``; False when it was already recorded."""
    try:
        with Session(ctx.engine) as s, s.begin():
            if s.get(PayerOptOut, (connection_id, customer_external_id, channel)) is not None:
                return False
            if s.get(Connection, connection_id) is None:
                raise InvalidLinkError("this link is not valid")
            s.add(PayerOptOut(connection_id=connection_id,
                              customer_external_id=customer_external_id, channel=channel,
                              created_at=now))
            mark_for_review(s, connection_id, [customer_external_id])
    except IntegrityError:  # the same opt-out raced in twice: recorded once, by the other
        return False
    return True


def is_opted_out(session: Session, ref: PayerRef, channel: str = "email") -> bool:
    return session.get(PayerOptOut, (ref.connection_id, ref.customer_external_id,
                                     channel)) is not None


def opted_out(session: Session, connection_id: int, customer_ids: Iterable[str],
              channel: str = "email") -> set[str]:
    """Which of these customers asked for no more messages on ``channel`` (the outbox skips)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return set()
    return set(session.scalars(select(PayerOptOut.customer_external_id).where(
        PayerOptOut.connection_id == connection_id, PayerOptOut.channel == channel,
        PayerOptOut.customer_external_id.in_(ids))))  # type: ignore[attr-defined]
