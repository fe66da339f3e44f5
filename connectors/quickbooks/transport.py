"""The HTTP session python-quickbooks sends through: tokens, call counting, error typing.

python-quickbooks calls ``session.request(...)`` after setting ``Authorization`` from
``session.access_token``. This session supplies the token from arsync's token store, retries a
401 once with a refreshed token, counts every request, and turns throttling, outages and dead
grants into arsync's typed errors *before* python-quickbooks would lump them together (it files
a 429 under ValidationException and a 5xx HTML page under "Error reading json").
"""

from __future__ import annotations

from typing import Any

import requests

from arsync.errors import AuthError, RateLimitedError, TransientError
from connectors.base import TokenSource

PROVIDER = "quickbooks"
#: Intuit times requests out after 120 s; waiting longer only hides an outage.
TIMEOUT = (10, 120)


class QuickBooksSession(requests.Session):
    """A ``requests.Session`` that python-quickbooks can use as its ``session``."""

    def __init__(self, tokens: TokenSource) -> None:
        super().__init__()
        self._tokens = tokens
        self.api_calls = 0

    @property
    def access_token(self) -> str:
        return self._tokens.access_token()

    def request(self, method: str | bytes, url: str | bytes, *args: Any,  # type: ignore[override]
                **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        kwargs.setdefault("timeout", TIMEOUT)
        token = self._tokens.access_token()
        for attempt in range(2):
            headers["Authorization"] = f"Bearer {token}"
            try:
                response = super().request(method, url, *args, headers=headers, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise TransientError(f"QuickBooks unreachable: {exc}", provider=PROVIDER) from exc
            self.api_calls += 1
            if response.status_code == 401 and attempt == 0:
                # Expired early or revoked: one refresh tells which.
                token = self._tokens.refreshed_after(token)
                continue
            break
        status = response.status_code
        if status == 401:
            raise AuthError("QuickBooks rejected a freshly refreshed access token (401)",
                            provider=PROVIDER, status=401)
        if status == 429:
            raise RateLimitedError("QuickBooks throttled the request (3001)", provider=PROVIDER,
                                   retry_after=_seconds(response.headers.get("Retry-After")),
                                   problem="throttle")
        if status >= 500:
            raise TransientError(f"QuickBooks answered {status}", provider=PROVIDER, status=status)
        return response


def _seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds; QuickBooks usually omits it, and an HTTP-date is ignored."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
