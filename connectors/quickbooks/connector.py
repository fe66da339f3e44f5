"""Reads a QuickBooks Online company into arsync's mirror, within Intuit's limits.

Full sync pages every entity with ``STARTPOSITION``/``MAXRESULTS 1000`` queries, several pages of
several entities packed into one batch request (at most 30 items), so 20,000 invoices, 10,000
payments and 2,000 customers take about a dozen requests. Incremental sync asks change data
capture for everything changed since the cursor in *one* request. CDC answers at most 1,000
objects and looks back at most 30 days, so:

1. a cursor older than 30 days (or none) means a full sync;
2. a full CDC answer is split: each entity is asked on its own;
3. an entity still at the 1,000 cap is listed in full (its reconciliation also catches deletes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from quickbooks import QuickBooks
from quickbooks import exceptions as qbx

from arsync.clock import Clock
from arsync.config import Settings
from arsync.domain import CompanyInfo, Entity, Record, SyncPage
from arsync.errors import MalformedPayloadError, TransientError
from connectors.base import TokenSource
from connectors.notes import NoteRequest, NoteResult
from connectors.quickbooks import mapping
from connectors.quickbooks.notes import QuickBooksNotes
from connectors.quickbooks.transport import QuickBooksSession
from connectors.retry import RetryPolicy, call_with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGE_SIZE = 1000  # the API's maximum MAXRESULTS
#: Consecutive pages share this many rows, so a deletion mid-listing cannot hide a record.
PAGING_OVERLAP = 50
PAGE_STEP = PAGE_SIZE - PAGING_OVERLAP
BATCH_MAX_ITEMS = 30
#: Ids per ``Id IN (...)`` query of a targeted refresh (keeps each query short).
CHANGED_IDS_PER_QUERY = 100
CDC_MAX_OBJECTS = 1000
CDC_LOOKBACK = timedelta(days=30)
#: Re-read this much before the cursor: LastUpdatedTime is not strictly monotonic across writers.
OVERLAP = timedelta(minutes=2)
#: Keep clear of the 30-day edge so a slow request can't cross it and be refused.
LOOKBACK_MARGIN = timedelta(hours=1)

#: arsync entity -> (QuickBooks entity, WHERE clause for a complete listing)
ENTITIES: dict[Entity, tuple[str, str]] = {
    # Inactive customers are left out of a plain query; their invoices still need a name.
    Entity.CUSTOMERS: ("Customer", "WHERE Active IN (true, false) "),
    Entity.INVOICES: ("Invoice", ""),
    Entity.PAYMENTS: ("Payment", ""),
    Entity.CREDIT_NOTES: ("CreditMemo", ""),
}

#: What a listing selects: exactly the fields ``mapping`` reads. An invoice's lines, tax detail
#: and addresses are most of its bytes and none of the mirror's business, so leaving them out
#: makes a full listing several times lighter for both sides.
FIELDS: dict[Entity, str] = {
    Entity.CUSTOMERS: "Id, SyncToken, DisplayName, CompanyName, FullyQualifiedName, "
                      "PrimaryEmailAddr, PrimaryPhone, CurrencyRef, Active, MetaData",
    Entity.INVOICES: "Id, SyncToken, DocNumber, TxnDate, DueDate, TotalAmt, Balance, CurrencyRef, "
                     "ExchangeRate, CustomerRef, BillEmail, PrivateNote, MetaData",
    Entity.PAYMENTS: "Id, SyncToken, TotalAmt, UnappliedAmt, CustomerRef, CurrencyRef, TxnDate, "
                     "PrivateNote, Line, MetaData",
    Entity.CREDIT_NOTES: "Id, SyncToken, DocNumber, TotalAmt, RemainingCredit, Balance, "
                         "CustomerRef, CurrencyRef, TxnDate, PrivateNote, MetaData",
}

#: A country's usual zone, used only when CompanyInfo has no usable DefaultTimeZone.
COUNTRY_ZONES = {"US": "America/New_York", "CA": "America/Toronto", "GB": "Europe/London",
                 "UK": "Europe/London", "AU": "Australia/Sydney", "NZ": "Pacific/Auckland",
                 "IE": "Europe/Dublin", "IN": "Asia/Kolkata", "FR": "Europe/Paris",
                 "ZA": "Africa/Johannesburg", "SG": "Asia/Singapore"}


class QuickBooksConnector:
    """One QuickBooks company (realm), read through python-quickbooks."""

    provider: ClassVar[str] = "quickbooks"

    def __init__(self, settings: Settings, *, tenant_id: str, tokens: TokenSource, clock: Clock,
                 pages_per_batch: int = 2, retry: RetryPolicy | None = None) -> None:
        self.realm_id = tenant_id
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._pages_per_batch = max(1, pages_per_batch)
        self._session = QuickBooksSession(tokens)
        self._qb = QuickBooks(company_id=tenant_id, minorversion=settings.quickbooks_minor_version,
                              use_decimal=True)
        self._qb.session = self._session
        # python-quickbooks keeps its base URL in a class attribute; set it per instance.
        self._qb.api_url_v3 = f"{settings.quickbooks_api_url}/v3"
        self._home_currency: str | None = None
        self._notes: QuickBooksNotes | None = None

    @property
    def api_calls(self) -> int:
        return self._session.api_calls

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], what: str) -> T:
        def attempt() -> T:
            try:
                return fn()
            except qbx.QuickbooksException as exc:
                raise mapping.map_sdk_error(exc) from exc

        return call_with_retries(attempt, policy=self._retry, sleep=self._clock.sleep, what=what)

    def _batch(self, queries: list[tuple[str, str]]) -> tuple[dict[str, Any], datetime | None]:
        """Run up to 30 queries in one request; returns each item's QueryResponse by bId."""
        body = json.dumps({"BatchItemRequest": [{"bId": b, "Query": q} for b, q in queries]})
        resp = self._call(lambda: self._qb.batch_operation(body), "QuickBooks batch")
        results: dict[str, Any] = {}
        for item in resp.get("BatchItemResponse") or []:
            if "Fault" in item:
                fault = item["Fault"]
                codes = mapping.fault_codes(fault) or [0]
                err = (fault.get("Error") or [{}])[0]
                raise mapping.map_sdk_error(qbx.QuickbooksException(
                    err.get("Message", "batch item fault"), codes[0], err.get("Detail", "")))
            results[str(item.get("bId"))] = item.get("QueryResponse") or {}
        missing = {b for b, _ in queries} - results.keys()
        if missing:
            raise MalformedPayloadError(f"QuickBooks batch answer lacks items {sorted(missing)}",
                                        provider=self.provider)
        return results, mapping.parse_time(resp.get("time"), "batch time")

    def home_currency(self) -> str:
        if self._home_currency is None:
            self._home_currency = self.fetch_company().currency
        return self._home_currency

    def _to_record(self, entity: Entity, obj: Mapping[str, Any]) -> Record:
        if entity is Entity.CUSTOMERS:
            return mapping.to_customer(obj)
        if entity is Entity.INVOICES:
            return mapping.to_invoice(obj, self.home_currency)
        if entity is Entity.PAYMENTS:
            return mapping.to_payment(obj, self.home_currency)
        return mapping.to_credit_note(obj, self.home_currency)

    # -- the Connector interface -------------------------------------------------------------

    def fetch_company(self) -> CompanyInfo:
        results, _ = self._batch([("company", "SELECT * FROM CompanyInfo"),
                                  ("prefs", "SELECT * FROM Preferences")])
        info = (results["company"].get("CompanyInfo") or [{}])[0]
        prefs = (results["prefs"].get("Preferences") or [{}])[0]
        currency = ((prefs.get("CurrencyPrefs") or {}).get("HomeCurrency") or {}).get("value")
        country = str(info.get("Country") or (info.get("CompanyAddr") or {}).get("Country") or "US")
        if not currency:
            raise MalformedPayloadError("QuickBooks Preferences lack CurrencyPrefs.HomeCurrency",
                                        provider=self.provider)
        self._home_currency = str(currency)
        # The address meant for customers first, then the company's own.
        email = ((info.get("CustomerCommunicationEmailAddr") or {}).get("Address")
                 or (info.get("Email") or {}).get("Address"))
        return CompanyInfo(name=str(info.get("CompanyName") or self.realm_id),
                           currency=self._home_currency, country=country[:2].upper(),
                           timezone=_zone(info.get("DefaultTimeZone"), country),
                           email=str(email).strip() or None if email else None)

    def sync(self, cursors: Mapping[Entity, datetime | None], *, full: bool) -> Iterator[SyncPage]:
        marks = [cursors.get(e) for e in ENTITIES]
        oldest = None if any(m is None for m in marks) else min(m for m in marks if m)
        horizon = self._clock.now() - CDC_LOOKBACK + LOOKBACK_MARGIN
        if full or oldest is None or oldest < horizon:
            yield from self._full(list(ENTITIES))
        else:
            yield from self._incremental(oldest - OVERLAP)

    def write_notes(self, notes: Sequence[NoteRequest]) -> list[NoteResult]:
        """Write dunning notes into the invoices' PrivateNote (``connectors.quickbooks.notes``)."""
        if self._notes is None:  # one instance, so its pacing spans calls
            self._notes = QuickBooksNotes(self._qb, clock=self._clock, retry=self._retry)
        return self._notes.write_notes(notes)

    def fetch_changed(self, entity: Entity, ids: Sequence[str]) -> SyncPage:
        """The current state of just these records (a webhook's targeted refresh).

        ``Id IN (...)`` queries, up to 30 of them in one batch request; an id the query does not
        return has left the books (deleted or merged away), so it is reported as deleted.
        """
        wanted = sorted({str(i) for i in ids if str(i).isdigit()}, key=int)  # Ids are numeric
        if len(wanted) != len(set(map(str, ids))):
            log.warning("realm %s: ignoring non-numeric %s ids in a change notice",
                        self.realm_id, entity.value)
        name, where = ENTITIES[entity]
        rows: list[Mapping[str, Any]] = []
        chunks = [wanted[i:i + CHANGED_IDS_PER_QUERY]
                  for i in range(0, len(wanted), CHANGED_IDS_PER_QUERY)]
        for first in range(0, len(chunks), BATCH_MAX_ITEMS):
            queries = []
            for n, chunk in enumerate(chunks[first:first + BATCH_MAX_ITEMS]):
                listed = ", ".join(f"'{i}'" for i in chunk)
                cond = f"{where}AND Id IN ({listed}) " if where else f"WHERE Id IN ({listed}) "
                queries.append((f"ids:{n}", f"SELECT {FIELDS[entity]} FROM {name} "  # noqa: S608
                                            f"{cond}MAXRESULTS {PAGE_SIZE}"))
            results, _ = self._batch(queries)
            for bid, _query in queries:
                rows.extend(results[bid].get(name) or [])
        found = {str(r.get("Id")) for r in rows}
        return SyncPage(entity, records=[self._to_record(entity, r) for r in rows],
                        deleted_ids=[i for i in wanted if i not in found])

    # -- one invoice: pay link and email (arsync.paylinks, arsync.provider_email) -------------

    def read_invoice(self, invoice_id: str, *, pay_link: bool = False) -> Mapping[str, Any]:
        """The invoice as QuickBooks has it now (with ``InvoiceLink`` when asked and offered)."""
        # include=invoiceLink needs minorversion >= 36; the client always sends 75 or more.
        params = {"include": "invoiceLink"} if pay_link else None
        resp = self._call(lambda: self._qb.get_single_object("Invoice", invoice_id, params=params),
                          "QuickBooks invoice read")
        invoice = resp.get("Invoice") if isinstance(resp, Mapping) else None
        if not isinstance(invoice, Mapping):
            raise MalformedPayloadError(f"QuickBooks invoice {invoice_id} read without an Invoice",
                                        provider=self.provider)
        return invoice

    def pay_link(self, invoice_id: str) -> str | None:
        """The invoice's shareable pay link, or None where QuickBooks offers none.

        QuickBooks returns ``InvoiceLink`` only with online payments on, an invoice that accepts
        them and a customer with an email address; otherwise the field is simply absent.
        """
        link = self.read_invoice(invoice_id, pay_link=True).get("InvoiceLink")
        return str(link) if link else None

    def send_invoice(self, invoice_id: str, *, send_to: str | None,
                     request_id: str) -> Mapping[str, Any]:
        """``POST invoice/{id}/send``: QuickBooks emails the invoice. One attempt, no retries.

        ``requestid`` makes a repeat of the same request a replay, not a second email; the
        caller still never retries a send whose outcome it does not know.
        """
        url = f"{self._qb.api_url}/company/{self.realm_id}/invoice/{invoice_id}/send"
        params = {"sendTo": send_to} if send_to else {}
        try:
            resp = self._qb.post(url, None, "application/octet-stream", params=params,
                                 request_id=request_id)
        except qbx.QuickbooksException as exc:
            raise mapping.map_sdk_error(exc) from exc
        invoice = resp.get("Invoice") if isinstance(resp, Mapping) else None
        if not isinstance(invoice, Mapping):
            raise MalformedPayloadError(f"QuickBooks send of invoice {invoice_id} answered "
                                        "without an Invoice", provider=self.provider)
        return invoice

    # -- full listing -------------------------------------------------------------------------

    def _full(self, entities: list[Entity]) -> Iterator[SyncPage]:
        """List ``entities`` completely, by overlapping offset pages in batch requests.

        Offset paging shifts when a record is deleted mid-listing: every later row moves one
        place left and one would fall between two pages, unseen, and then be taken for deleted
        by the reconciliation. So consecutive pages overlap by ``PAGING_OVERLAP`` rows, and each
        page must still contain the previous page's last row; if it does not (more deletions
        than the overlap), the listing stops with a retryable error before anything is
        reconciled, and the next sync lists again.
        """
        next_start = dict.fromkeys(entities, 1)  # STARTPOSITION is 1-based
        last_id: dict[Entity, str | None] = dict.fromkeys(entities)
        watermark: datetime | None = None
        while next_start:
            per_entity = max(1, min(self._pages_per_batch, BATCH_MAX_ITEMS // len(next_start)))
            queries = []
            for entity, start in next_start.items():
                name, where = ENTITIES[entity]
                for k in range(per_entity):
                    pos = start + k * PAGE_STEP
                    query = (f"SELECT {FIELDS[entity]} FROM {name} {where}"  # noqa: S608 - constants
                             f"ORDERBY Id STARTPOSITION {pos} MAXRESULTS {PAGE_SIZE}")
                    queries.append((f"{entity.value}:{pos}", query))
            results, server_time = self._batch(queries)
            if watermark is None:  # changes made while we list are caught by CDC from here
                watermark = (server_time or self._clock.now()) - OVERLAP
            for entity in list(next_start):
                name, _ = ENTITIES[entity]
                finished = False
                for k in range(per_entity):
                    key = f"{entity.value}:{next_start[entity] + k * PAGE_STEP}"
                    rows = results.pop(key).get(name) or []
                    fresh = self._after(entity, last_id[entity], rows)
                    if fresh:
                        last_id[entity] = str(fresh[-1]["Id"])
                        yield SyncPage(entity, records=[self._to_record(entity, r) for r in fresh])
                    if len(rows) < PAGE_SIZE:
                        finished = True
                        break
                if finished:
                    yield SyncPage(entity, cursor=watermark, full_listing_done=True)
                    del next_start[entity]
                else:
                    next_start[entity] += per_entity * PAGE_STEP

    def _after(self, entity: Entity, previous: str | None,
               rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The rows of a page that follow ``previous`` (the last row already seen)."""
        if previous is None:
            return rows
        for i, row in enumerate(rows[:PAGING_OVERLAP + 1]):
            if str(row.get("Id")) == previous:
                return rows[i + 1:]
        if not rows:
            return rows  # the previous page ended the listing exactly
        raise TransientError(
            f"QuickBooks {ENTITIES[entity][0]} listing shifted by more than {PAGING_OVERLAP} rows "
            "while it was read (many deletions at once); it will be listed again",
            provider=self.provider)

    # -- change data capture ------------------------------------------------------------------

    def _cdc(self, entities: Iterable[Entity], since: datetime
             ) -> tuple[dict[Entity, list[Mapping[str, Any]]], datetime | None]:
        names = {ENTITIES[e][0]: e for e in entities}
        resp = self._call(lambda: self._qb.change_data_capture(",".join(names), since.isoformat()),
                          "QuickBooks CDC")
        by_name = mapping.split_cdc(resp, names)
        found = {names[name]: rows for name, rows in by_name.items()}
        return found, mapping.parse_time(resp.get("time"), "CDC time")

    def _incremental(self, since: datetime) -> Iterator[SyncPage]:
        found, server_time = self._cdc(ENTITIES, since)
        as_of = dict.fromkeys(found, server_time)  # each entity is in sync to its own answer's time
        relist: list[Entity] = []
        if sum(len(rows) for rows in found.values()) >= CDC_MAX_OBJECTS:
            # The answer may be cut short somewhere: ask each entity alone.
            log.info("CDC for realm %s hit %d objects; splitting by entity", self.realm_id,
                     CDC_MAX_OBJECTS)
            found = {}
            for entity in ENTITIES:
                alone, as_of[entity] = self._cdc([entity], since)
                if len(alone[entity]) >= CDC_MAX_OBJECTS:
                    relist.append(entity)
                else:
                    found[entity] = alone[entity]
        for entity, rows in found.items():
            live = [r for r in rows if not mapping.is_deleted(r)]
            gone = [str(r["Id"]) for r in rows if mapping.is_deleted(r) and r.get("Id")]
            yield SyncPage(entity, records=[self._to_record(entity, r) for r in live],
                           deleted_ids=gone, cursor=as_of[entity] or self._clock.now())
        if relist:
            log.info("realm %s: %s changed too much for CDC; listing in full", self.realm_id,
                     ", ".join(e.value for e in relist))
            yield from self._full(relist)


def _zone(default_tz: Any, country: str) -> str:
    """An IANA zone from CompanyInfo.DefaultTimeZone, else the country's usual one."""
    for candidate in (default_tz, COUNTRY_ZONES.get(country.upper()[:2])):
        if candidate:
            try:
                ZoneInfo(str(candidate))
                return str(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return "UTC"
