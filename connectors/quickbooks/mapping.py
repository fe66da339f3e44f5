"""QuickBooks Online JSON → arsync's value types, and QuickBooks errors → arsync's error tree.

QuickBooks has no invoice status: paid is ``Balance == 0``; voided is ``TotalAmt == 0`` with
"Voided" prepended to ``PrivateNote`` (the API zeroes a voided invoice rather than flagging it);
deleted arrives only from change data capture as ``{"status": "Deleted", "Id": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from quickbooks import exceptions as qbx

from arsync.domain import (
    ZERO,
    Application,
    InvoiceStatus,
    RemoteCreditNote,
    RemoteCustomer,
    RemoteInvoice,
    RemotePayment,
)
from arsync.errors import (
    ArsyncError,
    AuthError,
    ConflictError,
    MalformedPayloadError,
    PermanentError,
    RateLimitedError,
)

PROVIDER = "quickbooks"
Json = Mapping[str, Any]
#: Supplies the home currency for the rare record without a CurrencyRef (looked up lazily).
HomeCurrency = Callable[[], str]

#: Fault codes that mean the company's grant or subscription is gone: a person must act.
AUTH_FAULTS = {100, 120, 3100, 3200, 6190}
STALE_OBJECT = 5010
THROTTLED = 3001


def money(value: Any, what: str) -> Decimal:
    """An amount from the API as an exact Decimal (never through float)."""
    if value is None or value == "":
        return ZERO
    if isinstance(value, float):  # only if a caller parsed JSON without parse_float=Decimal
        value = repr(value)
    try:
        return Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise MalformedPayloadError(f"{what}: {value!r} is not an amount",
                                    provider=PROVIDER) from exc


def parse_date(value: Any, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise MalformedPayloadError(f"{what}: {value!r} is not a date", provider=PROVIDER) from exc


def parse_time(value: Any, what: str) -> datetime | None:
    """A QuickBooks timestamp (``2026-11-01T10:15:00-08:00``), which always carries an offset."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise MalformedPayloadError(f"{what}: {value!r} is not a timestamp",
                                    provider=PROVIDER) from exc
    if parsed.tzinfo is None:
        raise MalformedPayloadError(f"{what}: {value!r} has no UTC offset", provider=PROVIDER)
    return parsed


def _ref(obj: Json, key: str) -> str | None:
    ref = obj.get(key)
    return str(ref["value"]) if isinstance(ref, Mapping) and ref.get("value") else None


def _id(obj: Json, entity: str) -> str:
    if not isinstance(obj, Mapping) or not obj.get("Id"):
        raise MalformedPayloadError(f"{entity} without an Id: {str(obj)[:200]}", provider=PROVIDER)
    return str(obj["Id"])


def _updated(obj: Json, entity: str) -> datetime | None:
    meta = obj.get("MetaData") or {}
    return parse_time(meta.get("LastUpdatedTime"), f"{entity}.MetaData.LastUpdatedTime")


def is_voided(obj: Json) -> bool:
    """QuickBooks' only marks of a void: a zero total and "Voided" at the head of PrivateNote."""
    note = str(obj.get("PrivateNote") or "")
    return money(obj.get("TotalAmt"), "TotalAmt") == ZERO and note.startswith("Voided")


def is_deleted(obj: Json) -> bool:
    return str(obj.get("status", "")).lower() == "deleted"


def to_customer(obj: Json) -> RemoteCustomer:
    eid = _id(obj, "Customer")
    email = (obj.get("PrimaryEmailAddr") or {}).get("Address")
    phone = (obj.get("PrimaryPhone") or {}).get("FreeFormNumber")
    name = obj.get("DisplayName") or obj.get("CompanyName") or obj.get("FullyQualifiedName")
    if not name:
        raise MalformedPayloadError(f"Customer {eid} has no DisplayName", provider=PROVIDER)
    return RemoteCustomer(
        external_id=eid, name=str(name), email=email or None, phone=phone or None,
        currency=_ref(obj, "CurrencyRef"), active=bool(obj.get("Active", True)),
        updated_at=_updated(obj, "Customer"))


