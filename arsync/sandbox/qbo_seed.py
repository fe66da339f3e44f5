"""Deterministic, realistic seed data for an emulated QuickBooks company.

``seed_company`` fills a :class:`Company` with customers, invoices, payments and credit memos whose
dates are relative to the company's "now": invoices spread over the last ~120 days, ~45% fully paid,
~10% partly paid, ~3% voided, ~2% deleted (tombstones CDC reports), some credit applied, the rest
open (overdue or due soon). Ids follow creation order across transaction types as in QuickBooks.
It builds the final JSON objects directly (no per-event writes) and shares constant sub-objects, so
100,000 invoices take a few seconds and a few hundred MB.
"""

from __future__ import annotations

import gc
import random
from bisect import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any

from arsync.sandbox.qbo_store import CENT, TERMS, Company, currency_ref, exchange_rate
from arsync.sandbox.qbo_wire import qbo_time

_ADJ = ["Acme", "Blue", "Bright", "Cedar", "Coastal", "Copper", "Crescent", "Delta", "Eagle",
        "Evergreen", "Falcon", "First", "Golden", "Granite", "Harbor", "Highland", "Iron",
        "Juniper", "Keystone", "Lakeside", "Liberty", "Maple", "Meridian", "Metro", "Midwest",
        "Nimbus", "North", "Oak", "Orchard", "Pacific", "Pine", "Pioneer", "Prairie", "Quantum",
        "Redwood", "Ridge", "River", "Sierra", "Silver", "Summit", "Sun", "Tandem", "Union",
        "Valley", "Vista", "West", "Willow", "Zenith"]
_NOUN = ["Bakery", "Builders", "Cafe", "Cleaning", "Consulting", "Dental", "Design", "Electric",
         "Farms", "Fitness", "Florist", "Foods", "Freight", "Garage", "Hardware", "Health",
         "Landscaping", "Law", "Logistics", "Machining", "Media", "Motors", "Optical", "Plumbing",
         "Print", "Realty", "Roofing", "Supply", "Studio", "Tech", "Textiles", "Tools", "Travel",
         "Vet Clinic", "Wellness", "Works"]
_SUFFIX = ["Inc.", "LLC", "Co.", "Ltd", "Group", "& Sons", "Partners", "Corp."]
_GIVEN = ["Amy", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kira",
          "Liam", "Maya", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor",
          "Wen", "Yusuf", "Zoe"]
_FAMILY = ["Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
           "Jones", "Kowalski", "Lopez", "Martin", "Nguyen", "Okafor", "Patel", "Quinn", "Rossi",
           "Smith", "Tanaka", "Ueda", "Vargas", "Walsh", "Young", "Zhang"]
_ITEMS = [("Services", "Professional services", Decimal("150.00")),
          ("Hours", "Consulting hours", Decimal("95.00")),
          ("Design", "Custom design", Decimal("75.00")),
          ("Installation", "Installation labor", Decimal("50.00")),
          ("Maintenance", "Maintenance & repair", Decimal("120.00")),
          ("Rock Fountain", "Rock fountain", Decimal("275.00")),
          ("Pump", "Fountain pump", Decimal("12.75")),
          ("Concrete", "Concrete for installation", Decimal("9.50")),
          ("Sod", "Sod, per pallet", Decimal("285.00")),
          ("Lighting", "Garden lighting kit", Decimal("49.99")),
          ("Training", "Staff training session", Decimal("640.00")),
          ("Subscription", "Monthly support subscription", Decimal("399.00")),
          ("Hardware", "Replacement hardware", Decimal("18.40")),
          ("Delivery", "Delivery and freight", Decimal("65.00")),
          ("Audit", "Annual compliance audit", Decimal("2400.00"))]
_NOTES = ["PO #{n}", "Per contract {n}", "Ref {n} - approved by {g}", "Call {g} before chasing",
          "Split billing with {g}", "Disputed line 2 - see email from {g}"]
_STATES = {"US": [("San Francisco", "CA", "941"), ("Austin", "TX", "787"), ("Denver", "CO", "802"),
                  ("Seattle", "WA", "981"), ("Chicago", "IL", "606"), ("Miami", "FL", "331")],
           "CA": [("Toronto", "ON", "M5V"), ("Vancouver", "BC", "V6B")],
           "GB": [("London", "", "EC1A"), ("Leeds", "", "LS1")],
           "FR": [("Paris", "", "750"), ("Lyon", "", "690")],
           "AU": [("Sydney", "NSW", "200"), ("Melbourne", "VIC", "300")]}
