"""The QuickBooks query language, as strict as the real one.

Grammar: ``SELECT * | COUNT(*) | f1, f2 FROM Entity [WHERE c AND c ...]
[ORDERBY|ORDER BY f [ASC|DESC], ...] [STARTPOSITION n] [MAXRESULTS m]``, conditions
``f = < > <= >= v``, ``f IN (v, ...)``, ``f LIKE '%x%'``. There is no OR (fault 4000),
STARTPOSITION is 1-based, MAXRESULTS defaults to 100 and may not exceed 1000 (fault 4001). Only
the fields the real service documents as filterable can be filtered on; anything else is a 4001,
so a connector cannot come to rely on a filter that production would refuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from arsync.sandbox.qbo_wire import query_parse_error, query_validation_error

MAX_RESULTS = 1000
DEFAULT_MAX_RESULTS = 100

# Field kinds; each decides how a stored value and a literal are compared.
ID, STR, NUM, DATE, DATETIME, BOOL, REF, EMAIL, TYPE = (
    "id", "str", "num", "date", "datetime", "bool", "ref", "email", "type")

_COMMON = {"Id": ID, "MetaData.CreateTime": DATETIME, "MetaData.LastUpdatedTime": DATETIME}

#: Filterable/sortable fields per entity (from the entity reference pages' "filterable" marks).
FIELDS: dict[str, dict[str, str]] = {
    "Invoice": {**_COMMON, "DocNumber": STR, "TxnDate": DATE, "DueDate": DATE, "CustomerRef": REF,
                "Balance": NUM, "TotalAmt": NUM, "SalesTermRef": REF, "ProjectRef": REF},
    "Customer": {**_COMMON, "DisplayName": STR, "CompanyName": STR, "GivenName": STR,
                 "FamilyName": STR, "FullyQualifiedName": STR, "PrimaryEmailAddr": EMAIL,
                 "Active": BOOL, "Balance": NUM},
    "Payment": {**_COMMON, "CustomerRef": REF, "TxnDate": DATE, "TotalAmt": NUM,
                "PaymentRefNum": STR},
    "CreditMemo": {**_COMMON, "CustomerRef": REF, "DocNumber": STR, "TxnDate": DATE,
                   "TotalAmt": NUM, "Balance": NUM, "RemainingCredit": NUM},
    "Attachable": {**_COMMON, "AttachableRef.EntityRef.Type": TYPE,
                   "AttachableRef.EntityRef.value": STR, "FileName": STR},
    "CompanyInfo": dict(_COMMON),
    "Preferences": dict(_COMMON),
}

#: Real entities the emulator does not model: they answer an empty result, not an error.
UNMODELLED = {"Account", "Bill", "BillPayment", "Class", "CompanyCurrency", "Department",
              "Deposit", "Employee", "Estimate", "ExchangeRate", "Item", "JournalEntry",
              "PaymentMethod", "Purchase", "PurchaseOrder", "RefundReceipt", "SalesReceipt",
              "TaxCode", "TaxRate", "Term", "TimeActivity", "Transfer", "Vendor", "VendorCredit"}

_ENTITY_NAMES = {name.lower(): name for name in [*FIELDS, *UNMODELLED]}


@dataclass
class Condition:
    """One ``field op value`` term of the WHERE clause."""

    field: str
    op: str  # = < > <= >= in like
    values: list[str | Decimal | bool]


@dataclass
class Query:
    """A parsed query."""

    entity: str
    count: bool = False
    fields: list[str] | None = None  # None: SELECT *
    where: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    start: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>'(?:\\.|''|[^'\\])*')
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),*])
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""", re.VERBOSE)


