"""One emulated QuickBooks company: its objects, ids, clock, and the generic write rules.

Objects are stored as the JSON dicts the API returns (money as ``Decimal``). A stored dict is never
mutated: every write stores a fresh copy (copy-on-write), which lets the seed share constant
sub-objects between 100,000 invoices and lets readers serialize without holding the lock. Writes
run inside :meth:`Company.atomic`, which journals every slot it replaces and puts them all back if
a fault is raised half-way (a payment applied to three invoices either applies to all or none).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from arsync.clock import Clock
from arsync.sandbox import qbo_wire as wire
from arsync.sandbox.qbo_schema import MAX_LENGTH, WRITABLE, unknown_fields
from arsync.sandbox.qbo_wire import QBOFault, qbo_time, wire_copy

CENT = Decimal("0.01")
ENTITIES = ("Customer", "Invoice", "Payment", "CreditMemo", "Attachable", "CompanyInfo",
            "Preferences")
#: Transactions share one id sequence in QuickBooks (ids of invoices are not contiguous).
TXN_ENTITIES = ("Invoice", "Payment", "CreditMemo")

CURRENCY_NAMES = {"USD": "United States Dollar", "CAD": "Canadian Dollar", "EUR": "Euro",
                  "GBP": "British Pound Sterling", "AUD": "Australian Dollar"}
#: Value of one unit in USD; cross rates derive from it (deterministic, not market data).
USD_VALUE = {"USD": Decimal("1"), "CAD": Decimal("0.7300"), "EUR": Decimal("1.0800"),
             "GBP": Decimal("1.2700"), "AUD": Decimal("0.6600")}
#: Sales terms as the sample companies have them: id -> (name, days).
TERMS = {"1": ("Due on receipt", 0), "2": ("Net 15", 15), "3": ("Net 30", 30),
         "4": ("Net 45", 45)}
DEFAULT_TERM = "3"


def money(value: Any, element: str = "Amount") -> Decimal:
    """A request's amount (number, Decimal or numeric string) as a 2-decimal Decimal."""
    if isinstance(value, bool) or value is None or value == "":
        raise wire.invalid(f"Invalid amount for {element}", element)
    try:
        return Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)
    except InvalidOperation:
        raise wire.invalid(f"Invalid number {value!r} for {element}", element) from None


def currency_ref(code: str) -> dict[str, str]:
    """``CurrencyRef`` as the API writes it."""
    return {"value": code, "name": CURRENCY_NAMES.get(code, code)}


def exchange_rate(home: str, foreign: str) -> Decimal:
    """Home-currency units for one unit of ``foreign``."""
    if home == foreign:
        return Decimal(1)
    return (USD_VALUE[foreign] / USD_VALUE[home]).quantize(Decimal("0.000001"))