_CURRENCY_COUNTRY = {"USD": "US", "CAD": "CA", "GBP": "GB", "EUR": "FR", "AUD": "AU"}

# Shared, never-mutated sub-objects (the store is copy-on-write).
_NON = {"value": "NON"}
_ZERO_TAX = {"TotalTax": 0}
_EMPTY: dict[str, Any] = {}
_ZERO = Decimal(0)
_MEMO = {"value": "Thank you for your business and have a great day!"}
_CUSTOM_FIELDS = [{"DefinitionId": "1", "Name": "Crew #", "Type": "StringType"}]
_UNDEPOSITED = {"value": "4", "name": "Undeposited Funds"}
_TERM_REFS = {k: {"value": k} for k in TERMS}
_ITEM_REFS = [{"name": name, "value": str(i + 1)} for i, (name, _d, _p) in enumerate(_ITEMS)]


class _Shared:
    """Interning for the seed: equal values become one object (the store never mutates them).

    Line dicts repeat (same item, quantity and price), as do dates, customer refs and emails;
    sharing them roughly halves the memory of a 100,000-invoice company.
    """

    def __init__(self, co: Company) -> None:
        self.co = co
        self.lines: dict[tuple[int, int, int, Decimal, bool], dict[str, Any]] = {}
        self.dates: dict[date, str] = {}
        self.kits: dict[str, tuple[dict[str, str], Decimal | None, dict[str, str] | None]] = {}

    def kit(self, cust: dict[str, Any]) -> tuple[dict[str, str], Decimal | None,
                                                 dict[str, str] | None]:
        """(CustomerRef, ExchangeRate or None, BillEmail or None) for a customer."""
        kit = self.kits.get(cust["Id"])
        if kit is None:
            currency = cust["CurrencyRef"]["value"]
            rate = exchange_rate(self.co.currency, currency) if self.co.multicurrency else None
            email = cust.get("PrimaryEmailAddr")
            kit = self.kits[cust["Id"]] = (
                {"value": cust["Id"], "name": cust["DisplayName"]}, rate,
                {"Address": email["Address"]} if email else None)
        return kit

    def day(self, d: date) -> str:
        """``yyyy-MM-dd`` for a date, one string per distinct date."""
        text = self.dates.get(d)
        if text is None:
            text = self.dates[d] = d.isoformat()
        return text

    def line(self, i: int, item: int, qty: int, price: Decimal, voided: bool) -> dict[str, Any]:
        """A sales line; identical lines are one object."""
        key = (i, item, qty, price, voided)
        line = self.lines.get(key)
        if line is None:
            detail: dict[str, Any] = {"ItemRef": _ITEM_REFS[item], "TaxCodeRef": _NON}
            if voided:
                detail["Qty"] = 0
            else:
                detail["Qty"], detail["UnitPrice"] = qty, price
            line = self.lines[key] = {
                "Id": str(i), "LineNum": i, "Description": _ITEMS[item][1],
                "Amount": 0 if voided else (qty * price).quantize(CENT),
                "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail}
        return line


@dataclass
class _Inv:
    """An invoice being planned: what happens to it, and when."""

    cust: int
    created: datetime
    txn_date: date
    term: str
    lines: list[tuple[int, int, Decimal]]  # (item index, qty, unit price)
    total: Decimal
    fate: str  # open | paid | partial | voided | deleted
    events: list[datetime] = field(default_factory=list)  # modifications after creation
    payments: list[tuple[datetime, Decimal]] = field(default_factory=list)
    credit: tuple[datetime, Decimal] | None = None
    ended: datetime | None = None  # voided/deleted at
    sent: datetime | None = None
    id: str = ""


def _at(d: date, rng: random.Random, co: Company, now: datetime) -> datetime:
    """A business-hours moment on day ``d`` (company time), never after now."""
    r = rng.random()
    seconds = 8 * 3600 + int(r * 36000)  # 08:00 to 17:59:59
    moment = datetime(d.year, d.month, d.day, seconds // 3600, seconds // 60 % 60, seconds % 60,
                      tzinfo=co.tz)
    if moment > now:
        moment = now - timedelta(minutes=1 + int(r * 180))
    return moment


def _pick(rng: random.Random, cum: list[float]) -> int:
    """Index drawn with cumulative weights ``cum`` (one C-level random() call)."""
    return bisect(cum, rng.random() * cum[-1])


def _customers(co: Company, rng: random.Random, count: int, now: datetime) -> list[dict[str, Any]]:
    others = [c for c in ("USD", "CAD", "EUR", "GBP") if c != co.currency]
    names: set[str] = set()
    out = []
    for i in range(count):
        person = rng.random() < 0.15
        given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
        company = f"{rng.choice(_ADJ)} {rng.choice(_NOUN)} {rng.choice(_SUFFIX)}"
        name = f"{given} {family}" if person else company
        while name.lower() in names:  # DisplayName is unique per company
            name = f"{name} {rng.randint(2, 999)}"
        names.add(name.lower())
        currency = co.currency
        if co.multicurrency and rng.random() < 0.15:
            currency = rng.choice(others)
        country = _CURRENCY_COUNTRY.get(currency, co.country)
        city, region, postal = rng.choice(_STATES.get(country, _STATES["US"]))
        slug = "".join(ch for ch in (family if person else company.split()[0] + company.split()[1])
                       .lower() if ch.isalnum())
        created = _at(now.date() - timedelta(days=rng.randint(130, 900)), rng, co, now)
        updated = created
        sync = 0
        if rng.random() < 0.06:  # a few customers edited recently (CDC shows them)
            updated = _at(now.date() - timedelta(days=rng.randint(0, 25)), rng, co, now)
            sync = rng.randint(1, 3)
        addr = {"Id": str(1000 + i), "Line1": f"{rng.randint(10, 9999)} {rng.choice(_ADJ)} St.",
                "City": city, "Country": country, "PostalCode": f"{postal}{rng.randint(10, 99)}"}
        if region:
            addr["CountrySubDivisionCode"] = region
        cust: dict[str, Any] = {
            "Taxable": False, "BillAddr": addr, "ShipAddr": addr, "Job": False,
            "BillWithParent": False, "Balance": 0, "BalanceWithJobs": 0,
            "CurrencyRef": currency_ref(currency),
            "PreferredDeliveryMethod": "Email", "IsProject": False, "domain": "QBO",
            "sparse": False, "Id": co.new_id("Customer"), "SyncToken": str(sync),
            "MetaData": {"CreateTime": qbo_time(created), "LastUpdatedTime": qbo_time(updated)},
            "GivenName": given, "FamilyName": family, "FullyQualifiedName": name,
            "DisplayName": name, "PrintOnCheckName": name,
            "Active": rng.random() >= 0.04,
            "PrimaryPhone": {"FreeFormNumber": f"({rng.randint(201, 989)}) 555-"
                                               f"{rng.randint(0, 9999):04d}"},
            "SalesTermRef": _TERM_REFS[_TERM_IDS[_pick(rng, _TERM_CUM)]],
        }
        if not person:
            cust["CompanyName"] = company
        if rng.random() < 0.92:
            local = rng.choice(["ap", "accounts", "billing", given.lower(), "finance"])
            cust["PrimaryEmailAddr"] = {"Address": f"{local}@{slug}.example.com"}
        else:
            cust["PreferredDeliveryMethod"] = "Print"  # ~8% have no email address at all
        co.load("Customer", cust, updated)
        co.display_names[name.lower()] = cust["Id"]
        out.append(cust)
    return out


_TERM_IDS = list(TERMS)
_TERM_CUM = list(accumulate((10, 25, 50, 15)))
_LINES_CUM = list(accumulate((45, 30, 15, 10)))
_QTYS = (1, 2, 3, 4, 5, 8, 10, 20)
_QTY_CUM = list(accumulate((40, 15, 10, 8, 8, 7, 7, 5)))
# Unit prices vary 85%..125% around the catalog price, so they repeat (and share well).
_PRICES = [[(base * pct / 100).quantize(CENT) for pct in range(85, 126)]
           for _n, _d, base in _ITEMS]
_PCT = [Decimal(n) / 100 for n in range(101)]


def _plan(co: Company, rng: random.Random, customers: list[dict[str, Any]], count: int,
          now: datetime) -> list[_Inv]:
    today = now.date()
    if not customers or not count:
        return []
    rand = rng.random
    day = timedelta(days=1)
    minute = timedelta(minutes=1)
    # A few customers carry most invoices (Pareto-ish), as in real receivables ledgers.
    weights = list(accumulate(1.0 / (rank + 1) ** 0.8 for rank in range(len(customers))))
    picks = rng.choices(range(len(customers)), cum_weights=weights, k=count)
    n_items, n_prices = len(_ITEMS), len(_PRICES[0])
    plans = []
    for ci in picks:
        cust = customers[ci]
        txn = today - day * min(int(rng.expovariate(1 / 45)), 119)
        created = _at(txn, rng, co, now)
        term = cust["SalesTermRef"]["value"] if rand() < 0.8 else _TERM_IDS[_pick(rng, _TERM_CUM)]
        lines = []
        for _ in range(1 + _pick(rng, _LINES_CUM)):
            item = int(rand() * n_items)
            lines.append((item, _QTYS[_pick(rng, _QTY_CUM)],
                          _PRICES[item][int(rand() * n_prices)]))
        total = sum(q * p for _i, q, p in lines)
        r = rand()
        fate = ("paid" if r < 0.45 else "partial" if r < 0.55 else "voided" if r < 0.58
                else "deleted" if r < 0.60 else "open")
        if not cust["Active"] and fate in ("open", "partial"):
            fate = "paid"  # made inactive only once nothing is owed
        if fate == "paid" and (today - txn).days < 3 and rand() < 0.7:
            fate = "open"  # brand-new invoices are rarely paid yet
        inv = _Inv(ci, created, txn, term, lines, total, fate)
        if fate != "deleted" and "PrimaryEmailAddr" in cust and rand() < 0.8:
            inv.sent = min(created + minute * (1 + int(rand() * 90)), now)
            inv.events.append(inv.sent)
        credit_part = Decimal(0)
        if fate in ("paid", "partial", "open") and rand() < 0.02:
            credit_part = (total * _PCT[10 + int(rand() * 21)]).quantize(CENT)
            when = _at(min(txn + day * (1 + int(rand() * 20)), today), rng, co, now)
            inv.credit = (max(when, created), credit_part)
            inv.events.append(inv.credit[0])
        if fate in ("paid", "partial"):
            due = txn + day * TERMS[term][1]
            cash = total - credit_part
            shares = [cash] if fate == "paid" else [
                (cash * _PCT[20 + int(rand() * 61)]).quantize(CENT)]
            if fate == "partial" and rand() < 0.3:
                first = (shares[0] * _PCT[30 + int(rand() * 41)]).quantize(CENT)
                shares = [first, shares[0] - first]
            for share in shares:
                pay_day = max(min(due + day * (int(rand() * 46) - 20), today), txn)
                when = min(max(_at(pay_day, rng, co, now), created + 5 * minute), now)
                inv.payments.append((when, share))
                inv.events.append(when)
        if fate in ("voided", "deleted"):
            inv.ended = min(max(_at(txn + day * int(rand() * 11), rng, co, now),
                                created + minute), now)
            inv.events.append(inv.ended)
        plans.append(inv)
    return plans


def seed_company(co: Company, *, customers: int, invoices: int, seed: int) -> None:
    """Fill ``co`` with a deterministic book of customers, invoices, payments and credits."""
    # Hundreds of thousands of small containers, none cyclic: the cyclic GC's repeated full
    # passes over a growing heap would make seeding quadratic, so pause it.
    enabled = gc.isenabled()
    gc.disable()
    try:
        _seed(co, rng=random.Random(seed), customers=customers, invoices=invoices)
    finally:
        if enabled:
            gc.enable()


def _seed(co: Company, *, rng: random.Random, customers: int, invoices: int) -> None:
    shared = _Shared(co)
    now = co.now()
    custs = _customers(co, rng, max(customers, 1 if invoices else 0), now)
    plans = _plan(co, rng, custs, invoices, now)
    plans.sort(key=lambda p: p.created)
    loose = [(_at(now.date() - timedelta(days=rng.randint(0, 110)), rng, co, now),
              rng.randrange(len(custs))) for _ in range(invoices // 200)]
    # Every transaction takes the next id in creation order, whatever its type:
    # kind 0 invoice, 1 cash payment, 2 credit memo, 3 the zero payment applying it, 4 loose credit.
    births: list[tuple[datetime, int, int, int]] = []
    for n, p in enumerate(plans):
        births.append((p.created, 0, n, 0))
        births.extend((when, 1, n, k) for k, (when, _a) in enumerate(p.payments))
        if p.credit:
            births.extend([(p.credit[0], 2, n, 0), (p.credit[0], 3, n, 0)])
    births.extend((when, 4, k, 0) for k, (when, _ci) in enumerate(loose))
    births.sort()
    ids = {(kind, n, k): co.new_id("Invoice") for _when, kind, n, k in births}
    for n, p in enumerate(plans):
        p.id = ids[(0, n, 0)]
        cust = custs[p.cust]
        pay_ids = [ids[(1, n, k)] for k in range(len(p.payments))]
        links = [(when, pid) for (when, _a), pid in zip(p.payments, pay_ids, strict=True)]
        if p.credit:
            links.append((p.credit[0], ids[(3, n, 0)]))
        _build_invoice(co, shared, rng, p, cust, co.new_doc_number(),
                       [pid for _w, pid in sorted(links)])
        if p.fate == "deleted":
            continue
        for (when, amount), pid in zip(p.payments, pay_ids, strict=True):
            extra = Decimal(5 * (1 + int(rng.random() * 20))) if rng.random() < 0.01 else _ZERO
            pay = _doc_head(co, shared, cust, pid, when, when, 0)
            pay.update({"DepositToAccountRef": _UNDEPOSITED, "TotalAmt": amount + extra,
                        "UnappliedAmt": extra, "ProcessPayment": False,
                        "TxnDate": shared.day(when.date()),
                        "Line": [{"Amount": amount, "LinkedTxn": [
                            {"TxnId": p.id, "TxnType": "Invoice"}]}]})
            if rng.random() < 0.4:
                pay["PaymentRefNum"] = str(rng.randint(1000, 99999))
            co.load("Payment", pay, when)
        if p.credit:
            when, amount = p.credit
            cm_id, zero_id = ids[(2, n, 0)], ids[(3, n, 0)]
            co.load("CreditMemo", _credit_memo(co, shared, cust, cm_id, co.new_doc_number(), when,
                                              amount, amount, zero_id), when)
            pay = _doc_head(co, shared, cust, zero_id, when, when, 0)
            pay.update({"DepositToAccountRef": _UNDEPOSITED, "TotalAmt": 0, "UnappliedAmt": 0,
                        "ProcessPayment": False, "TxnDate": when.date().isoformat(),
                        "Line": [{"Amount": amount, "LinkedTxn": [
                                     {"TxnId": p.id, "TxnType": "Invoice"}]},
                                 {"Amount": amount, "LinkedTxn": [
                                     {"TxnId": cm_id, "TxnType": "CreditMemo"}]}]})
            co.load("Payment", pay, when)
    for k, (when, ci) in enumerate(loose):
        amount = (Decimal(rng.randint(2000, 60000)) / 100).quantize(CENT)
        co.load("CreditMemo", _credit_memo(co, shared, custs[ci], ids[(4, k, 0)],
                                          co.new_doc_number(),
                                          when, amount), when)
    _customer_balances(co)


def _doc_head(co: Company, shared: _Shared, cust: dict[str, Any], id_: str, created: datetime,
              updated: datetime, sync: int) -> dict[str, Any]:
    """The fields every transaction starts with."""
    created_text = qbo_time(created)
    updated_text = created_text if updated == created else qbo_time(updated)
    cref, rate, _email = shared.kit(cust)
    head: dict[str, Any] = {"domain": "QBO", "sparse": False, "Id": id_, "SyncToken": str(sync),
                            "MetaData": {"CreateTime": created_text,
                                         "LastUpdatedTime": updated_text},
                            "CurrencyRef": cust["CurrencyRef"], "CustomerRef": cref}
    if rate is not None:
        head["ExchangeRate"] = rate
    return head


def _build_invoice(co: Company, shared: _Shared, rng: random.Random, p: _Inv,
                   cust: dict[str, Any], doc: str, payment_ids: list[str]) -> None:
    updated = max(p.events) if p.events else p.created
    inv = _doc_head(co, shared, cust, p.id, p.created, updated, len(p.events))
    voided = p.fate == "voided"
    lines = [shared.line(i, item, qty, price, voided)
             for i, (item, qty, price) in enumerate(p.lines, start=1)]
    lines.append({"DetailType": "SubTotalLineDetail", "Amount": 0 if voided else p.total,
                  "SubTotalLineDetail": _EMPTY})
    total = Decimal(0) if voided else p.total
    paid = sum(a for _w, a in p.payments) + (p.credit[1] if p.credit else 0)
    balance = Decimal(0) if voided else p.total - paid
    inv.update({
        "AllowOnlineCreditCardPayment": co.online_payments,
        "AllowOnlineACHPayment": co.online_payments,
        "CustomField": _CUSTOM_FIELDS, "DocNumber": doc, "TxnDate": shared.day(p.txn_date),
        "LinkedTxn": [{"TxnId": pid, "TxnType": "Payment"} for pid in payment_ids],
        "Line": lines, "TxnTaxDetail": _ZERO_TAX,
        "CustomerMemo": _MEMO, "BillAddr": cust["BillAddr"], "ShipAddr": cust["ShipAddr"],
        "SalesTermRef": _TERM_REFS[p.term],
        "DueDate": shared.day(p.txn_date + timedelta(days=TERMS[p.term][1])),
        "TotalAmt": total, "ApplyTaxAfterDiscount": False, "PrintStatus": "NotSet",
        "EmailStatus": "EmailSent" if p.sent else "NotSet", "Balance": balance, "Deposit": 0})
    email = shared.kit(cust)[2]
    if email is not None:
        inv["BillEmail"] = email
    if p.sent:
        inv["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": qbo_time(p.sent)}
    if cust["CurrencyRef"]["value"] != co.currency:
        rate = inv["ExchangeRate"]
        inv["HomeTotalAmt"] = (total * rate).quantize(CENT)
        inv["HomeBalance"] = (balance * rate).quantize(CENT)
    if rng.random() < 0.15:
        inv["PrivateNote"] = rng.choice(_NOTES).format(n=rng.randint(1000, 99999),
                                                      g=rng.choice(_GIVEN))
    if voided:
        note = inv.get("PrivateNote")
        inv["PrivateNote"] = f"Voided - {note}" if note else "Voided"
    if p.fate == "deleted":
        assert p.ended is not None
        co.tombstones["Invoice"][p.id] = p.ended.timestamp()
        return
    co.load("Invoice", inv, updated)


def _credit_memo(co: Company, shared: _Shared, cust: dict[str, Any], id_: str, doc: str,
                 when: datetime,
                 amount: Decimal, used: Decimal = Decimal(0),
                 payment_id: str | None = None) -> dict[str, Any]:
    """A credit memo of ``amount``, ``used`` of it applied through ``payment_id``."""
    memo = _doc_head(co, shared, cust, id_, when, when, 1 if payment_id else 0)
    memo.update({
        "DocNumber": doc, "TxnDate": when.date().isoformat(),
        "LinkedTxn": [{"TxnId": payment_id, "TxnType": "Payment"}] if payment_id else [],
        "Line": [{"Id": "1", "LineNum": 1, "Description": "Credit for returned goods",
                  "Amount": amount, "DetailType": "SalesItemLineDetail",
                  "SalesItemLineDetail": {"ItemRef": _ITEM_REFS[0], "TaxCodeRef": _NON}},
                 {"DetailType": "SubTotalLineDetail", "Amount": amount,
                  "SubTotalLineDetail": _EMPTY}],
        "TxnTaxDetail": _ZERO_TAX, "BillAddr": cust["BillAddr"], "TotalAmt": amount,
        "ApplyTaxAfterDiscount": False, "PrintStatus": "NotSet", "EmailStatus": "NotSet",
        "RemainingCredit": amount - used, "Balance": amount - used})
    if cust["CurrencyRef"]["value"] != co.currency:
        memo["HomeTotalAmt"] = (amount * memo["ExchangeRate"]).quantize(CENT)
    return memo


def _customer_balances(co: Company) -> None:
    """Customer.Balance = open invoices - unapplied cash - unused credit (customer currency)."""
    totals: dict[str, Decimal] = {}
    for entity, key, sign in (("Invoice", "Balance", 1), ("Payment", "UnappliedAmt", -1),
                              ("CreditMemo", "RemainingCredit", -1)):
        for obj in co.objects[entity].values():
            value = obj.get(key) or 0
            if value:
                cid = obj["CustomerRef"]["value"]
                totals[cid] = totals.get(cid, Decimal(0)) + sign * Decimal(value)
    for cid, balance in totals.items():
        customer = dict(co.objects["Customer"][cid])
        customer["Balance"] = customer["BalanceWithJobs"] = balance
        co.objects["Customer"][cid] = customer
