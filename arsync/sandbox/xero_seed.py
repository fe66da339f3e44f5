"""Deterministic, realistic books for an emulated Xero organisation.

``seed_books(org, contacts=..., invoices=..., seed=..., now=...)`` fills an empty
:class:`~arsync.sandbox.xero_model.Organisation` from ``random.Random(seed)`` with dates relative
to ``now``. The mix of sales invoices (``invoices`` counts sales invoices *and* bills):

* ~95% ACCREC, ~5% ACCPAY bills from supplier contacts (clients must ignore them);
* of the sales invoices: ~40% PAID (one or two payments, sometimes a credit note), ~10% partly
  paid (AUTHORISED with AmountPaid > 0), ~3% VOIDED, ~2% DELETED (from DRAFT), ~5%
  DRAFT/SUBMITTED, the rest AUTHORISED with due dates spread over the past and the next weeks;
* ~82% in the base currency, the rest in USD/EUR/AUD (or NZD/CAD) with a CurrencyRate;
* ~4% of open or paid invoices have a credit note allocated; a few unallocated credit notes, some
  refunded in cash (ARCREDITPAYMENT); ~2% of paid invoices also carry a DELETED payment;
* contacts: ~90% with an EmailAddress, ~20% with ContactPersons, ~5% ARCHIVED.

Everything is built in one pass without the per-change rule checks (that would be slow for the
100,000-invoice benchmark); the sandbox tests check that the result balances.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from arsync.sandbox.xero_model import (
    PAR,
    SALES_ACCOUNT,
    SALES_ITEMS,
    ZERO,
    Allocation,
    Contact,
    ContactPerson,
    CreditNote,
    Invoice,
    LineItem,
    Organisation,
    Payment,
    money,
    seeded_lines,
)

_ADJECTIVES = (
    "Northern", "Blue", "Golden", "Silver", "Harbour", "Summit", "Oak", "Riverside", "Bright",
    "Coastal", "Granite", "Maple", "Crown", "Evergreen", "Pioneer", "Atlas", "Keystone", "Red",
    "Willow", "Cedar", "Union", "Prime", "Orchard", "Falcon", "Beacon", "Meadow", "Iron", "Kiwi",
)
_NOUNS = (
    "Bakery", "Builders", "Logistics", "Design", "Dental", "Plumbing", "Motors", "Media",
    "Landscaping", "Consulting", "Electrical", "Catering", "Printing", "Software", "Fitness",
    "Joinery", "Florists", "Optics", "Roofing", "Vineyards", "Cleaning", "Architects", "Freight",
)
_SUFFIXES = ("Ltd", "Limited", "& Co", "Group", "Partners", "Studio", "Holdings", "Trading")
_FIRST = (
    "Olivia", "Liam", "Amelia", "Noah", "Isla", "Oliver", "Ava", "Jack", "Mia", "Leo", "Grace",
    "Arlo", "Ruby", "Hugo", "Zoe", "Mason", "Ella", "Theo", "Chloe", "Finn", "Aroha", "Wiremu",
    "Priya", "Raj", "Mei", "Chen", "Sofia", "Mateo", "Fatima", "Omar",
)
_LAST = (
    "Smith", "Williams", "Brown", "Taylor", "Wilson", "Jones", "Ngata", "Patel", "Nguyen",
    "Walker", "Harris", "Clarke", "Robinson", "Young", "King", "Wright", "Thompson", "Martin",
    "Singh", "Tane", "Kelly", "Murphy", "Campbell", "Stewart", "Lee", "Chan",
)
_CITIES = {
    "GB": ("London", "Manchester", "Leeds", "Bristol", "Glasgow"),
    "NZ": ("Auckland", "Wellington", "Christchurch", "Hamilton", "Dunedin"),
    "AU": ("Sydney", "Melbourne", "Brisbane", "Perth", "Adelaide"),
    "US": ("New York", "Austin", "Denver", "Seattle", "Chicago"),
}
_TERMS = (7, 14, 14, 30, 30, 30, 30, 45, 60)
_FOREIGN = ("USD", "EUR", "AUD", "NZD", "CAD", "GBP")
_PAYMENT_REFS = ("", "", "BACS", "Card payment", "Direct credit", "Remittance")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000


class _Stamper:
    """Random instants on a given day, never later than ``now`` (UpdatedDateUTC for seeds)."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now_ms = int((now - _EPOCH).total_seconds() * 1000)
        self.today = now.date()

    def __call__(self, day: date) -> datetime:
        day_ms = (day - date(1970, 1, 1)).days * _DAY_MS
        ms = day_ms + int(self.rng.random() * _DAY_MS)
        if ms >= self.now_ms:
            ms = self.now_ms - 1 - int(self.rng.random() * max(self.now_ms - day_ms - 1, 0))
        return _EPOCH + timedelta(milliseconds=ms)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _int(rng: random.Random, low: int, high: int) -> int:
    """``_int(rng, low, high)``, several times faster (the seed makes ~10^6 of these)."""
    return low + int(rng.random() * (high - low + 1))


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _contacts(org: Organisation, rng: random.Random, count: int, stamp: _Stamper) -> None:
    cities = _CITIES.get(org.country, _CITIES["GB"])
    used: set[str] = set()
    # exact shares, so that even a small organisation has each kind of contact
    indices = range(count)
    archived = set(rng.sample(indices, round(count * 0.05)))
    no_email = set(rng.sample(indices, round(count * 0.10)))
    with_persons = set(rng.sample(indices, round(count * 0.20)))
    for i in indices:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        if rng.random() < 0.25:
            name = f"{first} {last}"
        else:
            name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.choice(_SUFFIXES)}"
        if name in used:  # contact names are unique in Xero
            name = f"{name} ({i + 1})"
        used.add(name)
        domain = f"{_slug(name)}.example"
        local = rng.choice(("accounts", "billing", _slug(first)))
        email = "" if i in no_email else f"{local}@{domain}"
        persons = []
        if i in with_persons:
            for _ in range(_int(rng, 1, 2)):
                pf, pl = rng.choice(_FIRST), rng.choice(_LAST)
                persons.append(ContactPerson(pf, pl, f"{_slug(pf)}.{_slug(pl)}@{domain}",
                                             rng.random() < 0.6))
        contact = Contact(
            contact_id=_uuid(rng), name=name, first_name=first, last_name=last, email=email,
            persons=persons, status="ARCHIVED" if i in archived else "ACTIVE",
            is_customer=False, is_supplier=False, account_number=f"C{i + 1:05d}",
            phone=f"{_int(rng, 200, 999)}-{_int(rng, 1000, 9999)}",
            city=rng.choice(cities), postcode=f"{_int(rng, 1000, 9999)}",
            updated=stamp(stamp.today - timedelta(days=_int(rng, 0, 730))),
        )
        org.contacts[contact.contact_id] = contact


