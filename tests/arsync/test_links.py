"""Payer links: genuine tokens verify; altered, foreign-keyed or expired ones do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from arsync.links import InvalidLinkError, sign, verify

KEY = "k" * 32
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_round_trip() -> None:
    ref = verify(KEY, sign(KEY, 7, "C-1/ä", now=NOW), now=NOW + timedelta(days=59))
    assert (ref.connection_id, ref.customer_external_id) == (7, "C-1/ä")
    assert ref.expires_at == NOW + timedelta(days=60)


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),          # signature altered
    lambda t: ("e" if t[0] != "e" else "f") + t[1:],            # payload altered
    lambda t: t.replace(".", ""),                               # structure broken
    lambda t: t + ".x",
    lambda t: "",
    lambda t: "%%%.%%%",
])
def test_tampered_tokens_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidLinkError):
        verify(KEY, mutate(sign(KEY, 7, "C-1", now=NOW)), now=NOW)


def test_another_key_is_refused() -> None:
    with pytest.raises(InvalidLinkError):
        verify("z" * 32, sign(KEY, 7, "C-1", now=NOW), now=NOW)


def test_expired_is_refused() -> None:
    token = sign(KEY, 7, "C-1", now=NOW, ttl=timedelta(hours=1))
    verify(KEY, token, now=NOW + timedelta(minutes=59))
    with pytest.raises(InvalidLinkError):
        verify(KEY, token, now=NOW + timedelta(hours=1))