def _tokenize(text: str) -> list[tuple[str, Any, int]]:
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    text = text.rstrip().rstrip(";")
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise query_parse_error(f'Lexical error at line 1, column {pos + 1}.  Encountered: '
                                    f'"{text[pos:pos + 1].strip() or text[pos]}"')
        kind = m.lastgroup or ""
        raw = m.group(kind)
        col = m.start(kind) + 1
        if kind == "str":
            value: Any = raw[1:-1].replace("\\'", "'").replace("''", "'")
        elif kind == "num":
            value = Decimal(raw)
        else:
            value = raw
        tokens.append((kind, value, col))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        return bool(tok and tok[0] == "word" and tok[1].upper() in words)

    def take(self) -> tuple[str, Any, int]:
        tok = self.peek()
        if tok is None:
            raise query_parse_error("Encountered \"<EOF>\" at line 1.")
        self.i += 1
        if tok[0] == "word" and tok[1].upper() == "OR":
            # The grammar has no OR at all; the real parser fails on it the same way.
            raise query_parse_error(f'Encountered " <OR> "OR "" at line 1, column {tok[2]}.\n'
                                    'Was expecting one of:\n    <EOF> \n    "and" ...')
        return tok

    def expect_word(self, word: str) -> None:
        tok = self.take()
        if tok[0] != "word" or tok[1].upper() != word:
            raise query_parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.\n'
                                    f'Was expecting:\n    "{word.lower()}" ...')

    def expect_punct(self, char: str) -> None:
        tok = self.take()
        if tok[1] != char:
            raise query_parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.\n'
                                    f'Was expecting:\n    "{char}" ...')

    def ident(self) -> str:
        tok = self.take()
        if tok[0] != "word":
            raise query_parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.')
        return str(tok[1])

    def integer(self, clause: str) -> int:
        tok = self.take()
        value = tok[1]
        if tok[0] == "str":
            value = value.strip()
        try:
            number = int(str(value))
        except ValueError:
            raise query_parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}. '
                                    f"{clause} expects an integer") from None
        return number

    def literal(self) -> str | Decimal | bool:
        tok = self.take()
        if tok[0] == "str":
            return str(tok[1])
        if tok[0] == "num":
            return tok[1]  # type: ignore[no-any-return]
        if tok[0] == "word" and tok[1].lower() in ("true", "false"):
            return tok[1].lower() == "true"
        raise query_parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.\n'
                                "Was expecting one of:\n    <STRING> ...")


def parse(text: str) -> Query:
    """Parse a query string; raises a 4000/4001 ``QBOFault`` as the real service would."""
    if not text or not text.strip():
        raise query_parse_error('Encountered "<EOF>" at line 1, column 1.')
    p = _Parser(text)
    p.expect_word("SELECT")
    count = False
    fields: list[str] | None = None
    if p.peek() and p.peek()[1] == "*":  # type: ignore[index]
        p.take()
    elif p.keyword("COUNT"):
        p.take()
        p.expect_punct("(")
        p.expect_punct("*")
        p.expect_punct(")")
        count = True
    else:
        fields = [p.ident()]
        while p.peek() and p.peek()[1] == ",":  # type: ignore[index]
            p.take()
            fields.append(p.ident())
    p.expect_word("FROM")
    raw_entity = p.ident()
    entity = _ENTITY_NAMES.get(raw_entity.lower())
    if entity is None:
        raise query_validation_error(f"Invalid entity name: {raw_entity}")
    q = Query(entity=entity, count=count, fields=fields)
    if p.keyword("WHERE"):
        p.take()
        q.where.append(_condition(p))
        while p.keyword("AND"):
            p.take()
            q.where.append(_condition(p))
    if p.keyword("ORDERBY", "ORDER"):
        if p.take()[1].upper() == "ORDER":
            p.expect_word("BY")
        while True:
            name = p.ident()
            desc = False
            if p.keyword("ASC", "DESC"):
                desc = p.take()[1].upper() == "DESC"
            q.order.append((name, desc))
            if p.peek() and p.peek()[1] == ",":  # type: ignore[index]
                p.take()
                continue
            break
    seen: set[str] = set()
    while p.keyword("STARTPOSITION", "MAXRESULTS"):
        clause = p.take()[1].upper()
        if clause in seen:
            raise query_parse_error(f"Encountered duplicate {clause} at line 1.")
        seen.add(clause)
        number = p.integer(clause)
        if clause == "STARTPOSITION":
            if number < 0:
                raise query_validation_error(f"value {number} for STARTPOSITION is invalid")
            q.start = max(number, 1)  # 0 behaves as 1; positions are 1-based
        else:
            if number > MAX_RESULTS:
                raise query_validation_error(
                    f"value {number} for MAXRESULTS exceeds max allowed {MAX_RESULTS}")
            if number < 1:
                raise query_validation_error(f"value {number} for MAXRESULTS is invalid")
            q.max_results = number
    tok = p.peek()
    if tok is not None:
        p.take()  # raises the OR error if it is one
        raise query_parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.\n'
                                'Was expecting:\n    <EOF> ')
    _validate_fields(q)
    return q