def _currency(org: Organisation, rng: random.Random) -> tuple[str, Decimal]:
    if rng.random() < 0.82:
        return org.currency, PAR
    foreign = [c for c in _FOREIGN if c != org.currency][:3]
    currency = rng.choice(foreign)
    jitter = Decimal(_int(rng, -300, 300)).scaleb(-4)  # +-3%
    return currency, (org.rate_for(currency) * (1 + jitter)).quantize(Decimal("0.000001"))


def _pay(org: Organisation, rng: random.Random, inv: Invoice, amount: Decimal, on: date,
         stamp: _Stamper, *, deleted: bool = False) -> Payment:
    payment = Payment(
        payment_id=_uuid(rng), amount=amount, date=on,
        status="DELETED" if deleted else "AUTHORISED",
        payment_type="ACCRECPAYMENT" if inv.type == "ACCREC" else "ACCPAYPAYMENT",
        currency_rate=inv.currency_rate, reference=rng.choice(_PAYMENT_REFS),
        account_code="090" if rng.random() < 0.9 else "091", updated=stamp(on),
        invoice_id=inv.invoice_id, is_reconciled=not deleted and rng.random() < 0.7,
    )
    org.payments[payment.payment_id] = payment
    inv.payment_ids += (payment.payment_id,)
    if not deleted:
        inv.amount_paid += amount
    return payment


