"""QuickBooks Online wire formats for the sandbox: Fault bodies, JSON money, times, XML.

Everything the emulator puts on the wire goes through here, so that the shapes match the real
service in one place: ``Fault`` envelopes (and the odd lower-case 401 body), money as JSON numbers
(``362.07``, ``0`` for zero — never strings), company-local ISO times, and the XML a client gets
when it forgets ``Accept: application/json``.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from arsync.sandbox._http import Response

_NS = "http://schema.intuit.com/finance/v3"


class QBOFault(Exception):
    """A QuickBooks ``Fault``: raised anywhere in the emulator, rendered by the app."""

    def __init__(self, status: int, code: str, message: str, detail: str = "", *,
                 fault_type: str = "ValidationFault", element: str | None = "") -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.fault_type = fault_type
        self.element = element

    def fault(self) -> dict[str, Any]:
        """The ``Fault`` object (without the ``time`` envelope), as batch items carry it."""
        error: dict[str, Any] = {"Message": self.message, "Detail": self.detail, "code": self.code}
        if self.element is not None:
            error["element"] = self.element
        return {"Error": [error], "type": self.fault_type}


# --- the faults the emulator raises (messages as the real service words them) --------------------

def not_found(entity: str, id_: str, *, deleted: bool = False) -> QBOFault:
    """610 Object Not Found (real: HTTP 400, also used for deleted and inactive objects)."""
    why = ("Another user has deleted this transaction." if deleted else
           "Something you're trying to use has been made inactive. Check the fields with "
           "accounts, customers, items, vendors or employees.")
    return QBOFault(400, "610", "Object Not Found", f"Object Not Found : {why}", element="")


def stale_object() -> QBOFault:
    """5010: the SyncToken in the request is not the current one."""
    return QBOFault(400, "5010", "Stale Object Error",
                    "Stale Object Error : You and API API were working on this at the same time. "
                    "API API finished before you did, so your work was not saved.")


def required(param: str) -> QBOFault:
    """2020: a required field is missing."""
    return QBOFault(400, "2020", "Required param missing, need to supply the required value for "
                    "the API", f"Required parameter {param} is missing in the request",
                    element=param)


def invalid(detail: str, element: str = "") -> QBOFault:
    """2010: an invalid or unsupported property / value."""
    return QBOFault(400, "2010", "Request has invalid or unsupported property", detail,
                    element=element)


def string_length(element: str, max_len: int, supplied: int) -> QBOFault:
    """2050: a string field is longer than the schema allows (e.g. PrivateNote > 4000)."""
    return QBOFault(400, "2050", "String length is either shorter or longer than supported by "
                    "specification", f"String length specified does not match the supported "
                    f"length. Min:0 Max:{max_len} supplied length:{supplied}", element=element)


def invalid_reference(element: str, value: str) -> QBOFault:
    """2500: a reference (CustomerRef, LinkedTxn...) points at nothing usable."""
    return QBOFault(400, "2500", "Invalid Reference Id",
                    f"Invalid Reference Id : {element} {value!s} does not exist or is inactive",
                    element=element)


def business(detail: str) -> QBOFault:
    """6000: a business-rule violation."""
    return QBOFault(400, "6000", "A business validation error has occurred while processing "
                    "your request", f"Business Validation Error: {detail}")


def unsupported_operation(detail: str) -> QBOFault:
    """500 Unsupported Operation (python-quickbooks maps it to ``UnsupportedException``)."""
    return QBOFault(400, "500", "Unsupported Operation", f"Operation {detail} is not supported.")


def query_parse_error(detail: str) -> QBOFault:
    """4000: the query does not parse (also: OR, which the grammar does not have)."""
    return QBOFault(400, "4000", "Error parsing query", f"QueryParserError: {detail}")


def query_validation_error(detail: str) -> QBOFault:
    """4001: the query parses but asks for something not allowed (MAXRESULTS > 1000...)."""
    return QBOFault(400, "4001", "Invalid query", f"QueryValidationError: {detail}")


def throttled() -> QBOFault:
    """3001 ThrottleExceeded (HTTP 429, no Retry-After header)."""
    return QBOFault(429, "3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                    "The request limit was reached.", fault_type="SERVICE", element=None)


def forbidden() -> QBOFault:
    """3100: the token is valid but not for this company."""
    return QBOFault(403, "3100", "message=ApplicationAuthorizationFailed; errorCode=003100; "
                    "statusCode=403", "", fault_type="AuthorizationFault", element=None)


def system_fault() -> QBOFault:
    """10000: the generic server-side failure."""
    return QBOFault(500, "10000", "An application error has occurred while processing your "
                    "request", "System Failure Error: An unexpected error occurred while "
                    "accessing or saving your data. Please wait a few minutes and try again.",
                    fault_type="SystemFault", element=None)


# --- JSON -----------------------------------------------------------------------------------------

def _wire_default(value: object) -> object:
    # The real API writes money as JSON numbers (275.0, 12.75) and zero as 0. A two-decimal
    # amount survives float's shortest repr exactly, so converting only here keeps Decimal inside.
    if isinstance(value, Decimal):
        if not value:
            return 0
        number = float(value)
        # Whole quantities (ExchangeRate 1, Qty 2) print as integers; amounts keep a fraction.
        if number.is_integer() and value.as_tuple().exponent >= 0:  # type: ignore[operator]
            return int(value)
        return number
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    """Serialize a payload the way the real API does (compact, money as numbers)."""
    return json.dumps(payload, separators=(",", ":"), default=_wire_default).encode("utf-8")


def loads(body: bytes) -> Any:
    """Parse a request body; numbers with a fraction become Decimal (money stays exact)."""
    return json.loads(body.decode("utf-8"), parse_float=Decimal)


def strip_empty(obj: Any) -> Any:
    """A copy without empty-string members (python-quickbooks sends "" for every unset field)."""
    if isinstance(obj, dict):
        return {k: strip_empty(v) for k, v in obj.items() if v != ""}
    if isinstance(obj, list):
        return [strip_empty(v) for v in obj]
    return obj


def wire_copy(obj: Any) -> Any:
    """A detached, JSON-shaped copy of a stored object (Decimal kept): what ``get()`` hands out."""
    if isinstance(obj, dict):
        return {k: wire_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [wire_copy(v) for v in obj]
    return obj


# --- time -----------------------------------------------------------------------------------------

def qbo_time(dt: datetime) -> str:
    """``2026-11-01T10:15:00-08:00``: the company-local, second-precision form of MetaData."""
    return (dt.replace(microsecond=0) if dt.microsecond else dt).isoformat()


def qbo_response_time(dt: datetime) -> str:
    """The top-level ``time`` of a response: XML-canonical milliseconds (``.01``, ``.196``;
    trailing zeros trimmed and no fraction at all on a whole second), as JAXB prints them."""
    base = dt.replace(microsecond=0).isoformat()
    stamp, offset = base[:19], base[19:]
    millis = f"{dt.microsecond // 1000:03d}".rstrip("0")
    return f"{stamp}.{millis}{offset}" if millis else f"{stamp}{offset}"


# --- responses ------------------------------------------------------------------------------------

def json_response(payload: Any, status: int = 200) -> Response:
    """A JSON response with the real service's content type."""
    return Response(status, dumps(payload), {"Content-Type": "application/json;charset=UTF-8"})


