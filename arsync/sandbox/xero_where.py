"""Xero's ``where`` and ``order`` query parameters, compiled to Python predicates and sort keys.

Supported ``where`` grammar (the subset of Xero's .NET-flavoured filter language that clients
use)::

    Type=="ACCREC" AND Status!="PAID"          Contact.ContactID==Guid("...")
    Date>=DateTime(2024, 01, 01)               AmountDue > 0 && (Status=="AUTHORISED" || ...)
    EmailAddress!=null                         Name.Contains("Ltd")  .StartsWith / .EndsWith
    Name.ToLower()=="acme"                     IsCustomer==true      NOT ...

Anything else (unknown field, type mismatch, stray token) raises :class:`WhereError`, which the
sandbox answers with Xero's 400 ``QueryParseException``. String comparisons and ``.Contains``
are case-sensitive (use ``.ToLower()``), the stricter reading.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from arsync.sandbox.xero_model import CreditNote, Invoice, Organisation, Payment

Getter = Callable[[Any], Any]
Predicate = Callable[[Any], bool]

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<op>==|!=|>=|<=|&&|\|\||[=<>!(),.])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)
_METHODS = {"contains", "startswith", "endswith", "tolower", "toupper"}


class WhereError(ValueError):
    """A ``where`` or ``order`` Xero would reject (its QueryParseException message)."""


def field_table(kind: str, org: Organisation) -> dict[str, tuple[str, Getter]]:
    """Filterable fields of a record kind: lower-case path -> (type, getter)."""
    contacts = org.contacts
    if kind == "Invoices":
        return {
            "type": ("enum", lambda r: r.type),
            "status": ("enum", lambda r: r.status),
            "invoiceid": ("guid", lambda r: r.invoice_id),
            "invoicenumber": ("str", lambda r: r.number),
            "reference": ("str", lambda r: r.reference),
            "date": ("date", lambda r: r.date),
            "duedate": ("date", lambda r: r.due_date),
            "fullypaidondate": ("date", lambda r: r.fully_paid_on),
            "updateddateutc": ("datetime", lambda r: r.updated),
            "subtotal": ("decimal", lambda r: r.sub_total),
            "totaltax": ("decimal", lambda r: r.total_tax),
            "total": ("decimal", lambda r: r.total),
            "amountdue": ("decimal", lambda r: r.amount_due),
            "amountpaid": ("decimal", lambda r: r.amount_paid),
            "amountcredited": ("decimal", lambda r: r.amount_credited),
            "currencycode": ("enum", lambda r: r.currency),
            "currencyrate": ("decimal", lambda r: r.currency_rate),
            "senttocontact": ("bool", lambda r: r.sent_to_contact),
            "hasattachments": ("bool", lambda r: False),
            "contact.contactid": ("guid", lambda r: r.contact_id),
            "contact.name": ("str", lambda r: contacts[r.contact_id].name),
            "contact.emailaddress": ("str", lambda r: contacts[r.contact_id].email),
        }
    if kind == "Contacts":
        return {
            "contactid": ("guid", lambda r: r.contact_id),
            "name": ("str", lambda r: r.name),
            "firstname": ("str", lambda r: r.first_name),
            "lastname": ("str", lambda r: r.last_name),
            "emailaddress": ("str", lambda r: r.email),
            "accountnumber": ("str", lambda r: r.account_number),
            "contactstatus": ("enum", lambda r: r.status),
            "iscustomer": ("bool", lambda r: r.is_customer),
            "issupplier": ("bool", lambda r: r.is_supplier),
            "updateddateutc": ("datetime", lambda r: r.updated),
        }
    if kind == "Payments":
        invoices, notes = org.invoices, org.credit_notes

        def doc(r: Payment) -> Invoice | CreditNote:
            return invoices[r.invoice_id] if r.invoice_id else notes[r.credit_note_id or ""]

        return {
            "paymentid": ("guid", lambda r: r.payment_id),
            "status": ("enum", lambda r: r.status),
            "paymenttype": ("enum", lambda r: r.payment_type),
            "date": ("date", lambda r: r.date),
            "amount": ("decimal", lambda r: r.amount),
            "reference": ("str", lambda r: r.reference),
            "isreconciled": ("bool", lambda r: r.is_reconciled),
            "updateddateutc": ("datetime", lambda r: r.updated),
            "invoice.invoiceid": ("guid", lambda r: r.invoice_id or r.credit_note_id),
            "invoice.type": ("enum", lambda r: doc(r).type),
            "invoice.invoicenumber": ("str", lambda r: doc(r).number),
            "invoice.contact.contactid": ("guid", lambda r: doc(r).contact_id),
        }
    if kind == "CreditNotes":
        payments = org.payments
        return {
            "creditnoteid": ("guid", lambda r: r.credit_note_id),
            "creditnotenumber": ("str", lambda r: r.number),
            "type": ("enum", lambda r: r.type),
            "status": ("enum", lambda r: r.status),
            "reference": ("str", lambda r: r.reference),
            "date": ("date", lambda r: r.date),
            "total": ("decimal", lambda r: r.total),
            "remainingcredit": ("decimal", lambda r: r.remaining_credit(payments)),
            "currencycode": ("enum", lambda r: r.currency),
            "updateddateutc": ("datetime", lambda r: r.updated),
            "contact.contactid": ("guid", lambda r: r.contact_id),
            "contact.name": ("str", lambda r: contacts[r.contact_id].name),
        }
    raise KeyError(kind)


_ENTITY = {"Invoices": "Invoice", "Contacts": "Contact", "Payments": "Payment",
           "CreditNotes": "CreditNote"}


@dataclass
class Where:
    """A compiled ``where``: the predicate, how many ORs it had and which fields it names."""

    predicate: Predicate
    or_count: int = 0
    fields: set[str] = field(default_factory=set)


@dataclass
class _Operand:
    kind: str  # "field" | "literal"
    type: str  # field type, or literal type: str, num, guid, datetime, bool, null
    value: Any = None  # literal value, or getter
    path: str = ""
    method: tuple[str, str] | None = None  # (name, argument) of Contains/StartsWith/EndsWith


def _normal_time(value: Any) -> datetime | None:
    """Dates and datetimes as naive UTC datetimes, so that either can be compared with either."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)  # noqa: DTZ001 - naive UTC on purpose
    raise TypeError(value)


