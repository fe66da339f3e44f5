"""Signed, expiring links to the payer's self-service page (one per customer, in every message).

A token names the connection and the customer and carries its own expiry; it is signed with an
HMAC-SHA256 key derived from ``ARSYNC_SECRET_KEY`` (a different derivation from the token vault's,
so one key never serves two purposes). Tokens are compact and URL-safe:
``<base64url(payload)>.<base64url(signature)>``. Verification is constant-time, and a bad, tampered
or expired token raises :class:`InvalidLinkError` without saying which part was wrong.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from arsync.config import Settings
from arsync.errors import InputError

#: How long a link in a message stays valid: long enough for a slow payer, short enough to age out.
DEFAULT_TTL = timedelta(days=60)
PATH = "/pay"


class InvalidLinkError(InputError):
    """The link is malformed, was altered, or has expired (deliberately not told apart)."""


@dataclass(frozen=True)
class PayerRef:
    """Whom a valid link speaks for, and until when."""

    connection_id: int
    customer_external_id: str
    expires_at: datetime


def _key(secret_key: str) -> bytes:
    return hashlib.sha256(b"arsync-payer-link:" + secret_key.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret_key: str, connection_id: int, customer_external_id: str, *, now: datetime,
         ttl: timedelta = DEFAULT_TTL) -> str:
    """A token for this customer of this connection, valid until ``now + ttl``."""
    if now.tzinfo is None:
        raise ValueError("sign needs a timezone-aware `now`")
    payload = json.dumps({"c": connection_id, "u": customer_external_id,
                          "e": int((now + ttl).timestamp())},
                         separators=(",", ":"), sort_keys=True).encode()
    body = _b64(payload)
    mac = hmac.new(_key(secret_key), body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(secret_key: str, token: str, *, now: datetime) -> PayerRef:
    """The reference a genuine, unexpired token carries; else :class:`InvalidLinkError`."""
    invalid = InvalidLinkError("this link is not valid (it may have expired)")
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 512:
        raise invalid
    body, sig = token.split(".")
    try:
        given = _unb64(sig)
    except (ValueError, TypeError):
        raise invalid from None
    expected = hmac.new(_key(secret_key), body.encode("ascii", "replace"), hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise invalid
    try:
        data = json.loads(_unb64(body))
        ref = PayerRef(int(data["c"]), str(data["u"]),
                       datetime.fromtimestamp(int(data["e"]), tz=now.tzinfo))
    except (ValueError, KeyError, TypeError):
        raise invalid from None
    if now >= ref.expires_at:
        raise invalid
    return ref


def payer_url(settings: Settings, connection_id: int, customer_external_id: str, *,
              now: datetime, ttl: timedelta = DEFAULT_TTL) -> str:
    """The absolute link put in messages: ``{ARSYNC_PUBLIC_URL}/pay/{token}``."""
    token = sign(settings.require_secret_key(), connection_id, customer_external_id, now=now,
                 ttl=ttl)
    return f"{settings.public_url.rstrip('/')}{PATH}/{token}"
