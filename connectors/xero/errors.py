"""Every Xero, xero-python, urllib3 and requests failure, mapped to arsync's error tree here.

===============================================  ===========================================
What happened                                    Raised as
===============================================  ===========================================
401 (token expired/revoked, scope missing)       AuthError(status=401): the connector refreshes
                                                 once and retries before letting it escape
403 AuthenticationUnsuccessful (disconnected)    AuthError(status=403)
token endpoint ``invalid_grant``                 AuthError: the grant is dead, reconnect
token endpoint ``invalid_client``                ConfigError: our app's id/secret are wrong
429                                              RateLimitedError(retry_after, problem)
5xx, 408, timeouts, resets, TLS failures         TransientError
other 4xx (400 validation, 404)                  PermanentError
a body that is not the documented JSON           MalformedPayloadError
===============================================  ===========================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import requests
import urllib3
from xero_python.exceptions import ApiException

from arsync.errors import (
    ArsyncError,
    AuthError,
    ConfigError,
    MalformedPayloadError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from connectors.xero.settings import PROVIDER


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (Xero sends seconds; an HTTP date counts as unknown)."""
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _error_parts(exc: BaseException) -> tuple[int | None, Mapping[str, str], bytes]:
    """(status, headers, body) of whichever HTTP error type ``exc`` is."""
    if isinstance(exc, ApiException) and exc.http_resp is not None:
        # Read the response itself: the SDK's own ``status`` property re-parses a 400 body and
        # raises when that body is not JSON.
        resp = exc.http_resp
        return resp.status, resp.getheaders() or {}, resp.data or b""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code, exc.response.headers, exc.response.content
    return None, {}, b""


def _detail(body: bytes) -> tuple[str, str]:
    """(OAuth ``error`` code, human detail) from a Xero or identity error body."""
    try:
        doc = json.loads(body or b"null")
    except ValueError:
        return "", body[:200].decode("utf-8", "replace")
    if not isinstance(doc, dict):
        return "", ""
    for el in doc.get("Elements") or []:  # 400 ValidationException: the first real reason
        for v in el.get("ValidationErrors") or []:
            return "", str(v.get("Message"))
    return str(doc.get("error") or ""), str(doc.get("Detail") or doc.get("Message")
                                            or doc.get("error_description") or doc.get("Title")
                                            or "")


def map_error(exc: BaseException) -> ArsyncError:
    """The one place a Xero, SDK, urllib3 or requests failure becomes an arsync error."""
    if isinstance(exc, ArsyncError):
        return exc
    status, headers, body = _error_parts(exc)
    if status is None:
        if isinstance(exc, ValueError):
            return MalformedPayloadError(f"Xero payload could not be parsed: {exc}",
                                         provider=PROVIDER)
        if isinstance(exc, (urllib3.exceptions.HTTPError, requests.RequestException, OSError,
                            ApiException)):  # ApiSSLException has status 0 / no response
            return TransientError(f"Xero unreachable: {type(exc).__name__}", provider=PROVIDER)
        return PermanentError(f"unexpected Xero client failure: {exc!r}", provider=PROVIDER)
    oauth_code, detail = _detail(body)
    what = f"Xero answered {status}" + (f": {oauth_code or detail}" if oauth_code or detail else "")
    if oauth_code in ("invalid_client", "unauthorized_client"):
        # Our app's credentials are wrong: a configuration fault, not the customer's grant.
        return ConfigError(f"{what} — check ARSYNC_XERO_CLIENT_ID/SECRET")
    if oauth_code == "invalid_grant" or status in (401, 403):
        return AuthError(what, provider=PROVIDER, status=status)
    if status == 429:
        problem = headers.get("X-Rate-Limit-Problem")  # both header types ignore case
        return RateLimitedError(what, provider=PROVIDER,
                                retry_after=_seconds(headers.get("Retry-After")),
                                problem=problem.lower() if problem else None)
    if status >= 500 or status in (408, 0):
        return TransientError(what, provider=PROVIDER, status=status)
    return PermanentError(what, provider=PROVIDER, status=status)