def _case(getter: Getter, *, upper: bool) -> Getter:
    def get(record: Any) -> str:
        value = getter(record) or ""
        return value.upper() if upper else value.lower()
    return get


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
_MIRROR = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "=": "=", "!=": "!="}


class _Parser:
    def __init__(self, text: str, kind: str, fields: dict[str, tuple[str, Getter]]) -> None:
        self.kind, self.fields = kind, fields
        self.tokens: list[tuple[str, str]] = []
        pos, text = 0, text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise WhereError(f"Syntax error in where clause at position {pos}: "
                                 f"'{text[pos:pos + 20]}'")
            group = m.lastgroup or ""
            self.tokens.append((group, m.group(group)))
            pos = m.end()
        self.i = 0
        self.or_count = 0
        self.used: set[str] = set()

    # token helpers
    def peek(self, offset: int = 0) -> tuple[str, str]:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.take()
        if tok[1] != value:
            raise WhereError(f"Expected '{value}' but found '{tok[1] or 'end of expression'}'")

    def is_word(self, *words: str) -> bool:
        kind, value = self.peek()
        return (kind == "ident" and value.upper() in words) or (kind == "op" and value in words)

    # grammar
    def parse(self) -> Predicate:
        if not self.tokens:
            raise WhereError("The where clause is empty")
        pred = self.disjunction()
        if self.peek()[0] != "end":
            raise WhereError(f"Unexpected '{self.peek()[1]}' in where clause")
        return pred

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.is_word("OR", "||"):
            self.take()
            self.or_count += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.is_word("AND", "&&"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def negation(self) -> Predicate:
        if self.is_word("NOT", "!"):
            self.take()
            inner = self.negation()
            return lambda r: not inner(r)
        if self.peek()[1] == "(":
            self.take()
            inner = self.disjunction()
            self.expect(")")
            return inner
        return self.comparison()

    def operand(self) -> _Operand:
        kind, value = self.take()
        if kind == "str":
            return _Operand("literal", "str", re.sub(r"\\(.)", r"\1", value[1:-1]))
        if kind == "num":
            try:
                return _Operand("literal", "num", Decimal(value))
            except InvalidOperation as exc:  # pragma: no cover - the regex only admits numbers
                raise WhereError(f"Invalid number '{value}'") from exc
        if kind != "ident":
            raise WhereError(f"Unexpected '{value}' in where clause")
        word = value.lower()
        if word in ("true", "false"):
            return _Operand("literal", "bool", word == "true")
        if word == "null":
            return _Operand("literal", "null", None)
        if word == "guid" and self.peek()[1] == "(":
            self.take()
            kind, text = self.take()
            if kind != "str":
                raise WhereError("Guid() takes a quoted value")
            self.expect(")")
            guid = text[1:-1].lower()
            if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                                guid):
                raise WhereError(f"'{text[1:-1]}' is not a valid Guid")
            return _Operand("literal", "guid", guid)
        if word == "datetime" and self.peek()[1] == "(":
            self.take()
            parts = []
            while True:
                kind, number = self.take()
                if kind != "num":
                    raise WhereError("DateTime() takes numbers: DateTime(2024, 01, 31)")
                parts.append(int(number))
                if self.peek()[1] == ",":
                    self.take()
                    continue
                self.expect(")")
                break
            if len(parts) not in (3, 6):
                raise WhereError("DateTime() takes 3 or 6 numbers")
            year, month, day, hour, minute, second = [*parts, 0, 0, 0][:6]
            try:  # Xero's DateTime() is naive UTC
                moment = datetime(year, month, day, hour, minute, second)  # noqa: DTZ001
            except ValueError as exc:
                raise WhereError(f"Invalid DateTime: {exc}") from exc
            return _Operand("literal", "datetime", moment)
        # a field path, maybe ending in a method call
        path = [value]
        method: tuple[str, str] | None = None
        transforms: list[str] = []
        while self.peek()[1] == ".":
            self.take()
            kind, name = self.take()
            if kind != "ident":
                raise WhereError(f"Unexpected '{name}' after '.'")
            if name.lower() in _METHODS and self.peek()[1] == "(":
                self.take()
                if name.lower() in ("tolower", "toupper"):
                    self.expect(")")
                    transforms.append(name.lower())
                    continue
                kind, arg = self.take()
                if kind != "str":
                    raise WhereError(f"{name}() takes a quoted value")
                self.expect(")")
                method = (name.lower(), arg[1:-1])
                break
            if transforms:
                raise WhereError(f"Unexpected '{name}' after a method call")
            path.append(name)
        dotted = ".".join(path)
        spec = self.fields.get(dotted.lower())
        if spec is None:
            raise WhereError(f"No property or field '{dotted}' exists in type "
                             f"'{_ENTITY.get(self.kind, self.kind)}'")
        ftype, getter = spec
        self.used.add(dotted.lower())
        if (transforms or method) and ftype not in ("str", "enum", "guid"):
            raise WhereError(f"Methods can only be called on text fields, not '{dotted}'")
        for name in transforms:
            getter = _case(getter, upper=name == "toupper")
        return _Operand("field", ftype, getter, dotted, method)

    def comparison(self) -> Predicate:
        left = self.operand()
        kind, op = self.peek()
        if not (kind == "op" and op in _COMPARE):
            return self._truthy(left)
        self.take()
        right = self.operand()
        if left.kind == "literal" and right.kind == "field":
            left, right, op = right, left, _MIRROR[op]
        if left.kind != "field" or right.kind != "literal":
            raise WhereError("A comparison needs a field on one side and a value on the other")
        if left.method:
            raise WhereError(f"Cannot compare the result of {left.method[0]}()")
        return self._compare(left, op, right)

    def _truthy(self, operand: _Operand) -> Predicate:
        getter = operand.value
        if operand.kind == "field" and operand.method:
            name, arg = operand.method
            tests: dict[str, Callable[[str], bool]] = {
                "contains": lambda v: arg in v, "startswith": lambda v: v.startswith(arg),
                "endswith": lambda v: v.endswith(arg)}
            test = tests[name]
            # Xero throws on a method call on a null field; the sandbox treats null as no match
            return lambda r: bool(getter(r)) and test(getter(r))
        if operand.kind == "field" and operand.type == "bool":
            return lambda r: bool(getter(r))
        raise WhereError(f"'{operand.path or operand.value}' is not a condition")

    def _compare(self, field_: _Operand, op: str, lit: _Operand) -> Predicate:
        getter, ftype, cmp = field_.value, field_.type, _COMPARE[op]
        if lit.type == "null":
            if op not in ("==", "=", "!="):
                raise WhereError("null can only be compared with == or !=")
            is_null = op != "!="
            return lambda r: (getter(r) in (None, "")) == is_null
        if ftype in ("date", "datetime"):
            if lit.type != "datetime":
                raise WhereError(f"'{field_.path}' must be compared with DateTime(y, m, d)")
            target = lit.value

            def by_time(r: Any) -> bool:
                value = _normal_time(getter(r))
                return value is not None and cmp(value, target)
            return by_time
        if ftype == "decimal":
            if lit.type != "num":
                raise WhereError(f"'{field_.path}' must be compared with a number")
            number = lit.value
            return lambda r: getter(r) is not None and cmp(getter(r), number)
        if ftype == "bool":
            if lit.type != "bool" or op not in ("==", "=", "!="):
                raise WhereError(f"'{field_.path}' must be compared with true or false")
            flag = lit.value
            return lambda r: cmp(bool(getter(r)), flag)
        if ftype == "guid":
            if lit.type not in ("guid", "str") or op not in ("==", "=", "!="):
                raise WhereError(f"'{field_.path}' must be compared with Guid(\"...\")")
            guid = str(lit.value).lower()
            return lambda r: cmp((getter(r) or "").lower(), guid)
        if lit.type != "str":
            raise WhereError(f"'{field_.path}' must be compared with a quoted value")
        if op not in ("==", "=", "!="):
            raise WhereError(f"Operator '{op}' cannot be applied to text field '{field_.path}'")
        text = lit.value
        return lambda r: cmp(getter(r), text)


