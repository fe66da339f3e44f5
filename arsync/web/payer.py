"""The payer's self-service page, reached by a signed, expiring link in every message.

``GET /pay/{token}`` shows the customer's open invoices and three forms (promise, dispute, plan
request); each ``POST`` is checked (link, rate limit, link-bound form token, input) before
anything is recorded, then redirects back (POST/redirect/GET, so a refresh cannot post again;
a re-posted form is recorded once anyway). ``/pay/{token}/unsubscribe`` (what messages'
``List-Unsubscribe`` points to, RFC 8058 one-click included) and ``/unsubscribe/{token}`` (the
never-expiring token of :mod:`arsync.render_links`) record an email opt-out. A bad or expired
link gets a polite page that names nobody.

A link's token opens one customer's page, so it is a secret: it never leaves in a Referer, and
access logs (uvicorn's) get the path with the token redacted (:class:`RedactLinkTokens`).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from arsync import payer
from arsync.context import AppContext
from arsync.errors import InputError
from arsync.links import InvalidLinkError, PayerRef
from arsync.render_links import read_unsubscribe_token
from arsync.web.deps import get_ctx, templates

router = APIRouter()

_TOKEN_IN_PATH = re.compile(r"/(pay|unsubscribe)/[^/?#\s\"]+")


class RedactLinkTokens(logging.Filter):
    """Replaces link tokens in access-log records' arguments (uvicorn logs the request path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_PATH.sub(r"/\1/[redacted]", a) if isinstance(a, str)
                                else a for a in record.args)
        return True


_ACCESS_LOG = logging.getLogger("uvicorn.access")
if not any(isinstance(f, RedactLinkTokens) for f in _ACCESS_LOG.filters):
    # Logger filters survive uvicorn's dictConfig (it replaces handlers, not filters).
    _ACCESS_LOG.addFilter(RedactLinkTokens())

FORMS = ("promise", "dispute", "plan")
DONE = {
    "promise": "Thank you: your promise to pay is recorded. We will not send reminders for "
               "these invoices before that date.",
    "dispute": "Thank you: your dispute is recorded. We have stopped reminders for that invoice "
               "while someone looks into it.",
    "plan": "Thank you: your request for a payment plan is recorded. Someone will get in touch "
            "with you to agree it.",
}
#: The token in the address must never leave in a Referer (e.g. to the provider's pay page),
#: and the page must never be cached or indexed.
PRIVATE_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
                   "X-Robots-Tag": "noindex, nofollow"}


def _page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context["request"] = request
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(PRIVATE_HEADERS)
    return response


def _invalid(request: Request, exc: InvalidLinkError) -> HTMLResponse:
    """The polite dead end: nothing about the company, the customer or any amount."""
    gone = isinstance(exc, payer.PageGoneError)
    return _page(request, "payer_invalid.html", 410 if gone else 404, expired=gone)


def _limiter(request: Request) -> payer.RateLimiter:
    state = request.app.state
    if not hasattr(state, "payer_limiter"):
        state.payer_limiter = payer.RateLimiter()
    return state.payer_limiter  # type: ignore[no-any-return]


def _resolve(ctx: AppContext, token: str, now: datetime) -> tuple[PayerRef, payer.PayerView]:
    ref = payer.resolve_link(ctx.settings.require_secret_key(), token, now)
    with Session(ctx.engine) as s:
        return ref, payer.load_view(s, ref, now)


def _money(amount: Decimal, currency: str, locale: str) -> str:
    return format_currency(amount, currency, locale=locale)


def _rows(view: payer.PayerView) -> list[dict[str, Any]]:
    loc = view.locale
    return [{
        "id": i.external_id, "number": i.number, "pay_url": i.pay_url,
        "total": _money(i.total, i.currency, loc), "balance": _money(i.balance, i.currency, loc),
        "partly_paid": i.balance != i.total,
        "due": format_date(i.due_date, "medium", locale=loc) if i.due_date else "",
        "overdue": i.due_date is not None and i.due_date < view.today,
        "promised_on": format_date(i.promised_on, "medium", locale=loc) if i.promised_on else "",
        "disputed": i.disputed,
    } for i in view.invoices]


def _totals(view: payer.PayerView) -> list[str]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for inv in view.invoices:
        sums[inv.currency] += inv.balance  # never add two currencies together
    return [_money(v, c, view.locale) for c, v in sorted(sums.items())]


