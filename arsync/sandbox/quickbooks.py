"""A local, stateful emulator of QuickBooks Online (Accounting API v3 + Intuit OAuth 2.0).

Serve it with ``SandboxServer(QuickBooksSandbox())`` (or :func:`serve`) and point the connector's
API base, token and auth URLs at the server. It is meant to be exactly as strict as the real
service: SyncToken conflicts (5010), the query grammar and its 1000-row cap, CDC's 30-day window and
1000-object cap, rotating refresh tokens, 401/403, throttling (429 without Retry-After), batch
limits, idempotent ``requestid``, and XML for clients that forget ``Accept: application/json``.

Real-service behaviours this emulator had to guess (no primary source) are marked ``GUESS`` in
comments, with the choice made.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from arsync.clock import Clock, SystemClock
from arsync.sandbox import qbo_ledger as ledger
from arsync.sandbox import qbo_wire as wire
from arsync.sandbox._http import Request, Response, Router, SandboxServer
from arsync.sandbox.qbo_api import ApiHandlers
from arsync.sandbox.qbo_oauth import TokenAuthority
from arsync.sandbox.qbo_pages import oauth_routes, pay_page
from arsync.sandbox.qbo_seed import seed_company
from arsync.sandbox.qbo_store import Company, currency_ref
from arsync.sandbox.qbo_wire import QBOFault, wire_copy
from arsync.sandbox.webhooks import QuickBooksWebhooks

__all__ = ["QuickBooksSandbox", "serve"]

REQUESTS_PER_MINUTE = 500
BATCH_REQUESTS_PER_MINUTE = 40
MAX_CONCURRENT = 10
MIN_MINOR_VERSION = 75
REPLAY_CACHE_SIZE = 10_000  # requestid answers kept for replay, per sandbox
_ADDRESSES = {"US": ("2500 Garcia Ave", "Mountain View", "CA", "94043"),
              "CA": ("100 King St W", "Toronto", "ON", "M5X 1A9"),
              "GB": ("1 Poultry", "London", "", "EC2R 8EJ"),
              "AU": ("1 Martin Pl", "Sydney", "NSW", "2000"),
              "FR": ("10 Rue de Rivoli", "Paris", "", "75001")}
_ZONES = {"US": "America/Los_Angeles", "CA": "America/Toronto", "GB": "Europe/London",
          "AU": "Australia/Sydney", "FR": "Europe/Paris", "IN": "Asia/Kolkata"}


class QuickBooksSandbox:
    """The emulator: a ``Request -> Response`` app plus the controls a test or demo needs."""

    def __init__(self, *, clock: Clock | None = None, client_id: str = "sandbox-qbo-client",
                 client_secret: str = "sandbox-qbo-secret",  # noqa: S107 - a published demo value
                 rate_limits: bool = True, rotate_every_refresh: bool = True,
                 access_token_ttl: int = 3600) -> None:
        self.clock: Clock = clock or SystemClock()
        self.oauth = TokenAuthority(self.clock, client_id=client_id, client_secret=client_secret,
                                    rotate_every_refresh=rotate_every_refresh,
                                    access_token_ttl=access_token_ttl)
        self.rate_limits = rate_limits
        self.companies: dict[str, Company] = {}
        #: Per-realm counters: ``api_calls``, ``token_calls``, one per path kind (``query``,
        #: ``cdc``, ``batch``, ``read``, ``write``, ``send``...), ``throttled``, ``faults``.
        self.stats: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._lock = threading.Lock()  # stats, faults, rate windows, idempotency cache
        self._faults: list[list[Any]] = []  # [status, remaining, realm or None]
        self._minute: dict[str, deque[float]] = defaultdict(deque)
        self._batch_minute: dict[str, deque[float]] = defaultdict(deque)
        self._inflight: Counter[str] = Counter()
        self._replies: dict[tuple[str, str], Response] = {}
        self.api = ApiHandlers(self)
        self.webhooks: QuickBooksWebhooks | None = None  # see send_webhooks
        self._router = Router()
        oauth_routes(self, self._router)
        for method in ("GET", "POST"):
            self._router.add(method, r"/v3/company/(?P<realm>[^/]+)/(?P<rest>.+)", self._api)
            self._router.add(method, r"/pay/(?P<realm>[^/]+)/(?P<id>[^/]+)", self._pay)

    def __call__(self, request: Request) -> Response:
        return self._router(request)

    # --- companies --------------------------------------------------------------------------------

    def add_company(self, realm_id: str, *, name: str, country: str = "US",
                    currency: str = "USD", customers: int = 300, invoices: int = 3000,
                    seed: int = 1, multicurrency: bool = True, timezone: str | None = None) -> None:
        """Create a company and seed it with realistic books, dated relative to the clock."""
        if realm_id in self.companies:
            raise ValueError(f"company {realm_id} already exists")
        try:
            tz: Any = ZoneInfo(timezone or _ZONES.get(country, "America/Los_Angeles"))
        except ZoneInfoNotFoundError:  # no tz database: fixed Pacific offset keeps it running
            from datetime import timezone as _tz
            tz = _tz(timedelta(hours=-8))
        co = Company(self.clock, realm_id, name=name, country=country, currency=currency,
                     tz=tz, multicurrency=multicurrency)
        self._settings_objects(co)
        seed_company(co, customers=customers, invoices=invoices, seed=seed)
        with self._lock:
            self.companies[realm_id] = co

    def company(self, realm_id: str) -> Company:
        """The company's state (for tests and the demo; hold ``.lock`` while reading)."""
        try:
            return self.companies[realm_id]
        except KeyError:
            raise ValueError(f"no sandbox company {realm_id}") from None

    @staticmethod
    def _settings_objects(co: Company) -> None:
        # CompanyInfo carries no time zone in real responses (Finance.xsd has DefaultTimeZone,
        # but the documented sample and live payloads omit it); the zone shows only in the
        # offsets of MetaData times and of the response ``time``, so the emulator does the same.
        born = co.now() - timedelta(days=900)
        slug = "".join(ch for ch in co.name.lower() if ch.isalnum()) or "company"
        line1, city, region, postal = _ADDRESSES.get(co.country, _ADDRESSES["US"])
        addr = {"Id": "1", "Line1": line1, "City": city, "PostalCode": postal,
                "Country": co.country}
        if region:
            addr["CountrySubDivisionCode"] = region
        meta = {"CreateTime": wire.qbo_time(born), "LastUpdatedTime": wire.qbo_time(born)}
        info = {"CompanyName": co.name, "LegalName": co.name, "CompanyAddr": addr,
                "CustomerCommunicationAddr": addr, "LegalAddr": addr,
                "CustomerCommunicationEmailAddr": {"Address": f"billing@{slug}.example.com"},
                "PrimaryPhone": {"FreeFormNumber": "(650) 944-4444"},
                "CompanyStartDate": born.date().isoformat(), "FiscalYearStartMonth": "January",
                "Country": co.country, "Email": {"Address": f"billing@{slug}.example.com"},
                "WebAddr": {}, "SupportedLanguages": "en",
                "NameValue": [{"Name": "NeoEnabled", "Value": "true"},
                              {"Name": "SubscriptionStatus", "Value": "PAID"},
                              {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                              {"Name": "PayrollFeature", "Value": "false"},
                              {"Name": "AccountantFeature", "Value": "false"}],
                "domain": "QBO", "sparse": False, "Id": "1", "SyncToken": "0", "MetaData": meta}
        memo = "Thank you for your business and have a great day!"
        prefs = {"AccountingInfoPrefs": {"TrackDepartments": False, "ClassTrackingPerTxn": False,
                                         "CustomerTerminology": "Customers",
                                         "FirstMonthOfFiscalYear": "January"},
                 "SalesFormsPrefs": {"CustomTxnNumbers": False, "AllowDeposit": True,
                                     "AllowDiscount": True, "AllowEstimates": True,
                                     "AllowShipping": False, "DefaultTerms": {"value": "3"},
                                     "DefaultCustomerMessage": memo, "IPNSupportEnabled": False,
                                     "ETransactionEnabledStatus": "NotApplicable"},
                 "EmailMessagesPrefs": {"InvoiceMessage": {
                     "Subject": f"Invoice [Invoice No.] from {co.name}",
                     "Message": "Here's your invoice! We appreciate your prompt payment."}},
                 "CurrencyPrefs": {"MultiCurrencyEnabled": co.multicurrency,
                                   "HomeCurrency": {"value": co.currency}},
                 "TaxPrefs": {"UsingSalesTax": False},
                 "ReportPrefs": {"ReportBasis": "Accrual", "CalcAgingReportFromTxnDate": False},
                 "OtherPrefs": {"NameValue": [
                     {"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": memo},
                     {"Name": "SalesFormsPrefs.UsingProgressInvoicing", "Value": "false"}]},
                 "domain": "QBO", "sparse": False, "Id": "1", "SyncToken": "0", "MetaData": meta}
        co.put("CompanyInfo", info)
        co.put("Preferences", prefs)

    # --- tokens -----------------------------------------------------------------------------------

    def mint_refresh_token(self, realm_id: str) -> str:
        """The refresh token the OAuth consent for ``realm_id`` would have yielded."""
        self.company(realm_id)
        return self.oauth.mint_refresh_token(realm_id)

    def authorize_code(self, realm_id: str, redirect_uri: str) -> str:
        """An authorization code for the code flow (single use, 5 minutes)."""
        self.company(realm_id)
        return self.oauth.authorize_code(realm_id, redirect_uri)

    def revoke_refresh_tokens(self, realm_id: str) -> None:
        """The user disconnected the app in QuickBooks: all its tokens for the company die."""
        self.oauth.revoke_realm(realm_id)

    def expire_access_tokens(self, realm_id: str) -> None:
        """End the company's access tokens early (refresh tokens stay good), as Intuit may."""
        self.oauth.expire_access(realm_id)

    # --- webhooks -------------------------------------------------------------------------------

    def send_webhooks(self, url: str, verifier: str, *, cloudevents: bool = False,
                      background: bool = True) -> QuickBooksWebhooks:
        """POST signed change notifications to ``url`` from now on (see :mod:`.webhooks`)."""
        if self.webhooks is not None:
            self.webhooks.stop()
        self.webhooks = QuickBooksWebhooks(self, url, verifier, cloudevents=cloudevents,
                                           background=background)
        return self.webhooks

    def _changed(self) -> None:
        if self.webhooks is not None:
            self.webhooks.notify()

    # --- what a person does in QuickBooks ---------------------------------------------------------

    def _mutate(self, realm_id: str, fn: Any) -> Any:
        co = self.company(realm_id)
        with co.lock, co.atomic():
            result = fn(co, co.now())
        self._changed()
        return result

    def record_payment(self, realm_id: str, invoice_id: str,
                       amount: Decimal | None = None) -> str:
        """Receive a payment against an invoice (None: the whole balance); returns its Id."""
        def run(co: Company, when: datetime) -> str:
            inv = co.find("Invoice", invoice_id)
            value = Decimal(str(inv["Balance"])) if amount is None else Decimal(str(amount))
            pay = ledger.write_payment(co, {
                "CustomerRef": {"value": inv["CustomerRef"]["value"]},
                "CurrencyRef": inv["CurrencyRef"], "TotalAmt": value,
                "Line": [{"Amount": value,
                          "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]}, when)
            return str(pay["Id"])
        return self._mutate(realm_id, run)  # type: ignore[no-any-return]

    def delete_payment(self, realm_id: str, payment_id: str) -> None:
        """Delete a payment (the invoices it paid are owed again)."""
        self._mutate(realm_id, lambda co, when: ledger.delete_payment(co, {
            "Id": payment_id, "SyncToken": co.find("Payment", payment_id)["SyncToken"]}, when))

    def void_invoice(self, realm_id: str, invoice_id: str) -> None:
        """Void an invoice (payments on it become unapplied credit)."""
        self._mutate(realm_id, lambda co, when: ledger.void_invoice(co, {
            "Id": invoice_id, "SyncToken": co.find("Invoice", invoice_id)["SyncToken"]}, when))

    def delete_invoice(self, realm_id: str, invoice_id: str) -> None:
        """Delete an invoice as the UI does (unlinking its payments first)."""
        self._mutate(realm_id, lambda co, when: ledger.delete_invoice(co, {
            "Id": invoice_id, "SyncToken": co.find("Invoice", invoice_id)["SyncToken"]}, when,
            unlink=True))

    def edit_invoice(self, realm_id: str, invoice_id: str, **fields: Any) -> None:
        """Change fields (e.g. ``DueDate="2026-12-01"``, ``PrivateNote="..."``; None clears)."""
        def run(co: Company, when: datetime) -> None:
            body: dict[str, Any] = {"Id": invoice_id, "sparse": True,
                                    "SyncToken": co.find("Invoice", invoice_id)["SyncToken"]}
            for key, value in fields.items():
                if isinstance(value, date):
                    value = value.isoformat()
                elif key == "CustomerMemo" and isinstance(value, str):
                    value = {"value": value}
                elif key.startswith("BillEmail") and isinstance(value, str):
                    value = {"Address": value}
                body[key] = value
            ledger.write_invoice(co, body, when)
        self._mutate(realm_id, run)

    def create_invoice(self, realm_id: str, customer_id: str, amount: Decimal, *,
                       due_date: date, currency: str | None = None) -> str:
        """Raise a one-line invoice; returns its Id."""
        body: dict[str, Any] = {
            "CustomerRef": {"value": customer_id}, "DueDate": due_date.isoformat(),
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal(str(amount)),
                      "Description": "Professional services",
                      "SalesItemLineDetail": {"ItemRef": {"name": "Services", "value": "1"}}}]}
        if currency:
            body["CurrencyRef"] = currency_ref(currency)
        return self._mutate(  # type: ignore[no-any-return]
            realm_id, lambda co, when: ledger.write_invoice(co, body, when)["Id"])

    def apply_credit_memo(self, realm_id: str, invoice_id: str, amount: Decimal) -> str:
        """Issue a credit memo and apply it to the invoice; returns the CreditMemo Id."""
        def run(co: Company, when: datetime) -> str:
            inv = co.find("Invoice", invoice_id)
            value = Decimal(str(amount))
            memo = ledger.write_credit_memo(co, {
                "CustomerRef": {"value": inv["CustomerRef"]["value"]},
                "CurrencyRef": inv["CurrencyRef"],
                "Line": [{"DetailType": "SalesItemLineDetail", "Amount": value,
                          "Description": "Credit", "SalesItemLineDetail": {}}]}, when)
            ledger.write_payment(co, {
                "CustomerRef": {"value": inv["CustomerRef"]["value"]},
                "CurrencyRef": inv["CurrencyRef"], "TotalAmt": 0,
                "Line": [{"Amount": value, "LinkedTxn": [{"TxnId": invoice_id,
                                                          "TxnType": "Invoice"}]},
                         {"Amount": value, "LinkedTxn": [{"TxnId": memo["Id"],
                                                          "TxnType": "CreditMemo"}]}]}, when)
            return str(memo["Id"])
        return self._mutate(realm_id, run)  # type: ignore[no-any-return]

    def get(self, realm_id: str, entity: str, id: str) -> dict[str, Any]:
        """A copy of the stored object (``entity`` as ``"Invoice"`` or ``"invoice"``); a deleted
        one comes back as the tombstone CDC reports (``{"status": "Deleted", ...}``)."""
        co = self.company(realm_id)
        name = next((e for e in co.objects if e.lower() == entity.lower()), entity)
        with co.lock:
            deleted_at = co.tombstones.get(name, {}).get(str(id))
            if deleted_at is not None and str(id) not in co.objects[name]:
                when = datetime.fromtimestamp(deleted_at, co.tz)
                return {"status": "Deleted", "domain": "QBO", "Id": str(id),
                        "MetaData": {"LastUpdatedTime": wire.qbo_time(when)}}
            return wire_copy(co.find(name, id))  # type: ignore[no-any-return]

    def invoice_ids(self, realm_id: str, *, include_deleted: bool = True) -> list[str]:
        """Ids of the company's invoices in Id order (deleted ones too, unless told not to)."""
        co = self.company(realm_id)
        with co.lock:
            ids = set(co.objects["Invoice"])
            if include_deleted:
                ids |= set(co.tombstones["Invoice"])
        return sorted(ids, key=int)

    def open_invoice_ids(self, realm_id: str) -> list[str]:
        """Ids of invoices with money still owed (Balance > 0), in Id order."""
        co = self.company(realm_id)
        with co.lock:
            return [inv["Id"] for inv in co.rows("Invoice") if Decimal(str(inv["Balance"])) > 0]

    # --- fault injection, rate limits, stats ------------------------------------------------------

    def inject_faults(self, status: int, count: int, *, realm_id: str | None = None) -> None:
        """The next ``count`` API requests (to ``realm_id``, or any) answer ``status``."""
        with self._lock:
            self._faults.append([status, count, realm_id])

    def _take_fault(self, realm_id: str) -> int | None:
        with self._lock:
            for entry in self._faults:
                if entry[1] > 0 and entry[2] in (None, realm_id):
                    entry[1] -= 1
                    return int(entry[0])
        return None

    def count(self, realm_id: str | None, *keys: str) -> None:
        """Add one to each counter in ``keys`` for the realm."""
        with self._lock:
            counter = self.stats[realm_id or "?"]
            for key in keys:
                counter[key] += 1

    def _admit(self, realm_id: str, batch: bool) -> None:
        """Count a request against the per-realm limits, or raise the 429 fault."""
        now = self.clock.now().timestamp()
        with self._lock:
            self._inflight[realm_id] += 1
            if not self.rate_limits:
                return
            windows = [(self._minute[realm_id], REQUESTS_PER_MINUTE)]
            if batch:
                windows.append((self._batch_minute[realm_id], BATCH_REQUESTS_PER_MINUTE))
            for window, _limit in windows:
                while window and window[0] <= now - 60:
                    window.popleft()
            if self._inflight[realm_id] > MAX_CONCURRENT or any(
                    len(window) >= limit for window, limit in windows):
                self._inflight[realm_id] -= 1
                self.stats[realm_id]["throttled"] += 1
                raise wire.throttled()
            for window, _limit in windows:
                window.append(now)

    def _release(self, realm_id: str) -> None:
        with self._lock:
            self._inflight[realm_id] -= 1

    # --- the API ----------------------------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        realm = request.params["realm"]
        rest = request.params["rest"].strip("/")
        kind = self.api.kind(request.method, rest)
        self.count(realm, "api_calls", kind)
        co = self.companies.get(realm)
        json_mode = "application/json" in (request.headers.get("Accept") or "").lower()
        now_text = co.response_time() if co else wire.qbo_response_time(self.clock.now())

        def render(payload: dict[str, Any], status: int = 200) -> Response:
            if status >= 400:
                self.count(realm, "faults")
            response = wire.json_response(payload, status) if json_mode else wire.xml_response(
                payload, status)
            response.headers["intuit_tid"] = str(uuid.uuid4())  # what support asks you for
            return response

        injected = self._take_fault(realm)
        if injected is not None:
            return self._injected(injected, render, now_text)
        auth = request.headers.get("Authorization") or ""
        if not auth.lower().startswith("bearer "):
            return render(wire.auth_failed_payload("Authorization header missing", now_text), 401)
        token, reason = self.oauth.check_access(auth[7:].strip())
        if token is None:
            return render(wire.auth_failed_payload(reason, now_text), 401)
        if token.realm_id != realm or co is None:
            return render(wire.fault_payload(wire.forbidden(), now_text), 403)
        try:
            self._check_minor_version(request.arg("minorversion"))
            self._admit(realm, kind == "batch")
        except QBOFault as fault:
            return render(wire.fault_payload(fault, now_text), fault.status)
        try:
            request_id = request.arg("requestid") if request.method == "POST" else None
            if request_id:
                with self._lock:
                    cached = self._replies.get((realm, request_id))
                if cached is not None:
                    return cached  # same answer, not applied twice (the documented contract)
            try:
                reply = self.api.dispatch(co, request, rest)
                if isinstance(reply, Response):
                    return reply
                response = render(reply)
            except QBOFault as fault:
                response = render(wire.fault_payload(fault, co.response_time()), fault.status)
            if request.method == "POST":  # a write (or a query): webhooks look for changes
                self._changed()
            if request_id:
                with self._lock:
                    self._replies[(realm, request_id)] = response
                    if len(self._replies) > REPLAY_CACHE_SIZE:  # oldest first (insertion order)
                        del self._replies[next(iter(self._replies))]
            return response
        finally:
            self._release(realm)

    @staticmethod
    def _check_minor_version(value: str | None) -> None:
        # GUESS: Intuit retired minor versions below 75 in 2025; the emulator refuses them with a
        # 400 ValidationFault rather than silently upgrading, so a stale client setting shows up.
        if value is None:
            return
        try:
            number = int(value)
        except ValueError:
            raise wire.invalid(f"Invalid minorversion: {value}", "minorversion") from None
        if number < MIN_MINOR_VERSION:
            raise wire.invalid(f"Minor version {number} is no longer supported. Minimum "
                               f"supported minor version is {MIN_MINOR_VERSION}", "minorversion")

    def _injected(self, status: int, render: Callable[[dict[str, Any], int], Response],
                  now_text: str) -> Response:
        """The answer to an injected fault, shaped as the real service's for that status."""
        if status == 429:
            return render(wire.fault_payload(wire.throttled(), now_text), 429)
        if status == 401:
            return render(wire.auth_failed_payload("Token revoked or invalid", now_text), 401)
        if status == 403:
            return render(wire.fault_payload(wire.forbidden(), now_text), 403)
        if status in (502, 503, 504):  # the proxy in front answers these, in HTML
            self.count(None, "faults")
            return wire.gateway_html(status)
        fault = wire.invalid("Injected validation fault") if status < 500 else wire.system_fault()
        fault.status = status
        return render(wire.fault_payload(fault, now_text), status)

    def _pay(self, request: Request) -> Response:
        return pay_page(self, request)


def serve(host: str = "127.0.0.1", port: int = 0,
          **kw: Any) -> tuple[QuickBooksSandbox, SandboxServer]:
    """Start a sandbox on a background server; add companies with ``sandbox.add_company``."""
    sandbox = QuickBooksSandbox(**kw)
    server = SandboxServer(sandbox, host=host, port=port)
    server.start()
    return sandbox, server

