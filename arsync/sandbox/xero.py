"""A local, stateful emulator of Xero's identity and Accounting APIs.

Serve it with :class:`~arsync.sandbox._http.SandboxServer` (or :func:`serve`) and point the
connector at it: accounting under ``{url}/api.xro/2.0``, connections at ``{url}/connections``,
OAuth at ``{url}/connect/token``, ``{url}/connect/revocation`` and
``{url}/identity/connect/authorize``. All time comes from the injected clock.

It is meant to be as strict as Xero, never more convenient. Where Xero's behaviour is not
documented the stricter reading is chosen; the choices are listed here and in the helper modules
(:mod:`.xero_oauth`, :mod:`.xero_limits`, :mod:`.xero_where`, :mod:`.xero_model`):

* ``GET /Invoices`` leaves DELETED invoices out unless ``Statuses`` names DELETED or ``where``
  filters on ``Status``; ``GET /Contacts`` leaves ARCHIVED contacts out unless
  ``includeArchived=true`` or ``where`` filters on ``ContactStatus`` (``IDs=`` alone does not
  bring either back). ``GET /Invoices/{id}`` returns any invoice.
* Paging happens only when ``page`` is given (``pageSize`` alone is ignored; ``summaryOnly=true``
  implies page 1). A paged response carries ``pagination`` (``itemCount`` = all matching
  records); an unpaged one does not, and unpaged invoice and credit note lists carry no
  ``LineItems``. ``pageSize`` defaults to 100 and is capped at 1000, not refused.
* Unpaged requests that would return more than 100,000 records, and ``where`` filters with OR
  against a collection of more than 100,000 records, are refused with 400 (Xero's "high volume
  threshold"; the message is the sandbox's own). ``HIGH_VOLUME_THRESHOLD`` sets the bound.
* A malformed ``If-Modified-Since``, ``page``, ``pageSize``, ``Statuses`` or ``IDs`` is a 400,
  not ignored. ``If-Modified-Since`` returns records with ``UpdatedDateUTC`` strictly later.
* Without ``Accept: application/json`` the answer is XML, as Xero's default is.
* A note (History) bumps the invoice's ``UpdatedDateUTC`` (unconfirmed in Xero), so a client
  sees its own notes come back as changes. Details longer than 250 characters are refused.
* ``Idempotency-Key`` (POST/PUT, 128 characters at most): the same key with the same request
  within 6 minutes replays the first response (a replay still counts against the rate limits);
  the same key with a different request is a 400.
* Missing a scope for an endpoint is ``401 AuthorizationUnsuccessful``; a tenant that is
  missing, unknown or not connected to the token's grant is ``403 AuthenticationUnsuccessful``.
* Emailing an invoice needs an approved ACCREC invoice and a contact with an email address;
  ``EMAIL_DAY_LIMIT`` (1000, a paying organisation's limit) emails per organisation per UTC day,
  then 400.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from arsync.clock import Clock, SystemClock
from arsync.sandbox import xero_json as wire
from arsync.sandbox._http import Request, Response, Router, SandboxServer
from arsync.sandbox.webhooks import XeroWebhooks
from arsync.sandbox.xero_api import AccountingEndpoints, Fail, Reply, bad
from arsync.sandbox.xero_limits import RateLimiter
from arsync.sandbox.xero_model import (
    SALES_ACCOUNT,
    CreditNote,
    LineItem,
    Organisation,
    XeroRuleError,
    money,
    new_id,
)
from arsync.sandbox.xero_oauth import DEFAULT_SCOPE, AccessToken, Identity, Unauthenticated
from arsync.sandbox.xero_seed import seed_books
from arsync.sandbox.xero_where import WhereError
from arsync.sandbox.xero_writes import changed_invoice, commit_invoice, new_invoice

API = r"/api\.xro/2\.0"
ID = r"(?P<id>[^/]+)"
_READ_INVOICES = frozenset({"accounting.transactions", "accounting.transactions.read",
                            "accounting.invoices", "accounting.invoices.read"})
_WRITE_INVOICES = frozenset({"accounting.transactions", "accounting.invoices"})
_READ_PAYMENTS = frozenset({"accounting.transactions", "accounting.transactions.read",
                            "accounting.payments", "accounting.payments.read"})
_WRITE_PAYMENTS = frozenset({"accounting.transactions", "accounting.payments"})
_READ_CONTACTS = frozenset({"accounting.contacts", "accounting.contacts.read"})
_READ_SETTINGS = frozenset({"accounting.settings", "accounting.settings.read"})
_EDIT_KEYS = {
    "due_date": "DueDate", "date": "Date", "reference": "Reference", "status": "Status",
    "invoice_number": "InvoiceNumber", "sent_to_contact": "SentToContact",
    "currency": "CurrencyCode", "currency_rate": "CurrencyRate", "line_items": "LineItems",
}


@dataclass
class _Fault:
    status: int
    remaining: int
    tenant_id: str | None
    after: bool


@dataclass
class _Replay:
    fingerprint: str
    reply: Reply
    expires: datetime


Handler = Callable[[Request, Organisation], Reply]


class XeroSandbox(AccountingEndpoints):
    """Several Xero organisations behind one app's client id, served over HTTP."""

    IDEMPOTENCY_TTL = timedelta(minutes=6)

    def __init__(self, *, clock: Clock | None = None, client_id: str = "sandbox-xero-client",
                 client_secret: str = "sandbox-xero-secret",  # noqa: S107 - a sandbox's own
                 rate_limits: bool = True,
                 day_limit: int = 5000, minute_limit: int = 60, concurrent_limit: int = 5,
                 app_minute_limit: int = 10_000, access_token_ttl: int = 1800) -> None:
        self.clock: Clock = clock or SystemClock()
        self._orgs: dict[str, Organisation] = {}
        self._lock = threading.RLock()
        self.identity = Identity(self.clock, client_id=client_id, client_secret=client_secret,
                                 access_token_ttl=access_token_ttl,
                                 tenants=lambda: {t: o.name for t, o in self._orgs.items()})
        self.limits = RateLimiter(self.clock, enabled=rate_limits, day_limit=day_limit,
                                  minute_limit=minute_limit, concurrent_limit=concurrent_limit,
                                  app_minute_limit=app_minute_limit)
        self.stats: dict[str, Any] = {"token_calls": 0, "connections_calls": 0}
        self._faults: list[_Fault] = []
        self._replays: dict[str, _Replay] = {}
        self._gate: threading.Event | None = None
        self._cache: dict[tuple[Any, ...], list[Any]] = {}
        self._router = self._routes()
        self.webhooks: XeroWebhooks | None = None  # see send_webhooks

    # ------------------------------------------------------------------ set-up
    def __call__(self, request: Request) -> Response:
        return self._router(request)

    def add_organisation(self, tenant_id: str, *, name: str, country: str = "GB",
                         currency: str = "GBP", timezone: str = "GMTSTANDARDTIME",
                         contacts: int = 200, invoices: int = 2000, seed: int = 1) -> None:
        """Create an organisation with seeded books (see :mod:`.xero_seed`).

        ``timezone`` is Xero's own enum value (``GMTSTANDARDTIME``, ``NEWZEALANDSTANDARDTIME``,
        ``AUSEASTERNSTANDARDTIME``, ``EASTERNSTANDARDTIME``...).
        """
        if not (len(country) == 2 and country.isalpha() and country.isupper()):
            raise ValueError(f"country must be an ISO 3166 alpha-2 code, not {country!r}")
        if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise ValueError(f"currency must be an ISO 4217 code, not {currency!r}")
        if not (timezone.isalpha() and timezone.isupper()):
            raise ValueError(f"timezone must be one of Xero's TimeZone values, not {timezone!r}")
        now = self.clock.now()
        org = Organisation(tenant_id, name=name, country=country, currency=currency,
                           timezone=timezone, created=now - timedelta(days=800))
        seed_books(org, contacts=contacts, invoices=invoices, seed=seed, now=now)
        with self._lock:
            if tenant_id in self._orgs:
                raise ValueError(f"organisation {tenant_id} already exists")
            self._orgs[tenant_id] = org
            self.stats[tenant_id] = {"api_calls": 0, "throttled": 0, "faults": 0, "notes": 0,
                                     "emails": 0}

    def organisation(self, tenant_id: str) -> Organisation:
        """The books of one organisation (for tests that need to look inside)."""
        try:
            return self._orgs[tenant_id]
        except KeyError:
            raise KeyError(f"no organisation {tenant_id}") from None

    def open_invoice_ids(self, tenant_id: str) -> list[str]:
        """Sales invoices with money still owed (AUTHORISED, AmountDue > 0), by number."""
        with self._lock:
            org = self.organisation(tenant_id)
            return [i.invoice_id for i in sorted(org.invoices.values(), key=lambda i: i.number)
                    if i.type == "ACCREC" and i.status == "AUTHORISED" and i.amount_due > 0]

    def mint_refresh_token(self, tenant_ids: list[str], *, scope: str = DEFAULT_SCOPE) -> str:
        """A refresh token for one grant that connects all of ``tenant_ids``."""
        return self.identity.mint_refresh_token(list(tenant_ids), scope)

    def authorize_code(self, tenant_ids: list[str], redirect_uri: str, *,
                       scope: str = DEFAULT_SCOPE, code_challenge: str | None = None) -> str:
        """An authorisation code, as if a person had consented for ``tenant_ids``."""
        return self.identity.authorize_code(list(tenant_ids), redirect_uri, scope=scope,
                                            code_challenge=code_challenge)

    def revoke(self, refresh_token: str) -> None:
        """The person disconnects the app: the grant and its connections end."""
        self.identity.revoke(refresh_token)

    def inject_faults(self, status: int, count: int, *, tenant_id: str | None = None,
                      after: bool = False) -> None:
        """The next ``count`` accounting calls (to ``tenant_id``, or any) answer ``status``.

        The body is Xero's problem shape (a 401 says ``TokenExpired``, a 403
        ``AuthenticationUnsuccessful``); a 429 carries ``Retry-After: 1`` (so that an SDK's own
        retry does not sleep long) and ``X-Rate-Limit-Problem: minute``.

        ``after=True``: the call takes effect first and then the response is lost (answered
        with ``status``), as when a write succeeds but the connection drops.
        """
        with self._lock:
            self._faults.append(_Fault(status, count, tenant_id, after))

    @contextmanager
    def holding_requests(self) -> Iterator[threading.Event]:
        """Accounting calls wait (keeping their concurrency slot) until the event is set or the
        block ends: to put several calls in flight at once."""
        gate = threading.Event()
        self._gate = gate
        try:
            yield gate
        finally:
            self._gate = None
            gate.set()

    def in_flight(self, tenant_id: str) -> int:
        return self.limits.in_flight(tenant_id)

    # ------------------------------------------------------------------ webhooks
    def send_webhooks(self, url: str, key: str, *, background: bool = True) -> XeroWebhooks:
        """Register a webhook (the intent-to-receive check runs now) and POST events to it."""
        if self.webhooks is not None:
            self.webhooks.stop()
        self.webhooks = XeroWebhooks(self, url, key, background=background)
        return self.webhooks

    def _changed(self) -> None:
        if self.webhooks is not None:
            self.webhooks.notify()

    # ------------------------------------------------------ a person in Xero
    def record_payment(self, tenant_id: str, invoice_id: str, amount: Decimal | None = None) -> str:
        """Record a payment (default: the whole amount due) today; returns the PaymentID."""
        with self._lock:
            org = self.organisation(tenant_id)
            inv = org.invoice(invoice_id)
            now = self._now()
            due = inv.amount_due if amount is None else Decimal(str(amount))
            return org.apply_payment(inv, due, on=now.date(), now=now).payment_id

    def delete_payment(self, tenant_id: str, payment_id: str) -> None:
        with self._lock:
            org = self.organisation(tenant_id)
            org.delete_payment(org.payments[payment_id], now=self._now())

    def void_invoice(self, tenant_id: str, invoice_id: str) -> None:
        """Void (only an AUTHORISED invoice without payments or credit, as in Xero)."""
        with self._lock:
            org = self.organisation(tenant_id)
            org.set_status(org.invoice(invoice_id), "VOIDED", now=self._now())

    def delete_invoice(self, tenant_id: str, invoice_id: str) -> None:
        """Delete (only a DRAFT or SUBMITTED invoice, as in Xero)."""
        with self._lock:
            org = self.organisation(tenant_id)
            org.set_status(org.invoice(invoice_id), "DELETED", now=self._now())

    def edit_invoice(self, tenant_id: str, invoice_id: str, **fields: Any) -> None:
        """Edit as a person would: ``due_date=``, ``reference=``, ``status=``, ``amount=`` (a
        single untaxed line of that total), ``contact_id=``... or Xero's own field names."""
        data: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "amount":
                data["LineItems"] = [{"Description": "Edited by sandbox", "Quantity": 1,
                                      "UnitAmount": Decimal(str(value)), "TaxType": "NONE"}]
            elif key == "contact_id":
                data["Contact"] = {"ContactID": value}
            elif key in _EDIT_KEYS:
                data[_EDIT_KEYS[key]] = value
            elif key[:1].isupper():
                data[key] = value
            else:
                raise TypeError(f"edit_invoice() got an unexpected field {key!r}")
        with self._lock:
            org = self.organisation(tenant_id)
            outcome = changed_invoice(org, org.invoice(invoice_id), data, now=self._now())
            if outcome.errors:
                raise XeroRuleError("; ".join(outcome.errors))
            commit_invoice(org, outcome)

    def create_invoice(self, tenant_id: str, contact_id: str, amount: Decimal, *, due_date: date,
                       currency: str | None = None, status: str = "AUTHORISED",
                       type: str = "ACCREC") -> str:
        """Create an invoice with one untaxed line, so that its Total is ``amount``."""
        data = {"Type": type, "Contact": {"ContactID": contact_id}, "Status": status,
                "DueDate": due_date, "CurrencyCode": currency,
                "LineItems": [{"Description": "Sandbox invoice", "Quantity": 1,
                               "UnitAmount": Decimal(str(amount)), "TaxType": "NONE"}]}
        with self._lock:
            org = self.organisation(tenant_id)
            outcome = new_invoice(org, data, now=self._now(), by_app=False)
            if outcome.errors:
                raise XeroRuleError("; ".join(outcome.errors))
            return commit_invoice(org, outcome).invoice_id

    def create_credit_note(self, tenant_id: str, contact_id: str, amount: Decimal, *,
                           currency: str | None = None) -> str:
        """An AUTHORISED ACCREC credit note with one untaxed line of ``amount``."""
        with self._lock:
            org = self.organisation(tenant_id)
            if contact_id not in org.contacts:
                raise XeroRuleError("Contact could not be found")
            now = self._now()
            total = money(amount)
            code = currency or org.currency
            note = CreditNote(new_id(), "ACCRECCREDIT", org.allocate_credit_note_number(), "",
                              contact_id, "AUTHORISED", code, org.rate_for(code), now.date(),
                              [LineItem(new_id(), "Credit", Decimal(1), total, SALES_ACCOUNT,
                                        "NONE", money(0), total)],
                              total, money(0), total, now)
            org.credit_notes[note.credit_note_id] = note
            org.touch(note, now)
            return note.credit_note_id

    def allocate_credit_note(self, tenant_id: str, credit_note_id: str, invoice_id: str,
                             amount: Decimal) -> None:
        with self._lock:
            org = self.organisation(tenant_id)
            now = self._now()
            org.allocate(org.credit_notes[credit_note_id], org.invoice(invoice_id),
                         Decimal(str(amount)), on=now.date(), now=now)

    def get(self, tenant_id: str, kind: str, id: str) -> dict[str, Any]:
        """A record as ``GET /{Kind}/{id}`` returns it, with money as Decimal."""
        with self._lock:
            org = self.organisation(tenant_id)
            plural = kind if kind.endswith("s") else kind + "s"
            render: dict[str, Callable[[], dict[str, Any]]] = {
                "invoices": lambda: wire.render_invoice(org, org.invoices[id], detail="full"),
                "contacts": lambda: wire.render_contact(org, org.contacts[id]),
                "payments": lambda: wire.render_payment(org, org.payments[id]),
                "creditnotes": lambda: wire.render_credit_note(org, org.credit_notes[id]),
            }
            try:
                body = render[plural.lower()]()
            except KeyError:
                raise KeyError(f"no {kind} {id} in organisation {tenant_id}") from None
        parsed: dict[str, Any] = json.loads(wire.dumps(body), parse_float=Decimal)
        return parsed

    def history(self, tenant_id: str, invoice_id: str) -> list[dict[str, Any]]:
        """An invoice's History records, newest first (notes have ``Changes == "Note"``)."""
        with self._lock:
            org = self.organisation(tenant_id)
            return wire.history_records(org, org.invoice(invoice_id))

    # ------------------------------------------------------------------ routes
    def _routes(self) -> Router:
        r = Router()
        r.add("POST", "/connect/token", self._count_token(self.identity.token_endpoint))
        r.add("POST", "/connect/revocation", self._count_token(self.identity.revocation_endpoint))
        r.add("GET", "/identity/connect/authorize", self.identity.authorize_endpoint)
        r.add("GET", "/connections", self._get_connections)
        r.add("DELETE", f"/connections/{ID}", self._delete_connection)
        api = self._api
        r.add("GET", f"{API}/Organisation", api(self._get_organisation, _READ_SETTINGS))
        r.add("GET", f"{API}/Contacts", api(self._list_contacts, _READ_CONTACTS))
        r.add("GET", f"{API}/Contacts/{ID}", api(self._get_contact, _READ_CONTACTS))
        r.add("GET", f"{API}/Invoices", api(self._list_invoices, _READ_INVOICES))
        r.add("PUT", f"{API}/Invoices", api(self._put_invoices, _WRITE_INVOICES))
        r.add("POST", f"{API}/Invoices", api(self._post_invoices, _WRITE_INVOICES))
        r.add("GET", f"{API}/Invoices/{ID}", api(self._get_invoice, _READ_INVOICES))
        r.add("POST", f"{API}/Invoices/{ID}", api(self._post_invoices, _WRITE_INVOICES))
        r.add("GET", f"{API}/Invoices/{ID}/OnlineInvoice",
              api(self._online_invoice, _READ_INVOICES))
        r.add("GET", f"{API}/Invoices/{ID}/History", api(self._get_history, _READ_INVOICES))
        r.add("PUT", f"{API}/Invoices/{ID}/History", api(self._add_history, _WRITE_INVOICES))
        r.add("POST", f"{API}/Invoices/{ID}/History", api(self._add_history, _WRITE_INVOICES))
        r.add("POST", f"{API}/Invoices/{ID}/Email", api(self._email_invoice, _WRITE_INVOICES))
        r.add("GET", f"{API}/Payments", api(self._list_payments, _READ_PAYMENTS))
        r.add("PUT", f"{API}/Payments", api(self._put_payments, _WRITE_PAYMENTS))
        r.add("POST", f"{API}/Payments", api(self._put_payments, _WRITE_PAYMENTS))
        r.add("GET", f"{API}/Payments/{ID}", api(self._get_payment, _READ_PAYMENTS))
        r.add("POST", f"{API}/Payments/{ID}", api(self._delete_payment, _WRITE_PAYMENTS))
        r.add("GET", f"{API}/CreditNotes", api(self._list_credit_notes, _READ_INVOICES))
        r.add("GET", f"{API}/CreditNotes/{ID}", api(self._get_credit_note, _READ_INVOICES))
        return r

    def _count_token(self, endpoint: Callable[[Request], Response]) -> Callable[[Request],
                                                                                 Response]:
        def serve(request: Request) -> Response:
            with self._lock:
                self.stats["token_calls"] += 1
            return endpoint(request)
        return serve

    def _problem(self, status: int, title: str, detail: str,
                 headers: dict[str, str] | None = None) -> Response:
        body = wire.problem(status, title, detail, str(uuid.uuid4()), extensions=status == 401)
        return Response(status, wire.dumps(body),
                        {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    def _bearer(self, request: Request) -> AccessToken | Response:
        access = self.identity.authenticate(request)
        if isinstance(access, Unauthenticated):
            return self._problem(401, "Unauthorized", access.detail, access.extra)
        return access

    def _get_connections(self, request: Request) -> Response:
        access = self._bearer(request)
        if isinstance(access, Response):
            return access
        decision = self.limits.app_call()
        with self._lock:
            self.stats["connections_calls"] += 1
        if not decision.allowed:
            return self._throttled(decision.headers, decision.problem, decision.retry_after)
        items = self.identity.connections(access, request.arg("authEventId"))
        return Response(200, wire.dumps(items),
                        {"Content-Type": "application/json; charset=utf-8", **decision.headers})

    def _delete_connection(self, request: Request) -> Response:
        access = self._bearer(request)
        if isinstance(access, Response):
            return access
        if not self.identity.delete_connection(access, request.params["id"]):
            return self._problem(404, "Not Found", "Connection not found")
        return Response(204, b"", {})

    def _throttled(self, headers: dict[str, str], problem: str | None,
                   retry_after: int | None) -> Response:
        return self._problem(429, "Too Many Requests", f"Rate limit exceeded: {problem}", {
            **headers, "Retry-After": str(retry_after or 1), "X-Rate-Limit-Problem": problem or ""})

    # ------------------------------------------------------ accounting pipeline
    def _api(self, handler: Handler, scopes: frozenset[str]) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            access = self._bearer(request)
            if isinstance(access, Response):
                return access
            tenant_id = (request.headers.get("xero-tenant-id") or "").strip()
            org = self._orgs.get(tenant_id)
            if org is None or tenant_id not in access.grant.connections:
                return self._problem(403, "Forbidden", "AuthenticationUnsuccessful")
            if not scopes & set(access.scopes):
                return self._problem(401, "Unauthorized", "AuthorizationUnsuccessful")
            decision = self.limits.acquire(tenant_id)
            with self._lock:
                self.stats[tenant_id]["api_calls"] += 1
                if not decision.allowed:
                    self.stats[tenant_id]["throttled"] += 1
            if not decision.allowed:
                return self._throttled(decision.headers, decision.problem, decision.retry_after)
            try:
                reply = self._serve(request, org, handler)
            finally:
                self.limits.release(tenant_id)
            if request.method != "GET":
                self._changed()
            response = self._render(request, reply)
            response.headers.update(decision.headers)
            return response
        return serve

    def _serve(self, request: Request, org: Organisation, handler: Handler) -> Reply:
        gate = self._gate
        if gate is not None:
            gate.wait(timeout=60)
        fault = self._take_fault(org.tenant_id, after=False)
        if fault:
            return fault
        key = request.headers.get("Idempotency-Key") if request.method in ("PUT", "POST") else None
        with self._lock:
            if key is not None:
                reply = self._replayed(request, org, key)
                if reply is not None:
                    return reply
            try:
                reply = handler(request, org)
            except Fail as fail:
                reply = fail.reply
            except XeroRuleError as exc:
                reply = bad(str(exc)).reply
            except WhereError as exc:
                reply = Reply(400, wire.query_parse_error(str(exc)))
            if key is not None and len(key) <= 128:
                self._replays[key] = _Replay(self._fingerprint(request, org), reply,
                                             self._now() + self.IDEMPOTENCY_TTL)
        return self._take_fault(org.tenant_id, after=True) or reply

    @staticmethod
    def _fingerprint(request: Request, org: Organisation) -> str:
        digest = hashlib.sha256(f"{request.method} {request.path.lower()} {org.tenant_id}\n"
                                .encode())
        digest.update(request.body)
        return digest.hexdigest()

    def _replayed(self, request: Request, org: Organisation, key: str) -> Reply | None:
        if len(key) > 128:
            return bad("The Idempotency-Key header must be 128 characters or fewer").reply
        now = self._now()
        for old in [k for k, v in self._replays.items() if v.expires <= now]:
            del self._replays[old]
        replay = self._replays.get(key)
        if replay is None:
            return None
        if replay.fingerprint != self._fingerprint(request, org):
            return bad("The Idempotency-Key has already been used with a different request")\
                .reply
        return replay.reply

    def _take_fault(self, tenant_id: str, *, after: bool) -> Reply | None:
        with self._lock:
            for fault in self._faults:
                if fault.after == after and fault.tenant_id in (None, tenant_id):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    self.stats[tenant_id]["faults"] += 1
                    headers = ({"Retry-After": "1", "X-Rate-Limit-Problem": "minute"}
                               if fault.status == 429 else {})
                    detail = {401: "TokenExpired: token expired at "
                                   + self._now().strftime("%m/%d/%Y %H:%M:%S"),
                              403: "AuthenticationUnsuccessful"}.get(
                        fault.status, "The sandbox was told to fail this call")
                    body = wire.problem(fault.status, HTTPStatus(fault.status).phrase, detail,
                                        str(uuid.uuid4()), extensions=fault.status == 401)
                    return Reply(fault.status, body, headers)
        return None

    def _render(self, request: Request, reply: Reply) -> Response:
        headers = dict(reply.headers)
        if reply.payload is None:
            if reply.text:
                headers["Content-Type"] = "text/plain; charset=utf-8"
            return Response(reply.status, reply.text.encode("utf-8"), headers)
        if "json" in (request.headers.get("Accept") or "").lower():
            headers["Content-Type"] = "application/json; charset=utf-8"
            return Response(reply.status, wire.dumps(reply.payload), headers)
        headers["Content-Type"] = "text/xml; charset=utf-8"
        root = "ApiException" if reply.status == 400 else "Response"
        return Response(reply.status, wire.to_xml(reply.payload, root), headers)


def serve(host: str = "127.0.0.1", port: int = 0, **kw: Any) -> tuple[XeroSandbox, SandboxServer]:
    """Start a :class:`XeroSandbox` (``kw`` go to its constructor) on a background server."""
    sandbox = XeroSandbox(**kw)
    server = SandboxServer(sandbox, host=host, port=port)
    server.start()
    return sandbox, server


__all__ = ["XeroRuleError", "XeroSandbox", "serve"]
