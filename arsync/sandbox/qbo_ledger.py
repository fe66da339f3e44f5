"""Invoices, payments and credit memos: the money rules of the emulated company.

The books always balance: for every invoice, the payment lines linked to it add up to
``TotalAmt - Balance``. A Payment applies cash (and credit memos, as lines linked to a
CreditMemo) to invoices; each application bumps the invoice's SyncToken and LastUpdatedTime, as
a real payment does. GUESS: applied credit shows on the invoice as a LinkedTxn to that (zero-total)
Payment, not to the CreditMemo. Customer.Balance follows every change (open invoices, minus
unapplied cash and credit). All functions expect the company lock held and run inside
``Company.atomic()``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from arsync.sandbox import qbo_wire as wire
from arsync.sandbox.qbo_store import CENT, DEFAULT_TERM, Company, currency_ref, exchange_rate, money
from arsync.sandbox.qbo_wire import QBOFault, qbo_time, wire_copy

SANDBOX_EMAILS_PER_DAY = 40
_LINE_TYPES = {"SalesItemLineDetail", "DescriptionOnly", "DiscountLineDetail",
               "SubTotalLineDetail"}
_SERVER_LINKS = {"Payment", "CreditMemo", "ReimburseCharge"}


def _dec(value: Any) -> Decimal:
    return Decimal(str(value if value is not None else 0))


def _open_amount(entity: str, obj: dict[str, Any] | None) -> Decimal:
    """What an object contributes to its customer's balance."""
    if obj is None:
        return Decimal(0)
    if entity == "Invoice":
        return _dec(obj.get("Balance"))
    if entity == "Payment":
        return -_dec(obj.get("UnappliedAmt"))
    return -_dec(obj.get("RemainingCredit"))


def _track(co: Company, entity: str, old: dict[str, Any] | None,
           new: dict[str, Any] | None) -> None:
    if old is not None:
        co.adjust_customer_balance(old["CustomerRef"]["value"], -_open_amount(entity, old))
    if new is not None:
        co.adjust_customer_balance(new["CustomerRef"]["value"], _open_amount(entity, new))


def _home(obj: dict[str, Any], co: Company) -> None:
    """Home-currency mirrors of TotalAmt/Balance, present on foreign-currency documents."""
    rate = _dec(obj.get("ExchangeRate", 1))
    if obj.get("CurrencyRef", {}).get("value", co.currency) != co.currency:
        obj["HomeTotalAmt"] = (_dec(obj["TotalAmt"]) * rate).quantize(CENT)
        if "Balance" in obj:
            obj["HomeBalance"] = (_dec(obj["Balance"]) * rate).quantize(CENT)