def _condition(p: _Parser) -> Condition:
    name = p.ident()
    tok = p.take()
    if tok[0] == "op":
        if tok[1] in ("!=", "<>"):
            raise query_parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.')
        return Condition(name, tok[1], [p.literal()])
    if tok[0] == "word" and tok[1].upper() == "IN":
        p.expect_punct("(")
        values = [p.literal()]
        while p.peek() and p.peek()[1] == ",":  # type: ignore[index]
            p.take()
            values.append(p.literal())
        p.expect_punct(")")
        return Condition(name, "in", values)
    if tok[0] == "word" and tok[1].upper() == "LIKE":
        value = p.literal()
        if not isinstance(value, str):
            raise query_parse_error(f"LIKE expects a quoted string at line 1, column {tok[2]}.")
        return Condition(name, "like", [value])
    raise query_parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.\n'
                            'Was expecting one of:\n    "=" ...\n    "in" ...\n    "like" ...')


def _canonical(entity: str, name: str) -> str | None:
    for known in FIELDS.get(entity, {}):
        if known.lower() == name.lower():
            return known
    return None


def _validate_fields(q: Query) -> None:
    if q.entity in UNMODELLED:
        return
    for cond in q.where:
        canonical = _canonical(q.entity, cond.field)
        if canonical is None:
            raise query_validation_error(f"property '{cond.field}' is not queryable")
        cond.field = canonical
    order = []
    for name, desc in q.order:
        canonical = _canonical(q.entity, name)
        if canonical is None:
            raise query_validation_error(f"property '{name}' is not sortable")
        order.append((canonical, desc))
    q.order = order


# --- evaluation -----------------------------------------------------------------------------------

def _parse_datetime(text: str, tz: tzinfo) -> float:
    """A literal date or datetime as epoch seconds; naive values are company-local."""
    text = text.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise query_validation_error(f"invalid date/time value '{text}'") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


def _coerce(kind: str, value: str | Decimal | bool, tz: tzinfo) -> Any:
    if kind == ID:
        try:
            return int(str(value))
        except ValueError:
            raise query_validation_error(f"invalid Id value '{value}'") from None
    if kind == NUM:
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise query_validation_error(f"invalid number '{value}'") from None
    if kind == DATETIME:
        return _parse_datetime(str(value), tz)
    if kind == DATE:
        text = str(value).strip()[:10]
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise query_validation_error(f"invalid date value '{value}'") from None
    if kind == BOOL:
        if isinstance(value, bool):
            return value
        return str(value).lower() == "true"
    if kind == TYPE:
        return str(value).lower()
    return str(value)


def _path(obj: Any, parts: list[str]) -> list[Any]:
    """All values at a dotted path; lists fan out (``AttachableRef`` is a list)."""
    values = [obj]
    for part in parts:
        nxt: list[Any] = []
        for v in values:
            v_items = v if isinstance(v, list) else [v]
            for item in v_items:
                if not isinstance(item, dict):
                    continue
                # Query paths are case-insensitive ("EntityRef.Type" reads JSON "type").
                key = part if part in item else next(
                    (k for k in item if k.lower() == part.lower()), None)
                if key is not None:
                    child = item[key]
                    nxt.extend(child if isinstance(child, list) else [child])
        values = nxt
    return values


Getter = Callable[[dict[str, Any]], Any]


def _accessor(kind: str, name: str, updated: Callable[[dict[str, Any]], float],
              tz: tzinfo) -> tuple[Getter, bool]:
    """(getter, multi): the getter returns the field's value (None when absent), or for a path
    through a list (``AttachableRef.EntityRef.value``) the list of values."""
    if kind == ID:
        return (lambda o: int(o["Id"])), False
    if name == "MetaData.LastUpdatedTime":
        return updated, False
    if kind == DATETIME:
        key = name.split(".")[1]
        return (lambda o: _parse_datetime(o["MetaData"][key], tz)
                if key in o.get("MetaData", {}) else None), False
    if kind in (REF, EMAIL):
        sub = "value" if kind == REF else "Address"
        return (lambda o: o[name].get(sub) if isinstance(o.get(name), dict) else None), False
    if kind == TYPE:
        parts = name.split(".")
        return (lambda o: [str(v).lower() for v in _path(o, parts)]), True
    if "." in name:
        parts = name.split(".")
        return (lambda o: _path(o, parts)), True
    return (lambda o: o.get(name)), False  # money is stored as Decimal (or int 0): compares


