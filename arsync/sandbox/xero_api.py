"""The Accounting API endpoints of the Xero sandbox: listing, paging, filtering and writes.

:class:`AccountingEndpoints` is mixed into :class:`~arsync.sandbox.xero.XeroSandbox`, which
authenticates each call, applies the rate limits and idempotency, and then calls one of these
handlers under its lock with the caller's organisation.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from arsync.clock import Clock
from arsync.sandbox import xero_json as wire
from arsync.sandbox._http import Request
from arsync.sandbox.xero_model import INVOICE_STATUSES, Invoice, Organisation, XeroRuleError, money
from arsync.sandbox.xero_where import compile_order, compile_where, sort_records
from arsync.sandbox.xero_writes import (
    Outcome,
    PaymentRequest,
    changed_invoice,
    commit_invoice,
    is_guid,
    new_invoice,
    payment_request,
    record,
)

NOTE_MAX = 250


class Fail(Exception):
    """Ends a request with an error reply (status and Xero-shaped payload)."""

    def __init__(self, status: int, payload: dict[str, Any] | None = None, text: str = "") -> None:
        super().__init__(status)
        self.reply = Reply(status, payload, text=text)


def bad(*messages: str, element: dict[str, Any] | None = None) -> Fail:
    return Fail(400, wire.validation_error(list(messages), element))


def not_found() -> Fail:
    return Fail(404, text="The resource you're looking for cannot be found")


@dataclass
class Reply:
    status: int
    payload: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""


class AccountingEndpoints:
    """The handlers: ``(request, organisation) -> Reply``; errors are raised as :class:`Fail`."""

    HIGH_VOLUME_THRESHOLD = 100_000
    EMAIL_DAY_LIMIT = 1000
    clock: Clock
    stats: dict[str, Any]
    _cache: dict[tuple[Any, ...], list[Any]]

    def _now(self) -> datetime:
        return self.clock.now()

    def _ok(self, **body: Any) -> Reply:
        """A 200 in Xero's envelope (a ``pagination=None`` is left out)."""
        if body.get("pagination", 0) is None:
            del body["pagination"]
        return Reply(200, wire.envelope(self._now(), str(uuid.uuid4()), **body))

    # --------------------------------------------------------- query helpers
    @staticmethod
    def _bool(request: Request, name: str) -> bool:
        value = request.arg(name)
        if value is None or value == "":
            return False
        if value.lower() not in ("true", "false"):
            raise bad(f"'{value}' is not a valid value for {name}")
        return value.lower() == "true"

    @staticmethod
    def _csv(request: Request, name: str, *, guids: bool = False) -> list[str] | None:
        values = [v for k, vs in request.query.items() if k.lower() == name.lower() for v in vs]
        if not values:
            return None
        items = [item.strip().strip('"') for v in values for item in v.split(",") if item.strip()]
        if guids:
            invalid = [i for i in items if not is_guid(i)]
            if invalid:
                raise bad(f"'{invalid[0]}' is not a valid Guid in {name}")
            items = [i.lower() for i in items]
        return items

    @staticmethod
    def _int(request: Request, name: str) -> int | None:
        value = request.arg(name)
        if value is None or value == "":
            return None
        try:
            number = int(value)
        except ValueError:
            raise bad(f"'{value}' is not a valid value for {name}") from None
        if number < 1:
            raise bad(f"{name} must be 1 or more")
        return number

    @staticmethod
    def _modified_since(request: Request) -> datetime | None:
        value = (request.headers.get("If-Modified-Since") or "").strip()
        if not value:
            return None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                moment = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                raise bad(f"'{value}' is not a valid If-Modified-Since date") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def _query(self, request: Request, org: Organisation, kind: str,
               records: Callable[[], Any], filters: list[Callable[[Any], bool]],
               key: tuple[Any, ...], explicit: set[str], hidden: Callable[[Any], bool],
               id_of: Callable[[Any], str]) -> tuple[list[Any], dict[str, int] | None]:
        """Filter, sort and page a collection: (records, Xero's ``pagination`` if paged).

        ``hidden`` records (DELETED invoices, ARCHIVED contacts) are left out unless the
        ``where`` clause names one of the ``explicit`` fields."""
        page = self._int(request, "page")
        if page is None and self._bool(request, "summaryOnly"):
            page = 1
        size = min(self._int(request, "pageSize") or 100, 1000)
        since = self._modified_since(request)
        where_text = request.arg("where")
        order_text = request.arg("order")
        cache_key = (org.tenant_id, org.version, kind, key, since, where_text, order_text)
        matched = self._cache.get(cache_key)
        total = len(records())
        if matched is None:
            preds = list(filters)
            if where_text:
                where = compile_where(where_text, kind, org)
                if where.or_count and total > self.HIGH_VOLUME_THRESHOLD:
                    raise bad("The request exceeds the high volume threshold: OR conditions in "
                              "'where' are not optimised; use the Statuses, IDs or ContactIDs "
                              "parameters instead")
                preds.append(where.predicate)
                if not where.fields & explicit:
                    preds.append(lambda r: not hidden(r))
            else:
                preds.append(lambda r: not hidden(r))
            if since is not None:
                preds.append(lambda r: r.updated > since)
            matched = [r for r in records().values() if all(p(r) for p in preds)]
            if order_text:
                sort_records(matched, compile_order(order_text, kind, org), id_of)
            else:
                matched.sort(key=lambda r: (r.updated, id_of(r)))
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[cache_key] = matched
        count = len(matched)
        if page is None:
            if count > self.HIGH_VOLUME_THRESHOLD:
                raise bad(f"The request would return {count} records, more than the high "
                          f"volume threshold of {self.HIGH_VOLUME_THRESHOLD}; use paging")
            return matched, None
        return matched[(page - 1) * size: page * size], {
            "page": page, "pageSize": size, "pageCount": -(-count // size), "itemCount": count}

    # ------------------------------------------------------- accounting handlers
    def _get_organisation(self, request: Request, org: Organisation) -> Reply:
        return self._ok(Organisations=[wire.render_organisation(org)])

    def _list_contacts(self, request: Request, org: Organisation) -> Reply:
        ids = self._csv(request, "IDs", guids=True)
        include_archived = self._bool(request, "includeArchived")
        term = (request.arg("searchTerm") or "").lower()
        filters: list[Callable[[Any], bool]] = []
        if ids is not None:
            wanted = set(ids)
            filters.append(lambda c: c.contact_id in wanted)
        if term:
            filters.append(lambda c: any(term in (v or "").lower() for v in (
                c.name, c.first_name, c.last_name, c.email, c.account_number)))
        rows, pagination = self._query(
            request, org, "Contacts", lambda: org.contacts, filters,
            ("ids", tuple(ids or ()), include_archived, term), {"contactstatus"},
            (lambda c: False) if include_archived else (lambda c: c.status == "ARCHIVED"),
            lambda c: c.contact_id)
        summary = self._bool(request, "summaryOnly")
        balances = None if summary else org.balances(self._now().date())
        zero = (money(0),) * 4
        return self._ok(pagination=pagination, Contacts=[
            wire.render_contact(org, c, summary=summary,
                                balances=None if balances is None else balances.get(c.contact_id,
                                                                                     zero))
            for c in rows])

    def _get_contact(self, request: Request, org: Organisation) -> Reply:
        contact = org.contacts.get(request.params["id"].lower())
        if contact is None:
            raise not_found()
        zero = (money(0),) * 4
        balances = org.balances(self._now().date()).get(contact.contact_id, zero)
        return self._ok(Contacts=[wire.render_contact(org, contact, balances=balances)])

    def _list_invoices(self, request: Request, org: Organisation) -> Reply:
        ids = self._csv(request, "IDs", guids=True)
        numbers = self._csv(request, "InvoiceNumbers")
        contact_ids = self._csv(request, "ContactIDs", guids=True)
        statuses = self._csv(request, "Statuses")
        if statuses is not None:
            unknown = [s for s in statuses if s not in INVOICE_STATUSES]
            if unknown:
                raise bad(f"'{unknown[0]}' is not a valid invoice status")
        mine = self._bool(request, "createdByMyApp")
        self._bool(request, "includeArchived")  # accepted and validated; invoices never archive
        term = (request.arg("searchTerm") or "").lower()
        filters: list[Callable[[Any], bool]] = []
        if ids is not None:
            id_set = set(ids)
            filters.append(lambda i: i.invoice_id in id_set)
        if numbers is not None:
            number_set = set(numbers)
            filters.append(lambda i: i.number in number_set)
        if contact_ids is not None:
            contact_set = set(contact_ids)
            filters.append(lambda i: i.contact_id in contact_set)
        if statuses is not None:
            status_set = set(statuses)
            filters.append(lambda i: i.status in status_set)
        if mine:
            filters.append(lambda i: i.created_by_app)
        if term:
            filters.append(lambda i: term in i.number.lower() or term in i.reference.lower())
        rows, pagination = self._query(
            request, org, "Invoices", lambda: org.invoices, filters,
            (tuple(ids or ()), tuple(numbers or ()), tuple(contact_ids or ()),
             tuple(statuses or ()) if statuses is not None else None, mine, term),
            {"status"},
            (lambda i: False) if statuses is not None else (lambda i: i.status == "DELETED"),
            lambda i: i.invoice_id)
        detail = ("summary" if self._bool(request, "summaryOnly") else
                  "paged" if pagination else "list")
        unitdp = 4 if request.arg("unitdp") == "4" else 2
        return self._ok(pagination=pagination, Invoices=[
            wire.render_invoice(org, inv, detail=detail, unitdp=unitdp) for inv in rows])

    def _find_invoice(self, org: Organisation, ref: str) -> Invoice:
        invoice = (org.invoices.get(ref.lower()) if is_guid(ref) else
                   org.invoices.get(org.invoice_numbers.get(ref, "")))
        if invoice is None:
            raise not_found()
        return invoice

    def _get_invoice(self, request: Request, org: Organisation) -> Reply:
        invoice = self._find_invoice(org, request.params["id"])
        unitdp = 4 if request.arg("unitdp") == "4" else 2
        return self._ok(Invoices=[wire.render_invoice(org, invoice, detail="full",
                                                      unitdp=unitdp)])

    def _body(self, request: Request) -> Any:
        try:
            return json.loads(request.body.decode("utf-8") or "null", parse_float=Decimal)
        except (UnicodeDecodeError, ValueError):
            raise bad("The request body is not valid JSON") from None

    def _put_invoices(self, request: Request, org: Organisation) -> Reply:
        return self._save_invoices(request, org, create_only=True)

    def _post_invoices(self, request: Request, org: Organisation) -> Reply:
        return self._save_invoices(request, org, create_only=False)

    def _save_invoices(self, request: Request, org: Organisation, *, create_only: bool) -> Reply:
        data = self._body(request)
        items = data.get("Invoices") if isinstance(data, dict) and "Invoices" in data else [data]
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise bad("The request body must contain one or more invoices")
        path_id = request.params.get("id")
        now = self._now()
        outcomes: list[tuple[dict[str, Any], Outcome | None]] = []
        for item in items:
            target = item.get("InvoiceID") or path_id
            if target and create_only:
                outcomes.append((item, None))  # PUT only creates
            elif target:
                current = self._find_invoice(org, str(target))
                outcomes.append((item, changed_invoice(org, current, item, now=now)))
            else:
                outcomes.append((item, new_invoice(org, item, now=now, by_app=True)))
        summarize = (request.arg("summarizeErrors") or "true").lower() != "false"
        failed = [(item, o) for item, o in outcomes if o is None or o.errors]
        if failed and summarize:
            item, outcome = failed[0]
            messages = (["Invoices cannot be updated with PUT; use POST"] if outcome is None
                        else outcome.errors)
            raise bad(*messages, element=item)
        rendered = []
        for item, outcome in outcomes:
            if outcome is None or outcome.errors:
                errors = ["Invoices cannot be updated with PUT; use POST"] if outcome is None \
                    else outcome.errors
                rendered.append({**item, "HasErrors": True, "StatusAttributeString": "ERROR",
                                 "ValidationErrors": [{"Message": m} for m in errors]})
                continue
            invoice = commit_invoice(org, outcome)
            rendered.append(wire.render_invoice(org, invoice, detail="full"))
        return self._ok(Invoices=rendered)

    def _online_invoice(self, request: Request, org: Organisation) -> Reply:
        invoice = self._find_invoice(org, request.params["id"])
        if invoice.type != "ACCREC" or invoice.status not in ("AUTHORISED", "PAID", "VOIDED"):
            raise bad("An online invoice can only be retrieved for an approved sales invoice")
        token = hashlib.sha256(f"{org.tenant_id}/{invoice.invoice_id}".encode()).hexdigest()
        return self._ok(OnlineInvoices=[{"OnlineInvoiceUrl": f"https://in.xero.com/{token[:40]}"}])

    def _get_history(self, request: Request, org: Organisation) -> Reply:
        invoice = self._find_invoice(org, request.params["id"])
        return self._ok(HistoryRecords=wire.history_records(org, invoice))

    def _add_history(self, request: Request, org: Organisation) -> Reply:
        invoice = self._find_invoice(org, request.params["id"])
        data = self._body(request)
        records = data.get("HistoryRecords") if isinstance(data, dict) else None
        if not isinstance(records, list) or not records:
            raise bad("HistoryRecords must contain at least one record")
        problems = []
        for rec in records:
            details = rec.get("Details") if isinstance(rec, dict) else None
            if not isinstance(details, str) or not details.strip():
                problems.append((rec, "The Details field is required"))
            elif len(details) > NOTE_MAX:
                problems.append((rec, f"The Details field must be {NOTE_MAX} characters or "
                                      f"fewer (it has {len(details)})"))
        if problems:
            rec, message = problems[0]
            raise bad(message, element=rec if isinstance(rec, dict) else {})
        now = self._now()
        added = [org.add_note(invoice, rec["Details"], now=now, user="System Generated")
                 for rec in records]
        self.stats[org.tenant_id]["notes"] += len(added)
        return self._ok(HistoryRecords=[
            {"DateUTCString": n.at.strftime("%Y-%m-%dT%H:%M:%S"),
             "DateUTC": wire.msdate(n.at, offset=False), "Details": n.details,
             "ValidationErrors": []} for n in added])

    def _email_invoice(self, request: Request, org: Organisation) -> Reply:
        invoice = self._find_invoice(org, request.params["id"])
        if invoice.type != "ACCREC":
            raise bad("Only sales invoices (ACCREC) can be emailed")
        if invoice.status not in ("AUTHORISED", "PAID"):
            raise bad(f"Invoices with status {invoice.status} cannot be emailed; approve it first")
        contact = org.contacts[invoice.contact_id]
        if not contact.email:
            raise bad(f"The contact {contact.name} does not have an email address")
        now = self._now()
        today = [e for e in org.emails_sent if e[0].date() == now.date()]
        if len(today) >= self.EMAIL_DAY_LIMIT:
            raise bad("The daily limit for emailing invoices from this organisation has been "
                       "reached")
        org.emails_sent.append((now, invoice.invoice_id, contact.email))
        invoice.sent_to_contact = True
        org.touch(invoice, now)
        self.stats[org.tenant_id]["emails"] += 1
        return Reply(204)

    def _list_payments(self, request: Request, org: Organisation) -> Reply:
        rows, pagination = self._query(request, org, "Payments", lambda: org.payments, [], (),
                                        set(), lambda p: False, lambda p: p.payment_id)
        return self._ok(pagination=pagination,
                        Payments=[wire.render_payment(org, p) for p in rows])

    def _get_payment(self, request: Request, org: Organisation) -> Reply:
        payment = org.payments.get(request.params["id"].lower())
        if payment is None:
            raise not_found()
        return self._ok(Payments=[wire.render_payment(org, payment)])

    def _put_payments(self, request: Request, org: Organisation) -> Reply:
        data = self._body(request)
        items = data.get("Payments") if isinstance(data, dict) and "Payments" in data else [data]
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise bad("The request body must contain one or more payments")
        now = self._now()
        pending: dict[str, Decimal] = {}
        requests: list[PaymentRequest] = []
        for item in items:
            try:
                req = payment_request(org, item, today=now.date(),
                                      pending=lambda inv: pending.get(inv.invoice_id, money(0)))
            except XeroRuleError as exc:
                raise bad(str(exc), element=item) from None
            assert req.target is not None
            pending[req.target.invoice_id] = pending.get(req.target.invoice_id, money(0)) \
                + req.amount
            requests.append(req)
        payments = [record(org, req, now=now) for req in requests]
        return self._ok(Payments=[wire.render_payment(org, p) for p in payments])

    def _delete_payment(self, request: Request, org: Organisation) -> Reply:
        payment = org.payments.get(request.params["id"].lower())
        if payment is None:
            raise not_found()
        data = self._body(request)
        item = (data.get("Payments") or [{}])[0] if isinstance(data, dict) and "Payments" in data \
            else data
        if not isinstance(item, dict) or item.get("Status") != "DELETED":
            raise bad("Only the Status of a payment can be changed, to DELETED")
        org.delete_payment(payment, now=self._now())
        return self._ok(Payments=[wire.render_payment(org, payment)])

    def _list_credit_notes(self, request: Request, org: Organisation) -> Reply:
        rows, pagination = self._query(request, org, "CreditNotes", lambda: org.credit_notes,
                                        [], (), set(), lambda n: False,
                                        lambda n: n.credit_note_id)
        return self._ok(pagination=pagination, CreditNotes=[
            wire.render_credit_note(org, n, lines=pagination is not None) for n in rows])

    def _get_credit_note(self, request: Request, org: Organisation) -> Reply:
        note = org.credit_notes.get(request.params["id"].lower())
        if note is None:
            raise not_found()
        return self._ok(CreditNotes=[wire.render_credit_note(org, note)])

