"""Signed links placed in messages: the unsubscribe link (``List-Unsubscribe`` and the footer).

The token is the customer reference plus an HMAC of it under a key derived from
``ARSYNC_SECRET_KEY``; it never expires, because an unsubscribe link must keep working.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote

# A purpose label in the key derivation: this HMAC can never be replayed as another kind of link.
_PURPOSE = b"arsync/unsubscribe/v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, customer_ref: str) -> bytes:
    key = hmac.new(secret.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()
    return hmac.new(key, customer_ref.encode("utf-8"), hashlib.sha256).digest()[:18]


def unsubscribe_token(secret: str, customer_ref: str) -> str:
    """A URL-safe token naming ``customer_ref`` (e.g. ``"7:C42"``: connection and customer)."""
    return f"{_b64(customer_ref.encode('utf-8'))}.{_b64(_mac(secret, customer_ref))}"


def read_unsubscribe_token(secret: str, token: str) -> str | None:
    """The customer reference inside ``token``, or None when it was not signed by us."""
    ref_part, _, mac_part = token.partition(".")
    try:
        ref = _unb64(ref_part).decode("utf-8")
        mac = _unb64(mac_part)
    except (binascii.Error, ValueError):
        return None
    return ref if hmac.compare_digest(mac, _mac(secret, ref)) else None


def unsubscribe_urls(*, public_url: str, secret: str, customer_ref: str,
                     mailto: str | None = None) -> tuple[str, ...]:
    """The https (one-click, RFC 8058) link and optionally a mailto, for ``List-Unsubscribe``."""
    token = unsubscribe_token(secret, customer_ref)
    urls = [f"{public_url.rstrip('/')}/unsubscribe/{token}"]
    if mailto:
        urls.append(f"mailto:{mailto}?subject={quote('unsubscribe ' + token)}")
    return tuple(urls)