def _lines(raw_lines: Any) -> tuple[list[dict[str, Any]], Decimal]:
    """Validate and number sales lines; returns the lines (+ SubTotalLine) and the total."""
    if not isinstance(raw_lines, list) or not raw_lines:
        raise wire.required("Line")
    out: list[dict[str, Any]] = []
    total = Decimal(0)
    for raw in raw_lines:
        if not isinstance(raw, dict):
            raise wire.invalid("Line items must be objects", "Line")
        kind = raw.get("DetailType")
        if kind not in _LINE_TYPES:
            raise wire.required("Line.DetailType") if not kind else wire.invalid(
                f"Invalid Enumeration : {kind}", "Line.DetailType")
        if kind == "SubTotalLineDetail":
            continue  # recomputed by the service
        line = {k: wire_copy(v) for k, v in raw.items()
                if k in ("Description", "DetailType", "Amount", kind, "DescriptionLineDetail")}
        line["Id"] = str(len(out) + 1)
        line["LineNum"] = len(out) + 1
        if kind == "SalesItemLineDetail":
            if raw.get("Amount") in (None, ""):
                raise wire.required("Line.Amount")
            amount = money(raw["Amount"], "Line.Amount")
            detail = dict(raw.get(kind) or {})
            qty, price = detail.get("Qty"), detail.get("UnitPrice")
            # Zeros mean "not given" (python-quickbooks sends Qty 0, UnitPrice 0 by default,
            # which production accepts); both given must multiply to the amount.
            if qty not in (None, "", 0) and price not in (None, "", 0) and _dec(qty) != 0 and (
                    _dec(qty) * _dec(price)).quantize(CENT) != amount:
                raise QBOFault(400, "6070", "Amount calculation incorrect in the request",
                               f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}")
            detail.setdefault("ItemRef", {"name": "Services", "value": "1"})
            detail.setdefault("TaxCodeRef", {"value": "NON"})
            line[kind] = detail
            line["Amount"] = amount
            total += amount
        elif kind == "DiscountLineDetail":
            amount = money(raw.get("Amount"), "Line.Amount")
            line["Amount"] = amount
            line.setdefault(kind, {"PercentBased": False})
            total -= amount
        else:
            line.pop("Amount", None)
            line.setdefault("DescriptionLineDetail", {})
        out.append(line)
    if not out:
        raise wire.required("Line")
    subtotal = sum((_dec(ln["Amount"]) for ln in out
                    if ln["DetailType"] == "SalesItemLineDetail"), Decimal(0))
    out.append({"DetailType": "SubTotalLineDetail", "Amount": subtotal, "SubTotalLineDetail": {}})
    return out, total


def _currency(co: Company, doc: dict[str, Any], customer: dict[str, Any]) -> None:
    """Fix CurrencyRef/ExchangeRate: a document is in its customer's currency."""
    customer_currency = customer.get("CurrencyRef", {}).get("value", co.currency)
    wanted = (doc.get("CurrencyRef") or {}).get("value") or customer_currency
    if wanted != co.currency and not co.multicurrency:
        raise wire.business("Multicurrency is not enabled for this company.")
    if wanted != customer_currency:
        raise wire.business(f"The currency of the transaction ({wanted}) must match the "
                            f"currency of the customer ({customer_currency}).")
    doc["CurrencyRef"] = currency_ref(wanted)
    if co.multicurrency:
        doc["ExchangeRate"] = _dec(doc["ExchangeRate"]) if doc.get(
            "ExchangeRate") not in (None, "") and wanted != co.currency else exchange_rate(
            co.currency, wanted)
    else:
        doc.pop("ExchangeRate", None)


# --- invoices -------------------------------------------------------------------------------------