def _show(request: Request, ctx: AppContext, token: str, view: payer.PayerView, *,
          status: int = 200, error: str | None = None, error_form: str | None = None,
          done: str | None = None, values: dict[str, str] | None = None) -> HTMLResponse:
    secret = ctx.settings.require_secret_key()
    now = ctx.clock.now()
    forms = {}
    for kind in FORMS:
        nonce = payer.new_nonce(now)
        forms[kind] = {"nonce": nonce, "token": payer.form_token(secret, token, kind, nonce),
                       "action": f"/pay/{token}/{kind}"}
    return _page(request, "payer.html", status, view=view, rows=_rows(view),
                 totals=_totals(view), forms=forms, error=error, error_form=error_form,
                 done=DONE.get(done or ""), values=values or {},
                 today=view.today.isoformat(),
                 latest=(view.today + payer.PROMISE_HORIZON).isoformat(),
                 unsubscribe_url=f"/pay/{token}/unsubscribe")


@router.get("/pay/{token}", response_class=HTMLResponse)
def payer_page(request: Request, token: str, done: str | None = None) -> Response:
    """The customer's open invoices and the three answers they can give."""
    ctx = get_ctx(request)
    try:
        _, view = _resolve(ctx, token, ctx.clock.now())
    except InvalidLinkError as exc:
        return _invalid(request, exc)
    return _show(request, ctx, token, view, done=done)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


# -- unsubscribe ----------------------------------------------------------------------------------


def _unsubscribe_page(request: Request, ctx: AppContext, action: str, *, done: bool,
                      kind: str, token: str, status: int = 200,
                      error: str | None = None) -> HTMLResponse:
    now = ctx.clock.now()
    nonce = payer.new_nonce(now)
    return _page(request, "payer_unsubscribe.html", status, done=done, action=action,
                 nonce=nonce, error=error,
                 form_token=payer.form_token(ctx.settings.require_secret_key(), token, kind,
                                             nonce))


@router.get("/pay/{token}/unsubscribe", response_class=HTMLResponse)
def unsubscribe_form(request: Request, token: str) -> Response:
    """A confirm button (a GET must never unsubscribe: mail scanners follow links). Works for
    an expired link too: see :func:`arsync.payer.unsubscribe_ref`."""
    ctx = get_ctx(request)
    try:
        ref = payer.unsubscribe_ref(ctx.settings.require_secret_key(), token)
    except InvalidLinkError as exc:
        return _invalid(request, exc)
    with Session(ctx.engine) as s:
        done = payer.is_opted_out(s, ref)
    return _unsubscribe_page(request, ctx, f"/pay/{token}/unsubscribe", done=done,
                             kind="unsubscribe", token=token)


@router.post("/pay/{token}/unsubscribe", response_class=HTMLResponse)
async def unsubscribe_confirm(request: Request, token: str) -> Response:
    """Record the opt-out: the confirm button's form (checked like every form on the page), or
    RFC 8058 one-click (``List-Unsubscribe=One-Click`` from the mail provider, which cannot
    carry a form token: the signed link is the proof, and opting out can only reduce mail)."""
    ctx = get_ctx(request)
    now = ctx.clock.now()
    secret = ctx.settings.require_secret_key()
    try:
        ref = payer.unsubscribe_ref(secret, token)
    except InvalidLinkError as exc:
        return _invalid(request, exc)
    fields = await _form(request)
    action = f"/pay/{token}/unsubscribe"
    try:
        _limiter(request).hit(payer.link_key(token), now)
        if fields.get("List-Unsubscribe") != "One-Click":
            payer.check_form(secret, token, "unsubscribe", fields.get("nonce", ""),
                             fields.get("form_token", ""), now)
    except payer.TooManyRequestsError as exc:
        return _unsubscribe_page(request, ctx, action, done=False, kind="unsubscribe",
                                 token=token, status=429, error=str(exc))
    except payer.FormTokenError as exc:
        return _unsubscribe_page(request, ctx, action, done=False, kind="unsubscribe",
                                 token=token, status=403, error=str(exc))
    try:
        payer.unsubscribe(ctx, ref.connection_id, ref.customer_external_id, now)
    except InvalidLinkError as exc:
        return _invalid(request, exc)
    return _unsubscribe_page(request, ctx, action, done=True, kind="unsubscribe", token=token)


