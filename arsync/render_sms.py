"""SMS text: normalised to the GSM 03.38 alphabet where sensible, and its segment count.

One character outside GSM-7 makes the whole message UCS-2, which cuts a segment from 160 to 70
characters: a non-breaking space from a money format would double or triple the bill.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
#: Characters of the extension table: each costs two septets (escape + code).
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")

# Typography that has a plain GSM equivalent; letters are left alone (a name stays a name).
_REPLACEMENTS = str.maketrans({
    **dict.fromkeys("\xa0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
                    "\u202f\u205f\u3000\t", " "),
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\xad", ""),
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032`\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033«»", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    "\u2026": "...",
    "\u2022": "-",
    "\u00b7": "-",
})
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class RenderedSms:
    """An SMS body and what it costs."""

    text: str
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int
    template: str = ""


def normalize_sms(text: str) -> str:
    """Map typography to GSM equivalents and collapse all whitespace to single spaces."""
    return _WHITESPACE.sub(" ", text.translate(_REPLACEMENTS)).strip()


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 basic or extension table."""
    return all(c in GSM_BASIC or c in GSM_EXTENDED for c in text)


def _split(costs: list[int], single: int, multi: int) -> int:
    if sum(costs) <= single:
        return 1 if costs else 0
    # A multipart segment loses room to the UDH; a character (an escape pair, a surrogate pair)
    # is never split across two segments, so pack greedily.
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments


def count_segments(text: str) -> tuple[str, int]:
    """The encoding a carrier will use for ``text`` and how many segments it will bill."""
    if is_gsm7(text):
        return "GSM-7", _split([2 if c in GSM_EXTENDED else 1 for c in text], 160, 153)
    return "UCS-2", _split([2 if ord(c) > 0xFFFF else 1 for c in text], 70, 67)


def finish_sms(raw: str, template: str = "") -> RenderedSms:
    """Normalise a rendered SMS template and price it."""
    text = normalize_sms(raw)
    encoding, segments = count_segments(text)
    return RenderedSms(text, encoding, segments, template)