def _credit_note(org: Organisation, rng: random.Random, contact_id: str, currency: str,
                 rate: Decimal, on: date, total: Decimal, stamp: _Stamper) -> CreditNote:
    tax_type, tax_rate = org.sales_tax
    line_amount = money(total / (1 + tax_rate))
    line = LineItem(_uuid(rng), "Credit: " + rng.choice(SALES_ITEMS).lower(), Decimal(1),
                    line_amount, SALES_ACCOUNT, tax_type, total - line_amount, line_amount)
    note = CreditNote(
        credit_note_id=_uuid(rng), type="ACCRECCREDIT", number=org.allocate_credit_note_number(),
        reference=rng.choice(("", "Returned goods", "Goodwill", "Pricing error")),
        contact_id=contact_id, status="AUTHORISED", currency=currency, currency_rate=rate,
        date=on, lines=[line], sub_total=line_amount, total_tax=total - line_amount, total=total,
        updated=stamp(on),
    )
    org.credit_notes[note.credit_note_id] = note
    return note


def seed_books(org: Organisation, *, contacts: int, invoices: int, seed: int,
               now: datetime) -> None:
    """Fill ``org`` with ``contacts`` contacts and ``invoices`` invoices and bills (module doc)."""
    rng = random.Random(seed)
    stamp = _Stamper(rng, now)
    today = stamp.today
    _contacts(org, rng, max(contacts, 1) if invoices else contacts, stamp)
    if not invoices:
        return
    everyone = list(org.contacts.values())
    suppliers = everyone[: max(1, len(everyone) // 12)]
    customers = everyone[len(suppliers):] or everyone
    bills = round(invoices * 0.05) if len(everyone) > 1 else 0

    plan: list[tuple[date, str, str]] = []  # (date, type, status); numbered in date order
    for _ in range(invoices - bills):
        r = rng.random()
        if r < 0.40:
            status, age = "PAID", _int(rng, 0, 720)
        elif r < 0.50:
            status, age = "PARTIAL", _int(rng, 0, 200)
        elif r < 0.53:
            status, age = "VOIDED", _int(rng, 1, 720)
        elif r < 0.55:
            status, age = "DELETED", _int(rng, 0, 720)
        elif r < 0.575:
            status, age = "DRAFT", _int(rng, 0, 30)
        elif r < 0.60:
            status, age = "SUBMITTED", _int(rng, 0, 30)
        else:
            status, age = "AUTHORISED", int(rng.triangular(0, 150, 0))
        plan.append((today - timedelta(days=age), "ACCREC", status))
    for _ in range(bills):
        r = rng.random()
        status = "PAID" if r < 0.60 else "AUTHORISED" if r < 0.95 else "DRAFT"
        plan.append((today - timedelta(days=_int(rng, 0, 365)), "ACCPAY", status))
    plan.sort(key=lambda p: p[0])

    for issued, kind, status in plan:
        sales = kind == "ACCREC"
        idx = int(len(customers if sales else suppliers) * rng.random() ** 2)
        contact = (customers if sales else suppliers)[idx]
        if sales:
            contact.is_customer = True
        else:
            contact.is_supplier = True
        currency, rate = _currency(org, rng) if sales else (org.currency, PAR)
        line_seed = rng.getrandbits(64)
        lines = seeded_lines(line_seed, sales=sales,
                             tax=org.sales_tax if sales else org.purchase_tax)
        sub = sum((li.line_amount for li in lines), ZERO)
        tax = sum((li.tax_amount for li in lines), ZERO)
        terms = rng.choice(_TERMS)
        number = org.allocate_invoice_number() if sales else f"SUP-{_int(rng, 1000, 99999)}"
        created = stamp(issued)
        inv = Invoice(
            invoice_id=_uuid(rng), type=kind, number=number,
            reference=f"PO {_int(rng, 100, 9999)}" if rng.random() < 0.3 else "",
            contact_id=contact.contact_id,
            status="AUTHORISED" if status == "PARTIAL" else status,
            currency=currency, currency_rate=rate, date=issued,
            due_date=issued + timedelta(days=terms), lines=None, sub_total=sub, total_tax=tax,
            total=sub + tax, created=created, updated=created, line_seed=line_seed,
            sent_to_contact=sales and status not in ("DRAFT", "SUBMITTED", "DELETED")
            and rng.random() < 0.8,
        )
        last_event = issued
        if status in ("PAID", "PARTIAL", "AUTHORISED") and sales and rng.random() < 0.04:
            credit = max(money(inv.total * Decimal(_int(rng, 10, 60)) / 100), Decimal("0.01"))
            on = min(issued + timedelta(days=_int(rng, 0, 20)), today)
            note = _credit_note(org, rng, contact.contact_id, currency, rate, on, credit, stamp)
            allocated = credit if rng.random() < 0.8 else money(credit / 2)
            allocation = Allocation(_uuid(rng), note.credit_note_id, inv.invoice_id, allocated, on)
            note.allocations += (allocation,)
            inv.allocations += (allocation,)
            inv.amount_credited += allocated
            if allocated == credit:
                note.status, note.fully_paid_on = "PAID", on
            last_event = max(last_event, on)
        remaining = inv.total - inv.amount_credited
        if status == "PAID":
            due_by = issued + timedelta(days=terms + 45)
            days = sorted(min(issued + timedelta(days=_int(rng, 0, (due_by - issued).days)), today)
                          for _ in range(1 if rng.random() < 0.8 else 2))
            if len(days) == 2:
                first = max(money(remaining * Decimal(_int(rng, 20, 80)) / 100), Decimal("0.01"))
                parts = [first, remaining - first] if first < remaining else [remaining]
            else:
                parts = [remaining]
            for day, amount in zip(days, parts, strict=False):
                _pay(org, rng, inv, amount, day, stamp)
            paid_on = days[len(parts) - 1]
            inv.fully_paid_on = paid_on
            last_event = max(last_event, paid_on)
        elif status == "PARTIAL":
            paid = money(remaining * Decimal(_int(rng, 10, 90)) / 100)
            if ZERO < paid < remaining:
                day = min(issued + timedelta(days=_int(rng, 0, terms + 20)), today)
                _pay(org, rng, inv, paid, day, stamp)
                last_event = max(last_event, day)
        elif status == "VOIDED":
            last_event = min(issued + timedelta(days=_int(rng, 1, 30)), today)
        if inv.payment_ids and rng.random() < 0.02:
            # a payment that was entered in error and deleted; it must not count
            wrong = org.payments[inv.payment_ids[0]]
            _pay(org, rng, inv, wrong.amount, wrong.date, stamp, deleted=True)
        inv.updated = max(stamp(last_event), created)
        org.add_invoice(inv)

    for _ in range(max(1, (invoices - bills) // 200)):
        contact = rng.choice(customers)
        on = today - timedelta(days=_int(rng, 0, 300))
        total = Decimal(_int(rng, 1_000, 80_000)).scaleb(-2)
        note = _credit_note(org, rng, contact.contact_id, org.currency, PAR, on,
                            total, stamp)
        r = rng.random()
        if r < 0.1:
            note.status = "DRAFT"
        elif r < 0.4:
            day = min(on + timedelta(days=_int(rng, 0, 30)), today)
            refund = Payment(_uuid(rng), total, day, "AUTHORISED", "ARCREDITPAYMENT",
                             PAR, "Refund", "090", stamp(day),
                             credit_note_id=note.credit_note_id)
            org.payments[refund.payment_id] = refund
            note.payment_ids += (refund.payment_id,)
            note.status, note.fully_paid_on = "PAID", day
            note.updated = max(note.updated, refund.updated)
    org.version += 1