def _customer_ref(ctx: AppContext, token: str) -> tuple[int, str] | None:
    """``(connection id, customer)`` from a :mod:`arsync.render_links` token, or None."""
    ref = read_unsubscribe_token(ctx.settings.require_secret_key(), token)
    if ref is None:
        return None
    cid, sep, customer = ref.partition(":")
    if not sep or not cid.isdigit() or not customer:
        return None
    return int(cid), customer


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def list_unsubscribe_form(request: Request, token: str) -> Response:
    """The footer / ``List-Unsubscribe`` link: a confirm button, never an opt-out on GET."""
    ctx = get_ctx(request)
    if _customer_ref(ctx, token) is None:
        return _page(request, "payer_invalid.html", 404, expired=False)
    return _unsubscribe_page(request, ctx, f"/unsubscribe/{token}", done=False,
                             kind="unsubscribe", token=token)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def list_unsubscribe(request: Request, token: str) -> Response:
    """RFC 8058 one-click (body ``List-Unsubscribe=One-Click``, sent by the mail provider with
    no form token: the signed link is the proof) or the confirm button's form."""
    ctx = get_ctx(request)
    found = _customer_ref(ctx, token)
    if found is None:
        return _page(request, "payer_invalid.html", 404, expired=False)
    now = ctx.clock.now()
    fields = await _form(request)
    if fields.get("List-Unsubscribe") != "One-Click":
        try:
            payer.check_form(ctx.settings.require_secret_key(), token, "unsubscribe",
                             fields.get("nonce", ""), fields.get("form_token", ""), now)
        except payer.FormTokenError as exc:
            return _unsubscribe_page(request, ctx, f"/unsubscribe/{token}", done=False,
                                     kind="unsubscribe", token=token, status=403,
                                     error=str(exc))
    try:
        payer.unsubscribe(ctx, found[0], found[1], now)
    except InvalidLinkError:
        return _page(request, "payer_invalid.html", 404, expired=False)
    return _unsubscribe_page(request, ctx, f"/unsubscribe/{token}", done=True,
                             kind="unsubscribe", token=token)


# Registered last: ``/pay/{token}/unsubscribe`` above must match first.
@router.post("/pay/{token}/{kind}", response_class=HTMLResponse)
async def payer_answer(request: Request, token: str, kind: str) -> Response:
    """Record a promise, a dispute or a plan request (in that order of checks: link, rate,
    form token, input)."""
    ctx = get_ctx(request)
    now = ctx.clock.now()
    if kind not in FORMS:
        return _page(request, "payer_invalid.html", 404, expired=False)
    try:
        _, view = _resolve(ctx, token, now)
    except InvalidLinkError as exc:
        return _invalid(request, exc)
    fields = await _form(request)
    try:
        _limiter(request).hit(payer.link_key(token), now)
    except payer.TooManyRequestsError as exc:
        response = _show(request, ctx, token, view, status=429, error=str(exc), error_form=kind)
        response.headers["Retry-After"] = str(int(_limiter(request).window.total_seconds()))
        return response
    secret = ctx.settings.require_secret_key()
    try:
        key = payer.check_form(secret, token, kind, fields.get("nonce", ""),
                               fields.get("form_token", ""), now)
    except payer.FormTokenError as exc:
        return _show(request, ctx, token, view, status=403, error=str(exc), error_form=kind)
    try:
        if kind == "promise":
            payer.promise(ctx, view, choice=fields.get("invoice"), on_text=fields.get("date"),
                          amount_text=fields.get("amount"), key=key, now=now)
        elif kind == "dispute":
            payer.dispute(ctx, view, choice=fields.get("invoice"), reason=fields.get("reason"),
                          key=key, now=now)
        else:
            payer.request_plan(ctx, view, choice=fields.get("invoice"),
                               instalments_text=fields.get("instalments"),
                               proposal=fields.get("proposal"), key=key, now=now)
    except InputError as exc:
        return _show(request, ctx, token, view, status=400, error=str(exc), error_form=kind,
                     values={k: fields.get(k, "") for k in
                             ("invoice", "date", "amount", "reason", "instalments", "proposal")})
    response = RedirectResponse(f"/pay/{token}?done={kind}", status_code=303)
    response.headers.update(PRIVATE_HEADERS)
    return response
