"""The errors arsync raises, grouped by what the caller must do about them.

::

    ArsyncError
    ├── ConfigError              settings are missing or wrong: fix the configuration
    ├── InputError               bad input from a person (argument, file): exit 2, change nothing
    ├── ConnectorError           talking to QuickBooks or Xero went wrong
    │   ├── AuthError            the grant is dead (invalid_grant, revoked): reconnect, no retry
    │   ├── RateLimitedError     throttled (429): retry after ``retry_after`` seconds
    │   ├── TransientError       5xx, network, timeouts: retry with backoff
    │   ├── ConflictError        stale object (QuickBooks 5010): re-read, then retry
    │   └── PermanentError       4xx validation and the like: retrying cannot help
    │       └── MalformedPayloadError  the provider sent something we cannot parse
    └── WebhookSignatureError    a webhook whose signature does not verify

The *type* carries the retry semantics (``retryable``); callers never parse messages.
"""

from __future__ import annotations


class ArsyncError(Exception):
    """Root of every error arsync raises on purpose."""

    retryable: bool = False


class ConfigError(ArsyncError):
    """The configuration is missing something or holds a bad value."""


class InputError(ArsyncError):
    """Bad input from a person or a file; nothing was changed."""


class ConnectorError(ArsyncError):
    """A provider call failed."""

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class AuthError(ConnectorError):
    """The provider refused our grant; a person must reconnect (never retried)."""


class RateLimitedError(ConnectorError):
    """The provider throttled us; wait ``retry_after`` seconds (None: unknown) and retry."""

    retryable = True

    def __init__(self, message: str, *, provider: str = "", status: int | None = 429,
                 retry_after: float | None = None, problem: str | None = None) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after
        self.problem = problem


class TransientError(ConnectorError):
    """A failure that may pass: server error, timeout, connection reset."""

    retryable = True


class ConflictError(ConnectorError):
    """Someone changed the object between our read and our write (QuickBooks 5010)."""

    retryable = True


class PermanentError(ConnectorError):
    """The provider rejected the request itself; retrying the same request cannot help."""


class MalformedPayloadError(PermanentError):
    """The provider answered with something that does not have the documented shape."""


class WebhookSignatureError(ArsyncError):
    """A webhook's signature did not verify; the request is ignored."""
