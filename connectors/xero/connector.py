"""Reads one Xero organisation into arsync's mirror through xero-python, within Xero's limits.

Each entity is listed with ``pageSize=1000`` (the maximum) in a stable ``<ID> ASC`` order, so a
record edited mid-listing never slides onto a page already read; ``pagination.pageCount`` ends a
listing. Incremental reads send ``If-Modified-Since`` = cursor - :data:`.settings.OVERLAP`; the
cursor emitted on an entity's last page is the server's ``DateTimeUTC`` of its first page, so a
change made after the listing began is read again next time. Up to ``prefetch`` further pages are
fetched while the sync engine applies the current one; every request goes through the
organisation's :mod:`.budget`.

Tokens: the SDK's ``OAuth2Token`` is never installed. A small hook hands the SDK the header
``Bearer <token>`` for the token this thread took from arsync's :class:`TokenSource`, so the SDK
has nothing to refresh with; a 401 asks the token source for a newer token once. urllib3's
retries are off: its pool would sleep through a day-limit ``Retry-After`` by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, NamedTuple

import urllib3
from xero_python.accounting import AccountingApi, RequestEmpty
from xero_python.api_client import ApiClient, Configuration

from arsync.clock import Clock
from arsync.config import Settings
from arsync.domain import CompanyInfo, Entity, Record, SyncPage, require_aware
from arsync.errors import AuthError, MalformedPayloadError, RateLimitedError
from connectors.base import TokenSource
from connectors.retry import RetryPolicy, call_with_retries
from connectors.xero import mapping
from connectors.xero.budget import DayBudgetSpent, budget_for
from connectors.xero.errors import map_error
from connectors.xero.settings import (
    ACCOUNTING_PATH,
    CONCURRENT_LIMIT,
    INVOICE_STATUSES,
    OVERLAP,
    PAGE_SIZE,
    PROVIDER,
    REQUEST_TIMEOUT,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listing:
    """How one entity is listed: SDK method, JSON list key, fixed query parameters."""

    entity: Entity
    method: str
    key: str
    params: Mapping[str, Any] = field(default_factory=dict)


#: Customers first and payments last, so every reference points at something already synced.
LISTINGS: tuple[Listing, ...] = (
    Listing(Entity.CUSTOMERS, "get_contacts", "Contacts",
            {"include_archived": "true", "order": "ContactID ASC"}),
    # summaryOnly: no line items, payments or credit-note arrays (most of an invoice's bytes);
    # the mirror reads only the totals, amount due, status, dates and contact reference.
    Listing(Entity.INVOICES, "get_invoices", "Invoices",
            {"where": 'Type=="ACCREC"', "statuses": list(INVOICE_STATUSES),
             "order": "InvoiceID ASC", "summary_only": True}),
    Listing(Entity.CREDIT_NOTES, "get_credit_notes", "CreditNotes",
            {"where": 'Type=="ACCRECCREDIT"', "order": "CreditNoteID ASC"}),
    # No server-side filter: an OR over payment types is an "unoptimised" where (API_FACTS §2).
    Listing(Entity.PAYMENTS, "get_payments", "Payments", {"order": "PaymentID ASC"}),
)

RETRY = RetryPolicy(attempts=8)
#: Ids per ``IDs=`` call of a targeted refresh (keeps the URL well under common limits).
CHANGED_IDS_PER_CALL = 50


class Reply(NamedTuple):
    data: bytes
    headers: Mapping[str, str]


class _Page(NamedTuple):
    records: list[Record]
    page_count: int | None
    items: int
    server_time: datetime | None


class _BearerHook:
    """Stands where the SDK expects its OAuth2Token: supplies the header, cannot refresh."""

    def __init__(self, local: threading.local) -> None:
        self._local = local

    def get_auth_settings(self) -> Callable[..., dict[str, str]]:
        return self._header

    def _header(self, api_client: Any = None) -> dict[str, str]:
        return {"type": "oauth2", "in": "header", "key": "Authorization",
                "value": f"Bearer {self._local.token}"}


def _api_client(local: threading.local) -> ApiClient:
    # Configuration's metaclass hands out copies of the first instance ever built and ignores
    # constructor arguments after that, so the hook is set on our copy, never passed in.
    config = Configuration()
    config.oauth2_token = _BearerHook(local)
    client = ApiClient(config, pool_threads=1)
    pool = client.rest_client.pool_manager
    client.rest_client.pool_manager = urllib3.PoolManager(
        num_pools=2, maxsize=CONCURRENT_LIMIT, retries=False,
        **{k: v for k, v in pool.connection_pool_kw.items() if k in ("cert_reqs", "ca_certs")})
    return client


class XeroConnector:
    """One Xero organisation, read through xero-python's AccountingApi."""

    provider: ClassVar[str] = PROVIDER

    def __init__(self, settings: Settings, *, tenant_id: str, tokens: TokenSource, clock: Clock,
                 prefetch: int = CONCURRENT_LIMIT - 1, retry: RetryPolicy = RETRY) -> None:
        self.tenant_id = tenant_id
        self.api_calls = 0
        self._tokens = tokens
        self._clock = clock
        self._prefetch = max(0, prefetch)
        self._retry = retry
        self._budget = budget_for(tenant_id, reserve=settings.xero_day_reserve)
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self._api = AccountingApi(_api_client(self._local),
                                  base_url=settings.xero_api_url + ACCOUNTING_PATH)
        self._base_currency: str | None = None

    # -- the Connector protocol ---------------------------------------------------------------

    def fetch_company(self) -> CompanyInfo:
        # Urgent: a person is waiting on a connect, and it is one call.
        info = mapping.to_company(self.request_json("get_organisations", urgent=True))
        self._base_currency = info.currency
        return info

    def sync(self, cursors: Mapping[Entity, datetime | None], *, full: bool) -> Iterator[SyncPage]:
        for listing in LISTINGS:
            yield from self._list(listing, None if full else cursors.get(listing.entity))

    def fetch_changed(self, entity: Entity, ids: Sequence[str]) -> SyncPage:
        """The current state of just these records (a webhook's targeted refresh).

        Invoices and contacts by ``IDs=`` (naming every status, as DELETED invoices are left out
        otherwise); credit notes and payments one by one (their lists take no ``IDs``). Xero
        never hard-deletes sales records, so nothing is reported deleted. Urgent: a person's
        payment may be about to cancel a reminder.
        """
        wanted = sorted({str(i) for i in ids})
        records: list[Record] = []
        for first in range(0, len(wanted), CHANGED_IDS_PER_CALL):
            chunk = wanted[first:first + CHANGED_IDS_PER_CALL]
            if entity is Entity.INVOICES:
                payload = self.request_json("get_invoices", urgent=True, i_ds=chunk,
                                            statuses=list(INVOICE_STATUSES), summary_only=True)
                records += mapping.parse_records("Invoices", payload, self._base_currency)
            elif entity is Entity.CUSTOMERS:
                payload = self.request_json("get_contacts", urgent=True, i_ds=chunk,
                                            include_archived="true")
                records += mapping.parse_records("Contacts", payload, self._base_currency)
            else:
                method, key = (("get_credit_note", "CreditNotes")
                               if entity is Entity.CREDIT_NOTES else ("get_payment", "Payments"))
                for one in chunk:
                    payload = self.request_json(method, urgent=True, **{
                        "credit_note_id" if key == "CreditNotes" else "payment_id": one})
                    records += mapping.parse_records(key, payload, self._base_currency)
        return SyncPage(entity, records=records)

    # -- one invoice: pay link and email (arsync.paylinks, arsync.provider_email) -------------

    def pay_link(self, invoice_id: str) -> str | None:
        """``GET /Invoices/{id}/OnlineInvoice``: the online invoice URL (ACCREC, not draft).

        Urgent: it is read right before a message goes out, like the freshness check.
        """
        doc = self.request_json("get_online_invoice", urgent=True, invoice_id=invoice_id)
        rows = doc.get("OnlineInvoices") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise MalformedPayloadError("Xero OnlineInvoice answer lacks OnlineInvoices",
                                        provider=PROVIDER)
        url = rows[0].get("OnlineInvoiceUrl") if rows and isinstance(rows[0], dict) else None
        return str(url) if url else None

    def email_invoice(self, invoice_id: str, *, idempotency_key: str) -> None:
        """``POST /Invoices/{id}/Email`` (204): Xero emails the invoice to its contact.

        The ``Idempotency-Key`` turns the connector's retries after a lost answer into replays
        rather than second emails (Xero keeps keys for a few minutes).
        """
        self._request("email_invoice", {"invoice_id": invoice_id, "request_empty": RequestEmpty(),
                                        "idempotency_key": idempotency_key}, urgent=True)

    # -- requests -----------------------------------------------------------------------------

    def request_json(self, method: str, *, urgent: bool = False, **params: Any) -> Any:
        """Call an AccountingApi ``method`` for this organisation and return the parsed JSON.

        ``urgent`` calls (notes, the freshness check before a send) may spend the day reserve.
        """
        return mapping.loads(self._request(method, params, urgent=urgent).data)

    def _request(self, method: str, params: Mapping[str, Any], *, urgent: bool) -> Reply:
        call = getattr(self._api, method)

        def send() -> Reply:
            resp = call(self.tenant_id, **params, _preload_content=False,
                        _request_timeout=REQUEST_TIMEOUT)
            try:
                return Reply(resp.data, resp.headers)
            finally:
                resp.release_conn()

        try:
            return call_with_retries(lambda: self._authorised(send, urgent), policy=self._retry,
                                     sleep=lambda s: self._budget.wait(s, self._clock),
                                     what=f"Xero {method}")
        except DayBudgetSpent as exc:
            raise RateLimitedError(f"Xero day limit for {self.tenant_id}: deferring non-urgent "
                                   "work until the window resets", provider=PROVIDER,
                                   retry_after=exc.retry_after, problem="day") from None

    def _authorised(self, send: Callable[[], Reply], urgent: bool) -> Reply:
        token = self._tokens.access_token()
        try:
            return self._send(send, token, urgent)
        except AuthError as exc:
            if exc.status != 401:
                raise
        # The token may have been revoked or expired early: one refresh (or a token another
        # worker already refreshed), one retry, then the grant is reported dead.
        try:
            return self._send(send, self._tokens.refreshed_after(token), urgent)
        except AuthError as exc:
            if exc.status == 401:
                raise AuthError("Xero rejected a freshly refreshed access token",
                                provider=PROVIDER, status=401) from exc
            raise

    def _send(self, send: Callable[[], Reply], token: str, urgent: bool) -> Reply:
        with self._budget.slot(self._clock, urgent=urgent) as ticket:
            self._local.token = token
            with self._count_lock:
                self.api_calls += 1
            try:
                reply = send()
            except Exception as exc:
                error = map_error(exc)
                resp = getattr(exc, "http_resp", None)
                if resp is not None:
                    resp.urllib3_response.release_conn()
                if isinstance(error, RateLimitedError):
                    self._budget.throttled(error.problem, error.retry_after, self._clock, ticket)
                    if error.problem and "day" in error.problem:
                        raise DayBudgetSpent(error.retry_after) from exc
                elif resp is not None:  # Xero answered, so it counted the call
                    self._budget.observe(resp.getheaders(), self._clock, ticket)
                raise error from exc
            finally:
                self._local.token = None
            self._budget.observe(reply.headers, self._clock, ticket)
            return reply

    # -- listings -----------------------------------------------------------------------------

    def _fetch(self, listing: Listing, page: int, since: datetime | None) -> _Page:
        params = dict(listing.params, page=page, page_size=PAGE_SIZE)
        if since is not None:
            params["if_modified_since"] = since
        reply = self._request(listing.method, params, urgent=False)
        payload = mapping.loads(reply.data)
        if not isinstance(payload, dict):
            raise MalformedPayloadError(f"Xero {listing.key} page is not an object",
                                        provider=PROVIDER)
        page_count = (payload.get("pagination") or {}).get("pageCount")
        server_time = mapping.parse_datetime(payload.get("DateTimeUTC"))
        if server_time is None and reply.headers.get("Date"):
            server_time = parsedate_to_datetime(reply.headers["Date"]).astimezone(UTC)
        return _Page(mapping.parse_records(listing.key, payload, self._base_currency),
                     int(page_count) if page_count is not None else None,
                     len(payload.get(listing.key) or ()), server_time)

    def _list(self, listing: Listing, cursor: datetime | None) -> Iterator[SyncPage]:
        since = None
        if cursor is not None:
            since = (require_aware(cursor, "cursor").astimezone(UTC) - OVERLAP)
            since = since.replace(microsecond=0)
        started = self._clock.now()
        current = self._fetch(listing, 1, since)
        # Every change after the listing began is read again next time (the server's clock).
        new_cursor = current.server_time or started
        if cursor is not None:
            new_cursor = max(new_cursor, cursor)  # never move a cursor backwards
        pool = ThreadPoolExecutor(self._prefetch, f"xero-{listing.key}") if self._prefetch else None
        ahead: dict[int, Future[_Page]] = {}
        number, total = 1, 0
        try:
            while True:
                total = max(total, current.page_count or 0)
                # Without a pagination block a short page is the end: we ask for exactly the max.
                last = (current.items < PAGE_SIZE if current.page_count is None
                        else number >= total)
                if pool is not None and not last:
                    for n in range(number + 1, min(number + self._prefetch, total) + 1):
                        if n not in ahead:
                            ahead[n] = pool.submit(self._fetch, listing, n, since)
                yield SyncPage(listing.entity, current.records,
                               cursor=new_cursor if last else None,
                               full_listing_done=last and since is None)
                if last:
                    log.debug("xero %s: %s listed in %d page(s)", self.tenant_id, listing.key,
                              number)
                    return
                number += 1
                future = ahead.pop(number, None)
                current = future.result() if future else self._fetch(listing, number, since)
        finally:
            for future in ahead.values():
                future.cancel()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Throughput:
    """What one drained sync did: records per entity, API calls and wall-clock seconds."""

    records: dict[Entity, int]
    api_calls: int
    seconds: float

    @property
    def per_second(self) -> float:
        return sum(self.records.values()) / self.seconds if self.seconds else 0.0


def measure(connector: XeroConnector, pages: Iterable[SyncPage] | None = None) -> Throughput:
    """Drain ``pages`` (default: a full sync) and report the throughput (benchmark helper)."""
    calls, start = connector.api_calls, time.perf_counter()
    counts: dict[Entity, int] = {}
    for page in pages if pages is not None else connector.sync({}, full=True):
        counts[page.entity] = counts.get(page.entity, 0) + len(page.records)
    return Throughput(counts, connector.api_calls - calls, time.perf_counter() - start)