def to_invoice(obj: Json, home_currency: HomeCurrency) -> RemoteInvoice:
    eid = _id(obj, "Invoice")
    customer = _ref(obj, "CustomerRef")
    if customer is None:
        raise MalformedPayloadError(f"Invoice {eid} has no CustomerRef", provider=PROVIDER)
    total = money(obj.get("TotalAmt"), f"Invoice {eid} TotalAmt")
    balance = money(obj.get("Balance"), f"Invoice {eid} Balance")
    if is_voided(obj):
        status = InvoiceStatus.VOIDED
    elif balance <= ZERO:
        status = InvoiceStatus.PAID
    else:
        status = InvoiceStatus.OPEN
    issue = parse_date(obj.get("TxnDate"), f"Invoice {eid} TxnDate")
    rate = obj.get("ExchangeRate")
    return RemoteInvoice(
        external_id=eid,
        number=obj.get("DocNumber"),
        customer_external_id=customer,
        customer_name=(obj.get("CustomerRef") or {}).get("name"),
        currency=_ref(obj, "CurrencyRef") or home_currency(),
        total=total,
        balance=balance,
        issue_date=issue,
        due_date=parse_date(obj.get("DueDate"), f"Invoice {eid} DueDate") or issue,
        status=status,
        updated_at=_updated(obj, "Invoice"),
        billing_email=(obj.get("BillEmail") or {}).get("Address") or None,
        exchange_rate=money(rate, "ExchangeRate") if rate is not None else None,
        version=str(obj["SyncToken"]) if obj.get("SyncToken") is not None else None,
    )


_TARGETS = {"Invoice": "invoice", "CreditMemo": "credit_note"}


def to_payment(obj: Json, home_currency: HomeCurrency) -> RemotePayment:
    eid = _id(obj, "Payment")
    apps: list[Application] = []
    for line in obj.get("Line") or []:
        amount = money(line.get("Amount"), f"Payment {eid} Line.Amount")
        for linked in line.get("LinkedTxn") or []:
            target = _TARGETS.get(str(linked.get("TxnType")))
            if target and linked.get("TxnId"):
                apps.append(Application(target, str(linked["TxnId"]), amount))
    return RemotePayment(
        external_id=eid,
        customer_external_id=_ref(obj, "CustomerRef"),
        currency=_ref(obj, "CurrencyRef") or home_currency(),
        amount=money(obj.get("TotalAmt"), f"Payment {eid} TotalAmt"),
        unapplied=money(obj.get("UnappliedAmt"), f"Payment {eid} UnappliedAmt"),
        paid_on=parse_date(obj.get("TxnDate"), f"Payment {eid} TxnDate"),
        voided=is_voided(obj),
        updated_at=_updated(obj, "Payment"),
        applications=tuple(apps),
    )


def to_credit_note(obj: Json, home_currency: HomeCurrency) -> RemoteCreditNote:
    eid = _id(obj, "CreditMemo")
    total = money(obj.get("TotalAmt"), f"CreditMemo {eid} TotalAmt")
    remaining = money(obj.get("RemainingCredit", obj.get("Balance")),
                      f"CreditMemo {eid} RemainingCredit")
    status = "voided" if is_voided(obj) else ("open" if remaining > ZERO else "applied")
    return RemoteCreditNote(
        external_id=eid, number=obj.get("DocNumber"), customer_external_id=_ref(obj, "CustomerRef"),
        currency=_ref(obj, "CurrencyRef") or home_currency(), total=total, remaining=remaining,
        issue_date=parse_date(obj.get("TxnDate"), f"CreditMemo {eid} TxnDate"), status=status,
        updated_at=_updated(obj, "CreditMemo"))


def split_cdc(resp: Json, names: Iterable[str]) -> dict[str, list[Json]]:
    """The objects of a change-data-capture answer, by entity name (deleted ones included)."""
    wanted = set(names)
    found: dict[str, list[Json]] = {name: [] for name in wanted}
    try:
        for block in resp["CDCResponse"][0].get("QueryResponse") or []:
            for name, rows in block.items():
                if name in wanted and isinstance(rows, list):
                    found[name].extend(rows)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedPayloadError(f"unexpected CDC answer: {str(resp)[:300]}",
                                    provider=PROVIDER) from exc
    return found


def fault_codes(fault: Json) -> list[int]:
    """The numeric codes of a QuickBooks ``Fault`` (either key casing: 401s use lower case)."""
    errors = fault.get("Error") or fault.get("error") or []
    codes = []
    for err in errors:
        try:
            codes.append(int(err.get("code", 0)))
        except (TypeError, ValueError):
            codes.append(0)
    return codes


def map_sdk_error(exc: qbx.QuickbooksException) -> ArsyncError:
    """The one place a python-quickbooks exception becomes an arsync error."""
    code = int(exc.error_code or 0)
    text = f"QuickBooks fault {code}: {exc.message} {exc.detail or ''}".strip()
    if code == STALE_OBJECT:
        return ConflictError(text, provider=PROVIDER, status=400)
    if code == THROTTLED:  # python-quickbooks files 3001 under ValidationException
        return RateLimitedError(text, provider=PROVIDER)
    if code in AUTH_FAULTS or isinstance(exc, qbx.AuthorizationException):
        return AuthError(text, provider=PROVIDER)
    if code == 10000:  # python-quickbooks' code for "the body was not JSON"
        return MalformedPayloadError(text, provider=PROVIDER)
    return PermanentError(text, provider=PROVIDER)