def write_invoice(co: Company, body: dict[str, Any], when: datetime) -> dict[str, Any]:
    """Create an invoice, or update one (sparse or full) with SyncToken checking."""
    co.check_body("Invoice", body)
    current = None
    if body.get("Id"):
        current = co.find("Invoice", body["Id"])
        co.check_sync_token(current, body)
        sparse = body.get("sparse") is True
        inv = co.merge("Invoice", current, body, sparse)
    else:
        inv = co.merge("Invoice", {}, body, sparse=True)
    customer = co.customer_for(inv.get("CustomerRef"))
    if current is not None and customer["Id"] != current["CustomerRef"]["value"] and \
            _dec(current["TotalAmt"]) != _dec(current["Balance"]):
        raise wire.business("You can't change the customer of an invoice that has payments.")
    inv["CustomerRef"] = co.customer_ref(customer)
    _currency(co, inv, customer)
    today = co.today().isoformat()
    inv["TxnDate"] = co.check_date(inv["TxnDate"], "TxnDate") if inv.get("TxnDate") else today
    if current is None and "SalesTermRef" not in inv:
        inv["SalesTermRef"] = wire_copy(customer.get("SalesTermRef") or {"value": DEFAULT_TERM})
    if inv.get("DueDate"):
        inv["DueDate"] = co.check_date(inv["DueDate"], "DueDate")
    else:
        # QuickBooks derives a missing due date from the terms on create; GUESS: a full update
        # that omits it does the same (so it silently undoes a negotiated due date).
        inv["DueDate"] = co.due_date_for(inv["TxnDate"], inv.get("SalesTermRef"))
    if current is None:
        inv.setdefault("DocNumber", co.new_doc_number())
        # GUESS: BillEmail defaults to the customer's address, as the UI fills it in.
        if "BillEmail" not in inv and customer.get("PrimaryEmailAddr"):
            inv["BillEmail"] = {"Address": customer["PrimaryEmailAddr"]["Address"]}
        for key in ("BillAddr", "ShipAddr"):
            if key not in inv and customer.get(key):
                inv[key] = wire_copy(customer[key])
        inv.setdefault("AllowOnlineCreditCardPayment", co.online_payments)
        inv.setdefault("AllowOnlineACHPayment", co.online_payments)
    inv["Line"], total = _lines(inv.get("Line"))
    paid = Decimal(0) if current is None else _dec(current["TotalAmt"]) - _dec(current["Balance"])
    deposit = _dec(inv.get("Deposit", 0))
    balance = total - paid - deposit
    if balance < 0:
        raise wire.business("The invoice total can't be less than the payments applied to it.")
    inv["TotalAmt"] = total
    inv["Balance"] = balance
    inv["Deposit"] = inv.get("Deposit", 0)
    inv["LinkedTxn"] = [lt for lt in (current or {}).get("LinkedTxn", [])
                        if lt.get("TxnType") in _SERVER_LINKS]
    inv.setdefault("TxnTaxDetail", {"TotalTax": 0})
    inv.setdefault("ApplyTaxAfterDiscount", False)
    inv.setdefault("PrintStatus", "NeedToPrint" if current is None else "NotSet")
    inv.setdefault("EmailStatus", "NotSet")
    inv["domain"], inv["sparse"] = "QBO", False
    _home(inv, co)
    if current is None:
        co.create("Invoice", inv, when)
    else:
        co.bump("Invoice", inv, when)
    _track(co, "Invoice", current, inv)
    return inv


def _payment_ids(invoice: dict[str, Any]) -> list[str]:
    return [lt["TxnId"] for lt in invoice.get("LinkedTxn", []) if lt.get("TxnType") == "Payment"]


def _unlink_payments(co: Company, invoice_id: str, when: datetime) -> None:
    """Detach every payment from an invoice about to be voided/deleted (as the UI does).

    A payment that only carried credit for this invoice (TotalAmt 0) releases the credit and
    disappears; a cash payment keeps the money as UnappliedAmt.
    """
    invoice = co.find("Invoice", invoice_id)
    for pid in _payment_ids(invoice):
        old = co.objects["Payment"].get(pid)
        if old is None:
            continue
        pay = wire_copy(old)
        pay["Line"] = [ln for ln in pay.get("Line", []) if not any(
            lt.get("TxnType") == "Invoice" and lt.get("TxnId") == invoice_id
            for lt in ln.get("LinkedTxn", []))]
        if _dec(pay["TotalAmt"]) == 0 and all(
                lt.get("TxnType") == "CreditMemo"
                for ln in pay["Line"] for lt in ln.get("LinkedTxn", [])):
            _apply(co, {"Id": pid, "Line": pay["Line"]}, when, -1)
            pay["Line"] = []
        if not pay["Line"] and _dec(pay["TotalAmt"]) == 0:
            _track(co, "Payment", old, None)
            co.tombstone("Payment", pid, when)
            continue
        _settle_payment(pay)
        co.bump("Payment", pay, when)
        _track(co, "Payment", old, pay)


