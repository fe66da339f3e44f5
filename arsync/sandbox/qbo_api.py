"""The Accounting API endpoints of the QuickBooks sandbox (``/v3/company/{realm}/...``).

Authentication, throttling and ``requestid`` replay happen before these handlers run (in
``quickbooks.py``); a handler returns the JSON payload (or a ready ``Response``) or raises a
``QBOFault``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from arsync.sandbox import qbo_ledger as ledger
from arsync.sandbox import qbo_query
from arsync.sandbox import qbo_wire as wire
from arsync.sandbox._http import Request, Response
from arsync.sandbox.qbo_schema import RESOURCES
from arsync.sandbox.qbo_store import Company
from arsync.sandbox.qbo_wire import QBOFault, qbo_time

if TYPE_CHECKING:
    from arsync.sandbox.quickbooks import QuickBooksSandbox

MAX_BATCH_ITEMS = 30
CDC_MAX_OBJECTS = 1000
CDC_LOOKBACK = timedelta(days=30)
CDC_UNSUPPORTED = {"JournalCode", "TimeActivity", "TaxAgency", "TaxCode", "TaxRate"}
_WRITABLE_ENTITIES = ("Invoice", "Payment", "CreditMemo", "Customer", "Attachable")
_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]"
        b"/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n")


class ApiHandlers:
    """Routes an authenticated API request to the query, CDC, batch, read and write handlers."""

    def __init__(self, sandbox: QuickBooksSandbox) -> None:
        self.sandbox = sandbox

    @staticmethod
    def kind(method: str, rest: str) -> str:
        """A short name for the kind of call, for the per-realm statistics."""
        parts = rest.split("/")
        head = parts[0].lower()
        if head in ("query", "cdc", "batch"):
            return head
        if len(parts) == 3 and parts[2].lower() in ("send", "pdf"):
            return parts[2].lower()
        if head in RESOURCES:
            return "read" if method == "GET" else "write"
        return "other"

    def dispatch(self, co: Company, request: Request, rest: str) -> dict[str, Any] | Response:
        """Run the handler for ``rest`` (the path after ``/v3/company/{realm}/``)."""
        parts = rest.split("/")
        head, method = parts[0].lower(), request.method
        if head == "query" and len(parts) == 1:
            return self.query(co, self._query_text(request))
        if head == "cdc" and method == "GET" and len(parts) == 1:
            return self.cdc(co, request)
        if head == "batch" and method == "POST" and len(parts) == 1:
            return self.batch(co, request)
        entity = RESOURCES.get(head)
        if entity is not None and method == "GET":
            if len(parts) == 1 and entity == "Preferences":
                return self.read(co, entity, "1", request)
            if len(parts) == 2:
                return self.read(co, entity, parts[1], request)
            if len(parts) == 3 and entity == "Invoice" and parts[2].lower() == "pdf":
                with co.lock:
                    co.find("Invoice", parts[1])
                return Response(200, _PDF, {"Content-Type": "application/pdf"})
        if entity is not None and method == "POST":
            if len(parts) == 1:
                return self.write(co, entity, request)
            if len(parts) == 3 and entity == "Invoice" and parts[2].lower() == "send":
                with co.lock, co.atomic():
                    inv = ledger.send_invoice(co, parts[1], request.arg("sendTo"), co.now())
                return {"Invoice": inv, "time": co.response_time()}
        raise wire.unsupported_operation(f"{method} /{rest}")

    # --- reads ------------------------------------------------------------------------------------

    @staticmethod
    def _query_text(request: Request) -> str:
        if request.method == "POST" and request.body:
            return request.body.decode("utf-8")
        return request.arg("query") or ""

    def query(self, co: Company, text: str) -> dict[str, Any]:
        """``GET|POST .../query``."""
        return {"QueryResponse": self._run_query(co, text), "time": co.response_time()}

    @staticmethod
    def _run_query(co: Company, text: str) -> dict[str, Any]:
        q = qbo_query.parse(text)
        with co.lock:
            if q.entity in co.objects:
                # Paging re-runs one query with another STARTPOSITION: keep what it matched
                # until the entity changes, so page 100 of 100,000 invoices costs no full scan.
                cache = co.query_cache[q.entity]
                key = qbo_query.cache_key(q)
                matched = cache.get(key)
                if matched is None:
                    matched = qbo_query.match(q, co.rows(q.entity),
                                              updated=co.updated_of(q.entity), tz=co.tz)
                    if len(cache) > 32:
                        cache.clear()
                    cache[key] = matched
            else:
                matched = []
        page, total = qbo_query.page(q, matched)
        if q.count:
            return {"totalCount": total}
        if not page:
            return {}
        return {q.entity: page, "startPosition": q.start, "maxResults": len(page)}

    def read(self, co: Company, entity: str, id_: str, request: Request) -> dict[str, Any]:
        """``GET .../{entity}/{id}`` (``include=invoiceLink`` adds the pay link)."""
        if entity in ("CompanyInfo", "Preferences"):
            if id_ not in ("1", co.realm_id):
                raise wire.not_found(entity, id_)
            id_ = "1"
        with co.lock:
            obj = co.find(entity, id_)
            customer = co.objects["Customer"].get(obj.get("CustomerRef", {}).get("value", ""))
        include = (request.arg("include") or "").lower().split(",")
        if entity == "Invoice" and "invoicelink" in include:
            link = self._invoice_link(co, obj, customer, request)
            if link:
                obj = {**obj, "InvoiceLink": link}
        return {entity: obj, "time": co.response_time()}

    @staticmethod
    def _invoice_link(co: Company, inv: dict[str, Any], customer: dict[str, Any] | None,
                      request: Request) -> str | None:
        """The shareable pay link, only where the real service offers one: online payments on,
        the invoice accepts card or bank payment, someone to email it to, money still owed."""
        email = (inv.get("BillEmail") or {}).get("Address") or (
            (customer or {}).get("PrimaryEmailAddr") or {}).get("Address")
        accepts = inv.get("AllowOnlineCreditCardPayment") or inv.get("AllowOnlineACHPayment")
        if not (co.online_payments and accepts and email and float(inv.get("Balance", 0)) > 0):
            return None
        host = request.headers.get("Host") or "127.0.0.1"
        return f"http://{host}/pay/{co.realm_id}/{inv['Id']}"

    def cdc(self, co: Company, request: Request) -> dict[str, Any]:
        """``GET .../cdc?entities=..&changedSince=..``: at most 1000 objects, oldest first."""
        names, since_text = request.arg("entities"), request.arg("changedSince")
        if not names:
            raise wire.required("entities")
        if not since_text:
            raise wire.required("changedSince")
        entities: list[str] = []
        for raw in names.split(","):
            name = next((e for e in [*qbo_query.FIELDS, *qbo_query.UNMODELLED, *CDC_UNSUPPORTED]
                         if e.lower() == raw.strip().lower()), None)
            if name is None:
                raise wire.invalid(f"Invalid entity name in entities: {raw}", "entities")
            if name in CDC_UNSUPPORTED:
                raise wire.unsupported_operation(f"cdc for {name}")
            if name not in entities:
                entities.append(name)
        since = self._since(co, since_text)
        if since < (co.now() - CDC_LOOKBACK).timestamp():
            # The real message, from a client's bug report; it uses the "Operation ... is not
            # supported" template of fault 500, so the code is a GUESS consistent with it.
            raise wire.unsupported_operation(
                f"cdc with changedSince date {since_text} which is older than fixed days")
        with co.lock:
            found: list[tuple[float, int, int, str, bool]] = []
            for order, name in enumerate(entities):
                if name not in co.objects:
                    continue
                found.extend((ts, order, int(i), i, False)
                             for i, ts in co.updated[name].items() if ts >= since)
                found.extend((ts, order, int(i), i, True)
                             for i, ts in co.tombstones[name].items() if ts >= since)
            found.sort()
            found = found[:CDC_MAX_OBJECTS]  # the cap is per request, oldest changes kept
            groups: list[dict[str, Any]] = []
            for order, name in enumerate(entities):
                mine = [f for f in found if f[1] == order]
                items: list[dict[str, Any]] = [co.objects[name][f[3]] for f in mine if not f[4]]
                items += [{"status": "Deleted", "domain": "QBO", "Id": f[3], "MetaData": {
                    "LastUpdatedTime": qbo_time(datetime.fromtimestamp(f[0], co.tz))}}
                    for f in mine if f[4]]
                groups.append({name: items, "startPosition": 1, "maxResults": len(items)}
                              if items else {})
        return {"CDCResponse": [{"QueryResponse": groups}], "time": co.response_time()}

    @staticmethod
    def _since(co: Company, text: str) -> float:
        text = text.strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                return datetime(d.year, d.month, d.day, tzinfo=co.tz).timestamp()
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
        except ValueError:
            raise wire.invalid(f"Invalid changedSince value: {text}", "changedSince") from None
        if dt.tzinfo is None:  # GUESS: a naive time is read in the company's zone
            dt = dt.replace(tzinfo=co.tz)
        return dt.timestamp()

    # --- writes -----------------------------------------------------------------------------------

    @staticmethod
    def _json(request: Request) -> Any:
        try:
            return wire.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise wire.invalid("Request body is not valid JSON") from None

    def write(self, co: Company, entity: str, request: Request) -> dict[str, Any]:
        """``POST .../{entity}[?operation=void|delete|update]``: create, update, void, delete."""
        body = self._json(request)
        operation = (request.arg("operation") or "").lower()
        with co.lock, co.atomic():
            result = self.apply(co, entity, operation, body, co.now())
        return {entity: result, "time": co.response_time()}

    @staticmethod
    def apply(co: Company, entity: str, operation: str, body: Any,
              when: datetime) -> dict[str, Any]:
        """One write, as a single request or a batch item performs it."""
        if not isinstance(body, dict):
            raise wire.invalid(f"Request body for {entity} is not an object")
        writers: dict[str, Callable[..., dict[str, Any]]] = {
            "Invoice": ledger.write_invoice, "Payment": ledger.write_payment,
            "CreditMemo": ledger.write_credit_memo}
        deleters: dict[str, Callable[..., dict[str, Any]]] = {
            "Invoice": ledger.delete_invoice, "Payment": ledger.delete_payment,
            "CreditMemo": ledger.delete_credit_memo}
        if operation in ("", "create", "update") and entity in _WRITABLE_ENTITIES:
            if operation == "update" and not body.get("Id"):
                raise wire.required("Id")
            if operation == "create":
                body = {k: v for k, v in body.items() if k not in ("Id", "SyncToken")}
            if entity == "Customer":
                return co.write_customer(body, when)
            if entity == "Attachable":
                return co.write_attachable(body, when)
            return writers[entity](co, body, when)
        if operation == "delete" and entity in deleters:
            return deleters[entity](co, body, when)
        if operation == "delete" and entity == "Attachable":
            return co.delete_simple("Attachable", body, when)
        if operation == "void" and entity == "Invoice":
            return ledger.void_invoice(co, body, when)
        raise wire.unsupported_operation(f"{operation or 'write'} for {entity}")

    def batch(self, co: Company, request: Request) -> dict[str, Any]:
        """``POST .../batch``: up to 30 items, run one after another; faults stay per item."""
        body = self._json(request)
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise wire.required("BatchItemRequest")
        if len(items) > MAX_BATCH_ITEMS:
            raise QBOFault(400, "1040", "Batch size exceeds allowed limit",
                           f"The batch size {len(items)} exceeds the allowed limit of "
                           f"{MAX_BATCH_ITEMS} BatchItemRequest objects.")
        out: list[dict[str, Any]] = []
        for item in items:
            bid = item.get("bId") if isinstance(item, dict) else None
            try:
                if not bid:
                    raise wire.required("bId")
                out.append({"bId": bid, **self._batch_item(co, item)})
            except QBOFault as fault:
                out.append({"bId": bid, "Fault": fault.fault()})
        return {"BatchItemResponse": out, "time": co.response_time()}

    def _batch_item(self, co: Company, item: dict[str, Any]) -> dict[str, Any]:
        if "Query" in item:
            return {"QueryResponse": self._run_query(co, str(item["Query"]))}
        names = [k for k in item if k in _WRITABLE_ENTITIES]
        if len(names) != 1:
            raise wire.invalid("A batch item needs exactly one entity or a Query")
        operation = str(item.get("operation") or "").lower()
        if operation not in ("create", "update", "delete"):
            raise wire.unsupported_operation(f"{operation or '(none)'} in batch")
        with co.lock, co.atomic():
            result = self.apply(co, names[0], operation, item[names[0]], co.now())
        return {names[0]: result}