class Company:
    """The state of one realm. Callers hold :attr:`lock` around every read-modify-write."""

    def __init__(self, clock: Clock, realm_id: str, *, name: str, country: str, currency: str,
                 tz: tzinfo, multicurrency: bool) -> None:
        self.clock = clock
        self.realm_id = realm_id
        self.name = name
        self.country = country
        self.currency = currency
        self.tz = tz
        self.multicurrency = multicurrency
        self.online_payments = True
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in ENTITIES}
        # Precise LastUpdatedTime (epoch seconds): MetaData shows whole seconds, but CDC and
        # queries compare the instant, so an edit in the same second is not lost.
        self.updated: dict[str, dict[str, float]] = {e: {} for e in ENTITIES}
        self.tombstones: dict[str, dict[str, float]] = {e: {} for e in ENTITIES}
        self._sorted: dict[str, list[str] | None] = {e: None for e in ENTITIES}
        self._rows: dict[str, list[dict[str, Any]] | None] = {e: None for e in ENTITIES}
        #: Query results by :func:`qbo_query.cache_key`, dropped on any write to the entity.
        self.query_cache: dict[str, dict[Any, list[dict[str, Any]]]] = {e: {} for e in ENTITIES}
        self._journal: list[tuple[str, str, Any, Any, Any]] | None = None
        self.next_txn_id = 1
        self.next_name_id = 1
        self.next_attachable_id = 100000000000 + 1  # attachable ids are long numbers
        self.next_doc_number = 1001
        self.emails_sent: dict[date, int] = {}
        self.outbox: list[dict[str, Any]] = []  # invoices "emailed" by the send endpoint
        self.display_names: dict[str, str] = {}  # lower(DisplayName) -> customer id

    # --- time -------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Now, in the company's time zone."""
        return self.clock.now().astimezone(self.tz)

    def today(self) -> date:
        """The company's calendar date."""
        return self.now().date()

    def response_time(self) -> str:
        """The ``time`` field of a response."""
        return wire.qbo_response_time(self.now())

    # --- ids --------------------------------------------------------------------------------------

    def new_id(self, entity: str) -> str:
        """The next id for ``entity`` (transactions share one sequence, names another)."""
        if entity in TXN_ENTITIES:
            value, self.next_txn_id = self.next_txn_id, self.next_txn_id + 1
        elif entity == "Attachable":
            value, self.next_attachable_id = self.next_attachable_id, self.next_attachable_id + 1
        else:
            value, self.next_name_id = self.next_name_id, self.next_name_id + 1
        return str(value)

    def new_doc_number(self) -> str:
        """Auto-assigned DocNumber (Preferences: CustomTxnNumbers off)."""
        value, self.next_doc_number = self.next_doc_number, self.next_doc_number + 1
        return str(value)

    # --- storage ----------------------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Run a write so that a fault raised inside leaves no partial change behind."""
        if self._journal is not None:
            yield
            return
        self._journal = []
        try:
            yield
        except BaseException:
            for entity, id_, obj, upd, tomb in reversed(self._journal):
                self._restore(self.objects[entity], id_, obj)
                self._restore(self.updated[entity], id_, upd)
                self._restore(self.tombstones[entity], id_, tomb)
                self._forget(entity)
            raise
        finally:
            self._journal = None

    def _forget(self, entity: str) -> None:
        """Drop what is derived from an entity's objects (Id order, row list, query results)."""
        self._sorted[entity] = self._rows[entity] = None
        self.query_cache[entity].clear()

    @staticmethod
    def _restore(table: dict[str, Any], id_: str, value: Any) -> None:
        if value is None:
            table.pop(id_, None)
        else:
            table[id_] = value

    def _remember(self, entity: str, id_: str) -> None:
        if self._journal is not None:
            self._journal.append((entity, id_, self.objects[entity].get(id_),
                                  self.updated[entity].get(id_),
                                  self.tombstones[entity].get(id_)))

    def put(self, entity: str, obj: dict[str, Any], when: datetime | None = None) -> None:
        """Store ``obj`` (a fresh dict); ``when`` sets its precise LastUpdatedTime."""
        id_ = obj["Id"]
        self._remember(entity, id_)
        if id_ not in self.objects[entity]:
            self._sorted[entity] = None
        self._rows[entity] = None
        self.query_cache[entity].clear()
        self.objects[entity][id_] = obj
        if when is not None:
            self.updated[entity][id_] = when.timestamp()
        elif id_ not in self.updated[entity]:
            self.updated[entity][id_] = datetime.fromisoformat(
                obj["MetaData"]["LastUpdatedTime"]).timestamp()

    def load(self, entity: str, obj: dict[str, Any], when: datetime) -> None:
        """Bulk-load a finished object (the seed): no journal, no checks."""
        self.objects[entity][obj["Id"]] = obj
        self.updated[entity][obj["Id"]] = when.timestamp()
        self._forget(entity)

    def stamp(self, obj: dict[str, Any], when: datetime, *, created: bool = False) -> None:
        """Set MetaData for a write at ``when`` (company-local, whole seconds)."""
        text = qbo_time(when.astimezone(self.tz))
        meta = dict(obj.get("MetaData") or {})
        if created or "CreateTime" not in meta:
            meta["CreateTime"] = text
        meta["LastUpdatedTime"] = text
        obj["MetaData"] = meta

    def bump(self, entity: str, obj: dict[str, Any], when: datetime) -> dict[str, Any]:
        """Store a modified copy: SyncToken + 1 and LastUpdatedTime = ``when``."""
        obj["SyncToken"] = str(int(obj.get("SyncToken", "0")) + 1)
        self.stamp(obj, when)
        self.put(entity, obj, when)
        return obj

    def create(self, entity: str, obj: dict[str, Any], when: datetime) -> dict[str, Any]:
        """Store a new object with a fresh Id, SyncToken 0 and MetaData."""
        obj["Id"] = self.new_id(entity)
        obj["SyncToken"] = "0"
        obj.setdefault("domain", "QBO")
        obj.setdefault("sparse", False)
        self.stamp(obj, when, created=True)
        self.put(entity, obj, when)
        return obj

    def tombstone(self, entity: str, id_: str, when: datetime) -> dict[str, Any]:
        """Delete an object, keeping the tombstone CDC reports."""
        self._remember(entity, id_)
        self.objects[entity].pop(id_, None)
        self.updated[entity].pop(id_, None)
        self.tombstones[entity][id_] = when.timestamp()
        self._forget(entity)
        return {"status": "Deleted", "domain": "QBO", "Id": id_}

    def find(self, entity: str, id_: Any) -> dict[str, Any]:
        """The stored object, or the 610 fault the real API answers."""
        obj = self.objects[entity].get(str(id_))
        if obj is None:
            raise wire.not_found(entity, str(id_),
                                 deleted=str(id_) in self.tombstones[entity])
        return obj

    def editable(self, entity: str, id_: Any) -> dict[str, Any]:
        """A private copy of a stored object, to modify and then :meth:`bump`."""
        return wire_copy(self.find(entity, id_))  # type: ignore[no-any-return]

    def rows(self, entity: str) -> list[dict[str, Any]]:
        """All live objects of ``entity`` in Id order (the order the real API defaults to).

        The list is cached until the next write to the entity: paging through 100,000 invoices
        must not rebuild it per page. Callers must not modify it.
        """
        rows = self._rows[entity]
        if rows is None:
            ids = self._sorted[entity]
            if ids is None:
                ids = self._sorted[entity] = sorted(self.objects[entity], key=int)
            table = self.objects[entity]
            rows = self._rows[entity] = [table[i] for i in ids]
        return rows

    def updated_of(self, entity: str) -> Any:
        """A function giving an object's precise LastUpdatedTime (for the query engine)."""
        table = self.updated[entity]
        return lambda obj: table[obj["Id"]]

    # --- request checks ---------------------------------------------------------------------------

    @staticmethod
    def check_body(entity: str, body: Any) -> dict[str, Any]:
        """Reject what the real deserializer and schema would: unknown fields, long strings."""
        if not isinstance(body, dict):
            raise wire.invalid(f"Request body for {entity} is not an object")
        unknown = unknown_fields(entity, body)
        if unknown:
            name = unknown[0]
            raise wire.invalid(f'Property Name:Unrecognized field "{name}" (class '
                               f"com.intuit.schema.finance.v3.{entity}), not marked as "
                               "ignorable specified is unsupported or invalid", name)
        for key, limit in MAX_LENGTH.get(entity, {}).items():
            value = body.get(key)
            if isinstance(value, str) and len(value) > limit:
                raise wire.string_length(key, limit, len(value))
        return body

    @staticmethod
    def check_sync_token(current: dict[str, Any], body: dict[str, Any]) -> None:
        """An update must carry the current SyncToken (else 5010, the stale-object fault)."""
        if "SyncToken" not in body or body["SyncToken"] in (None, ""):
            raise wire.required("SyncToken")
        if str(body["SyncToken"]) != current.get("SyncToken"):
            raise wire.stale_object()

    @staticmethod
    def merge(entity: str, current: dict[str, Any], body: dict[str, Any],
              sparse: bool) -> dict[str, Any]:
        """Apply an update body: sparse changes only supplied fields; a full update also sets
        every writable field the body omits to NULL (the real service's documented rule)."""
        new = wire_copy(current)
        for key in WRITABLE[entity]:
            if key in body:
                value = body[key]
                if value is None or value == "":
                    new.pop(key, None)  # "" is how python-quickbooks sends an unset field
                else:
                    new[key] = wire.strip_empty(value)
            elif not sparse:
                new.pop(key, None)
        return new  # type: ignore[no-any-return]

    # --- references -------------------------------------------------------------------------------

    def customer_for(self, ref: Any, element: str = "CustomerRef") -> dict[str, Any]:
        """The active customer a ``CustomerRef`` points at."""
        if not isinstance(ref, dict) or not ref.get("value"):
            raise wire.required(element)
        customer = self.objects["Customer"].get(str(ref["value"]))
        if customer is None:
            raise wire.invalid_reference(element, str(ref["value"]))
        if not customer.get("Active", True):
            # QuickBooks validates the whole document on every save, so even a sparse update of
            # an invoice whose customer was made inactive fails with this infamous 610.
            raise wire.not_found("Customer", str(ref["value"]))
        return customer

    @staticmethod
    def customer_ref(customer: dict[str, Any]) -> dict[str, str]:
        """The ``CustomerRef`` written on transactions."""
        return {"value": customer["Id"], "name": customer["DisplayName"]}

    def adjust_customer_balance(self, customer_id: str, delta: Decimal) -> None:
        """Keep Customer.Balance (open receivables, customer currency) in step.

        GUESS: a balance change does not bump the customer's SyncToken/LastUpdatedTime (Balance
        is derived by the service, not edited on the customer), so CDC does not report it.
        """
        if delta == 0:
            return
        current = self.objects["Customer"].get(customer_id)
        if current is None:
            return
        customer = dict(current)
        balance = Decimal(str(customer.get("Balance", 0))) + delta
        customer["Balance"] = balance
        customer["BalanceWithJobs"] = balance
        self.put("Customer", customer)

    def due_date_for(self, txn_date: str, term: Any) -> str:
        """The due date QuickBooks derives from a TxnDate and a SalesTermRef."""
        days = TERMS.get(str(term.get("value")) if isinstance(term, dict) else "", ("", 0))[1]
        return (date.fromisoformat(txn_date) + timedelta(days=days)).isoformat()

    def check_date(self, value: Any, element: str) -> str:
        """A request date (``yyyy-MM-dd``), else 2010."""
        try:
            return date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError:
            raise wire.invalid(f"Invalid date format for {element}: {value}", element) from None

    # --- customers and attachables (the ledger lives in qbo_ledger) -------------------------------

    def write_customer(self, body: dict[str, Any], when: datetime) -> dict[str, Any]:
        """Create or update (full/sparse) a Customer."""
        self.check_body("Customer", body)
        if body.get("Id"):
            current = self.find("Customer", body["Id"])
            self.check_sync_token(current, body)
            customer = self.merge("Customer", current, body, body.get("sparse") is True)
            customer.setdefault("CurrencyRef", current.get("CurrencyRef"))
            if customer["CurrencyRef"].get("value") != current["CurrencyRef"].get("value"):
                raise wire.business("You can't change the currency of a customer.")
        else:
            customer = {k: wire.strip_empty(v) for k, v in body.items()
                        if k in WRITABLE["Customer"] and v not in (None, "")}
            customer.setdefault("CurrencyRef", currency_ref(self.currency))
            customer.setdefault("Active", True)
            customer.setdefault("Balance", 0)
            customer.setdefault("BalanceWithJobs", 0)
            current = None
        name = str(customer.get("DisplayName") or " ".join(
            str(customer.get(k)) for k in ("GivenName", "FamilyName") if customer.get(k)))
        if not name.strip():
            raise QBOFault(400, "6080", "No Name Provided", "Title, GivenName, MiddleName, "
                           "FamilyName, DisplayName, Suffix - one of these must be non-empty")
        owner = self.display_names.get(name.lower())
        if owner is not None and (current is None or owner != current["Id"]):
            raise QBOFault(400, "6240", "Duplicate Name Exists Error",
                           "The name supplied already exists. : Another customer, vendor or "
                           "employee is already using this name. Please use a different name.")
        customer["DisplayName"] = name
        customer.setdefault("FullyQualifiedName", name)
        customer.setdefault("PrintOnCheckName", name)
        if current is None:
            customer.setdefault("Job", False)
            customer.setdefault("BillWithParent", False)
            self.create("Customer", customer, when)
        else:
            self.display_names.pop(str(current["DisplayName"]).lower(), None)
            customer["FullyQualifiedName"] = name
            self.bump("Customer", customer, when)
        self.display_names[name.lower()] = customer["Id"]
        return customer

    def write_attachable(self, body: dict[str, Any], when: datetime) -> dict[str, Any]:
        """Create or update an Attachable (a standalone note linked to transactions).

        Linking a note does not touch the invoice: no SyncToken or LastUpdatedTime change.
        """
        self.check_body("Attachable", body)
        refs = body.get("AttachableRef") or []
        if not isinstance(refs, list):
            raise wire.invalid("AttachableRef must be a list", "AttachableRef")
        for ref in refs:
            entity_ref = ref.get("EntityRef") if isinstance(ref, dict) else None
            if not isinstance(entity_ref, dict) or not entity_ref.get("value"):
                raise wire.required("AttachableRef.EntityRef")
            wanted = str(entity_ref.get("type", "")).lower()
            kind = next((e for e in ENTITIES if e.lower() == wanted), None)
            if kind is None:
                raise QBOFault(400, "6050", "The entity reference type is unsupported for "
                               "Attachable", f"The entity reference type "
                               f"{entity_ref.get('type')} is unsupported for Attachable")
            if str(entity_ref["value"]) not in self.objects[kind]:
                raise wire.invalid_reference("AttachableRef", str(entity_ref["value"]))
        if body.get("Id"):
            current = self.find("Attachable", body["Id"])
            self.check_sync_token(current, body)
            note = self.merge("Attachable", current, body, body.get("sparse") is True)
            return self.bump("Attachable", note, when)
        if not body.get("Note") and not body.get("FileName"):
            raise wire.required("Note")
        note = {k: wire.strip_empty(v) for k, v in body.items()
                if k in WRITABLE["Attachable"] and v not in (None, "")}
        return self.create("Attachable", note, when)

    def delete_simple(self, entity: str, body: dict[str, Any], when: datetime) -> dict[str, Any]:
        """``operation=delete`` for entities without ledger side effects (Attachable)."""
        if not body.get("Id"):
            raise wire.required("Id")
        current = self.find(entity, body["Id"])
        self.check_sync_token(current, body)
        return self.tombstone(entity, current["Id"], when)