def void_invoice(co: Company, body: dict[str, Any], when: datetime) -> dict[str, Any]:
    """``operation=void``: amounts zeroed, "Voided" prepended to PrivateNote, payments unlinked."""
    if not body.get("Id"):
        raise wire.required("Id")
    current = co.find("Invoice", body["Id"])
    co.check_sync_token(current, body)
    _unlink_payments(co, current["Id"], when)
    current = co.find("Invoice", body["Id"])
    inv = wire_copy(current)
    inv["LinkedTxn"] = [lt for lt in inv.get("LinkedTxn", []) if lt.get("TxnType") != "Payment"]
    for line in inv.get("Line", []):
        if "Amount" in line:
            line["Amount"] = 0
        detail = line.get("SalesItemLineDetail")
        if detail is not None:
            detail["Qty"] = 0
            detail.pop("UnitPrice", None)
    inv["TotalAmt"] = 0
    inv["Balance"] = 0
    for key in ("HomeTotalAmt", "HomeBalance"):
        if key in inv:
            inv[key] = 0
    inv["TxnTaxDetail"] = {"TotalTax": 0}
    note = inv.get("PrivateNote")
    # Documented: "Voided" is prepended to existing text; GUESS: the separator is " - ".
    inv["PrivateNote"] = f"Voided - {note}" if note else "Voided"
    co.bump("Invoice", inv, when)
    _track(co, "Invoice", current, inv)
    return inv


def delete_invoice(co: Company, body: dict[str, Any], when: datetime, *,
                   unlink: bool = False) -> dict[str, Any]:
    """``operation=delete``; the API refuses while payments are linked (the UI unlinks them)."""
    if not body.get("Id"):
        raise wire.required("Id")
    current = co.find("Invoice", body["Id"])
    co.check_sync_token(current, body)
    if _payment_ids(current):
        # The docs say linked transactions must be unlinked first; GUESS: the refusal is a 6000.
        if not unlink:
            raise wire.business("You must unlink any linked transactions associated with "
                                "this invoice before deleting it.")
        _unlink_payments(co, current["Id"], when)
        current = co.find("Invoice", body["Id"])
    _track(co, "Invoice", current, None)
    return co.tombstone("Invoice", current["Id"], when)


def send_invoice(co: Company, invoice_id: str, send_to: str | None,
                 when: datetime) -> dict[str, Any]:
    """``invoice/{id}/send``: EmailStatus=EmailSent, DeliveryInfo, BillEmail=sendTo."""
    inv = co.editable("Invoice", invoice_id)
    address = send_to or (inv.get("BillEmail") or {}).get("Address")
    if not address:
        raise wire.business("An email address is required to send this invoice.")
    if "@" not in address or " " in address.strip():
        raise wire.invalid(f"Invalid email address: {address}", "BillEmail")
    day = co.today()
    # The 40/day sandbox cap is documented; GUESS: exceeding it is a 400 business fault.
    if co.emails_sent.get(day, 0) >= SANDBOX_EMAILS_PER_DAY:
        raise wire.business(f"Sandbox companies can send at most {SANDBOX_EMAILS_PER_DAY} "
                            "emails a day.")
    inv["EmailStatus"] = "EmailSent"
    inv["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": qbo_time(when)}
    if send_to:
        inv["BillEmail"] = {"Address": send_to}
    co.bump("Invoice", inv, when)
    co.emails_sent[day] = co.emails_sent.get(day, 0) + 1
    co.outbox.append({"invoice_id": invoice_id, "to": address, "at": when})
    return inv


# --- payments -------------------------------------------------------------------------------------

def _links(pay: dict[str, Any]) -> list[tuple[str, str, Decimal]]:
    out = []
    for line in pay.get("Line", []):
        for lt in line.get("LinkedTxn", []):
            out.append((lt["TxnType"], str(lt["TxnId"]), _dec(line.get("Amount"))))
    return out


def _settle_payment(pay: dict[str, Any]) -> None:
    """UnappliedAmt = TotalAmt - (invoices paid - credit used); never negative."""
    applied = Decimal(0)
    for kind, _tid, amount in _links(pay):
        applied += amount if kind == "Invoice" else -amount
    unapplied = _dec(pay["TotalAmt"]) - applied
    if unapplied < 0:
        raise wire.business("The amount applied to invoices is more than the payment amount "
                            "and credits available.")
    pay["UnappliedAmt"] = unapplied