def compile_where(text: str, kind: str, org: Organisation) -> Where:
    parser = _Parser(text, kind, field_table(kind, org))
    predicate = parser.parse()
    return Where(predicate, parser.or_count, parser.used)


def compile_order(text: str, kind: str, org: Organisation) -> list[tuple[Getter, bool]]:
    """``"InvoiceNumber ASC, Date DESC"`` -> [(getter, descending), ...]."""
    fields = field_table(kind, org)
    keys = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise WhereError(f"Invalid order clause '{part.strip()}'")
        spec = fields.get(words[0].lower())
        if spec is None:
            raise WhereError(f"No property or field '{words[0]}' exists in type "
                             f"'{_ENTITY.get(kind, kind)}'")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise WhereError(f"Invalid sort direction '{words[1]}'")
        ftype, getter = spec
        if ftype in ("date", "datetime"):
            getter = (lambda g: lambda r: _normal_time(g(r)))(getter)
        keys.append((getter, direction == "DESC"))
    return keys


def sort_records(records: list[Any], keys: list[tuple[Getter, bool]], id_of: Getter) -> None:
    """Sort in place by ``keys`` (None first when ascending), ties broken by id."""
    records.sort(key=id_of)
    for getter, descending in reversed(keys):
        records.sort(key=_sort_key(getter), reverse=descending)


def _sort_key(getter: Getter) -> Callable[[Any], tuple[bool, Any]]:
    return lambda record: _sortable(getter(record))


def _sortable(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else 0)