def _like(pattern: str) -> re.Pattern[str]:
    regex = "".join(".*" if ch == "%" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda v, t: v == t, "<": lambda v, t: v < t, ">": lambda v, t: v > t,
    "<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t}


def _predicate(cond: Condition, entity: str, updated: Callable[[dict[str, Any]], float],
               tz: tzinfo) -> Callable[[dict[str, Any]], bool]:
    kind = FIELDS[entity][cond.field]
    get, multi = _accessor(kind, cond.field, updated, tz)
    if cond.op == "like":
        rx = _like(str(cond.values[0]))
        test: Callable[[Any], bool] = lambda v: isinstance(v, str) and bool(rx.match(v))  # noqa: E731
    elif cond.op == "in":
        wanted = {_coerce(kind, v, tz) for v in cond.values}
        test = wanted.__contains__
    else:
        target, compare = _coerce(kind, cond.values[0], tz), _COMPARE[cond.op]

        def test(v: Any) -> bool:
            try:
                return compare(v, target)
            except TypeError:  # a value of another type never matches
                return False
    if multi:
        return lambda o: any(test(v) for v in get(o))
    return lambda o: (v := get(o)) is not None and test(v)


def execute(q: Query, rows: list[dict[str, Any]], *,
            updated: Callable[[dict[str, Any]], float],
            tz: tzinfo) -> tuple[list[dict[str, Any]], int]:
    """Filter, order and page ``rows`` (in Id order, not modified); returns (page, matched)."""
    return page(q, match(q, rows, updated=updated, tz=tz))


def cache_key(q: Query) -> tuple[Any, ...]:
    """What determines :func:`match`'s result for unchanged data (paging varies, this not)."""
    return (q.entity, tuple((c.field, c.op, tuple(map(repr, c.values))) for c in q.where),
            tuple(q.order))


def match(q: Query, rows: list[dict[str, Any]], *, updated: Callable[[dict[str, Any]], float],
          tz: tzinfo) -> list[dict[str, Any]]:
    """The rows a query selects, in its order (``rows`` in Id order, not modified)."""
    if q.entity in UNMODELLED:
        return []
    where = list(q.where)
    if q.entity == "Customer" and not any(c.field == "Active" for c in where):
        # "SELECT * FROM Customer" means active customers only on the real service.
        where.append(Condition("Active", "=", [True]))
    preds = [_predicate(c, q.entity, updated, tz) for c in where]
    matched = rows
    for pred in preds:
        matched = [o for o in matched if pred(o)]
    for name, desc in reversed(q.order):  # stable sorts, last key first
        get, _multi = _accessor(FIELDS[q.entity][name], name, updated, tz)

        def key(o: dict[str, Any], get: Getter = get) -> tuple[int, Any]:
            value = get(o)
            if isinstance(value, list):
                value = value[0] if value else None
            # None sorts first; values of one field share a type, so the second item compares.
            return (0, 0) if value is None else (1, value)

        matched = sorted(matched, key=key, reverse=desc)
    return matched


def page(q: Query, matched: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The STARTPOSITION/MAXRESULTS window of the matched rows, and how many matched."""
    if q.count:
        return [], len(matched)
    rows = matched[q.start - 1: q.start - 1 + q.max_results]
    if q.fields is not None:
        rows = [_project(o, q.fields) for o in rows]
    return rows, len(matched)


def _project(obj: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """``SELECT a, b``: only the named fields (matched case-insensitively), as sparse objects.

    GUESS: the real service's exact extra members on projected rows are not documented.
    """
    out: dict[str, Any] = {}
    lower = {k.lower(): k for k in obj}
    for name in fields:
        key = lower.get(name.split(".")[0].lower())
        if key is not None:
            out[key] = obj[key]
    out["domain"] = obj.get("domain", "QBO")
    out["sparse"] = True
    return out