def _apply(co: Company, pay: dict[str, Any], when: datetime, sign: int) -> None:
    """Apply (+1) or release (-1) a payment's lines on the linked invoices and credit memos."""
    customer_id = pay.get("CustomerRef", {}).get("value")
    for kind, tid, amount in _links(pay):
        entity = "Invoice" if kind == "Invoice" else "CreditMemo"
        old = co.objects[entity].get(tid)
        if old is None:
            if sign < 0:
                continue
            raise wire.invalid_reference(f"Line.LinkedTxn.{kind}", tid)
        doc = wire_copy(old)
        if sign > 0:
            if doc["CustomerRef"]["value"] != customer_id:
                raise wire.business(f"{kind} {tid} belongs to another customer.")
            if doc.get("CurrencyRef", {}).get("value") != pay.get("CurrencyRef", {}).get("value"):
                raise wire.business(f"{kind} {tid} is in another currency.")
            if amount <= 0:
                raise wire.invalid("Line.Amount must be positive", "Line.Amount")
            if amount > _dec(doc["Balance"]):
                raise wire.business(f"The amount applied ({amount}) is more than the open "
                                    f"balance of {kind} {tid} ({doc['Balance']}).")
        doc["Balance"] = _dec(doc["Balance"]) - sign * amount
        if entity == "CreditMemo":
            doc["RemainingCredit"] = doc["Balance"]
        link = {"TxnId": pay["Id"], "TxnType": "Payment"}
        others = [lt for lt in doc.get("LinkedTxn", []) if lt != link]
        doc["LinkedTxn"] = [*others, link] if sign > 0 else others
        _home(doc, co)
        co.bump(entity, doc, when)
        _track(co, entity, old, doc)


def write_payment(co: Company, body: dict[str, Any], when: datetime) -> dict[str, Any]:
    """Create or update a Payment; applying it reduces the linked invoices' balances."""
    co.check_body("Payment", body)
    current = None
    if body.get("Id"):
        current = co.find("Payment", body["Id"])
        co.check_sync_token(current, body)
        sparse = body.get("sparse") is True
        pay = co.merge("Payment", current, body, sparse)
        relink = not sparse or "Line" in body or "TotalAmt" in body or "CustomerRef" in body
    else:
        pay = co.merge("Payment", {}, body, sparse=True)
        relink = True
    customer = co.customer_for(pay.get("CustomerRef"))
    pay["CustomerRef"] = co.customer_ref(customer)
    _currency(co, pay, customer)
    if pay.get("TotalAmt") in (None, ""):
        raise wire.required("TotalAmt")
    pay["TotalAmt"] = money(pay["TotalAmt"], "TotalAmt")
    if pay["TotalAmt"] < 0:
        raise wire.invalid("TotalAmt can't be negative", "TotalAmt")
    lines = []
    for raw in pay.get("Line") or []:
        linked = raw.get("LinkedTxn") if isinstance(raw, dict) else None
        if not isinstance(linked, list) or len(linked) != 1:
            raise wire.required("Line.LinkedTxn")
        kind = linked[0].get("TxnType")
        if kind not in ("Invoice", "CreditMemo"):
            raise wire.invalid(f"Invalid Enumeration : {kind}", "Line.LinkedTxn.TxnType")
        lines.append({"Amount": money(raw.get("Amount"), "Line.Amount"),
                      "LinkedTxn": [{"TxnId": str(linked[0].get("TxnId")), "TxnType": kind}]})
    pay["Line"] = lines
    pay["TxnDate"] = co.check_date(pay["TxnDate"], "TxnDate") if pay.get(
        "TxnDate") else co.today().isoformat()
    pay.setdefault("DepositToAccountRef", {"value": "4"})
    pay["ProcessPayment"] = False
    pay["domain"], pay["sparse"] = "QBO", False
    _settle_payment(pay)
    if current is not None and relink:
        _apply(co, current, when, -1)
    if current is None:
        co.create("Payment", pay, when)
    else:
        co.bump("Payment", pay, when)
    if relink:
        _apply(co, pay, when, +1)
    _track(co, "Payment", current, pay)
    return pay