def xml_response(payload: dict[str, Any], status: int = 200) -> Response:
    """The XML form of a payload: what the real API answers when JSON was not asked for."""
    time_attr = payload.get("time", "")
    parts = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
             f'<IntuitResponse xmlns="{_NS}" time={quoteattr(str(time_attr))}>']
    for key, value in payload.items():
        if key != "time":
            parts.append(_xml_element(key, value))
    parts.append("</IntuitResponse>")
    return Response(status, "".join(parts).encode("utf-8"),
                    {"Content-Type": "application/xml;charset=UTF-8"})


def _xml_element(name: str, value: Any) -> str:
    if isinstance(value, list):
        return "".join(_xml_element(name, v) for v in value)
    if isinstance(value, dict):
        if name == "Fault":
            errors = "".join(
                f'<Error code={quoteattr(str(e.get("code", e.get("Code", ""))))}>'
                f'<Message>{escape(str(e.get("Message", e.get("message", ""))))}</Message>'
                f'<Detail>{escape(str(e.get("Detail", e.get("detail", ""))))}</Detail></Error>'
                for e in value.get("Error", value.get("error", [])))
            return f'<Fault type={quoteattr(str(value.get("type", "")))}>{errors}</Fault>'
        inner = "".join(_xml_element(k, v) for k, v in value.items())
        return f"<{name}>{inner}</{name}>"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Decimal):
        text = str(_wire_default(value))
    else:
        text = "" if value is None else str(value)
    return f"<{name}>{escape(text)}</{name}>"


def fault_payload(fault: QBOFault, time: str) -> dict[str, Any]:
    """The full response body for a fault."""
    return {"Fault": fault.fault(), "time": time}


def auth_failed_payload(detail: str, time: str) -> dict[str, Any]:
    """The 401 body: lower-case keys and type ``AUTHENTICATION``, as observed on the real API."""
    return {"fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; "
                                            "statusCode=401",
                                 "detail": detail, "code": "3200"}],
                      "type": "AUTHENTICATION"},
            "time": time}


def gateway_html(status: int) -> Response:
    """What a 502/503/504 looks like: the front proxy's HTML page, not a Fault."""
    reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable",
              504: "Gateway Time-out"}.get(status, "Error")
    html = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n")
    return Response(status, html.encode("utf-8"), {"Content-Type": "text/html"})