def delete_payment(co: Company, body: dict[str, Any], when: datetime) -> dict[str, Any]:
    """``operation=delete`` on a Payment: the invoices it paid are open again."""
    if not body.get("Id"):
        raise wire.required("Id")
    current = co.find("Payment", body["Id"])
    co.check_sync_token(current, body)
    _apply(co, current, when, -1)
    _track(co, "Payment", current, None)
    return co.tombstone("Payment", current["Id"], when)


# --- credit memos ---------------------------------------------------------------------------------

def write_credit_memo(co: Company, body: dict[str, Any], when: datetime) -> dict[str, Any]:
    """Create or update a CreditMemo (credit is used by Payment lines linked to it)."""
    co.check_body("CreditMemo", body)
    current = None
    if body.get("Id"):
        current = co.find("CreditMemo", body["Id"])
        co.check_sync_token(current, body)
        memo = co.merge("CreditMemo", current, body, body.get("sparse") is True)
    else:
        memo = co.merge("CreditMemo", {}, body, sparse=True)
    customer = co.customer_for(memo.get("CustomerRef"))
    memo["CustomerRef"] = co.customer_ref(customer)
    _currency(co, memo, customer)
    memo["TxnDate"] = co.check_date(memo["TxnDate"], "TxnDate") if memo.get(
        "TxnDate") else co.today().isoformat()
    if current is None:
        memo.setdefault("DocNumber", co.new_doc_number())
    memo["Line"], total = _lines(memo.get("Line"))
    used = Decimal(0) if current is None else _dec(current["TotalAmt"]) - _dec(
        current["RemainingCredit"])
    if total < used:
        raise wire.business("The credit memo total can't be less than the credit already used.")
    memo["TotalAmt"] = total
    memo["RemainingCredit"] = memo["Balance"] = total - used
    memo["LinkedTxn"] = [lt for lt in (current or {}).get("LinkedTxn", [])
                         if lt.get("TxnType") in _SERVER_LINKS]
    memo.setdefault("TxnTaxDetail", {"TotalTax": 0})
    memo.setdefault("ApplyTaxAfterDiscount", False)
    memo.setdefault("PrintStatus", "NotSet")
    memo.setdefault("EmailStatus", "NotSet")
    memo["domain"], memo["sparse"] = "QBO", False
    _home(memo, co)
    if current is None:
        co.create("CreditMemo", memo, when)
    else:
        co.bump("CreditMemo", memo, when)
    _track(co, "CreditMemo", current, memo)
    return memo


def delete_credit_memo(co: Company, body: dict[str, Any], when: datetime) -> dict[str, Any]:
    """``operation=delete`` on a CreditMemo that has not been used."""
    if not body.get("Id"):
        raise wire.required("Id")
    current = co.find("CreditMemo", body["Id"])
    co.check_sync_token(current, body)
    if _payment_ids(current):
        raise wire.business("You must unlink any linked transactions associated with this "
                            "credit memo before deleting it.")
    _track(co, "CreditMemo", current, None)
    return co.tombstone("CreditMemo", current["Id"], when)


def check_books(co: Company) -> list[str]:
    """Problems with the ledger invariants (empty when the books balance); for tests."""
    applied: dict[str, Decimal] = {}
    for pay in co.objects["Payment"].values():
        for kind, tid, amount in _links(pay):
            if kind == "Invoice":
                applied[tid] = applied.get(tid, Decimal(0)) + amount
    problems = []
    for inv in co.objects["Invoice"].values():
        paid = _dec(inv["TotalAmt"]) - _dec(inv["Balance"]) - _dec(inv.get("Deposit", 0))
        if applied.get(inv["Id"], Decimal(0)) != paid:
            problems.append(f"invoice {inv['Id']}: payments {applied.get(inv['Id'])} != {paid}")
        if _dec(inv["Balance"]) < 0:
            problems.append(f"invoice {inv['Id']}: negative balance")
    return problems
