"""arsync's managed block inside a QuickBooks invoice's ``PrivateNote``: pure text functions.

The block sits after whatever a person wrote and looks like this (newest note first)::

    Call Bob before the 15th re: discount      <- a person's text, never touched
    --- arsync ---
    2026-11-20 Escalated to final notice. [ar:3f9c01aa]
    2026-11-13 Reminder sent to bob@example.com. [ar:77d2e410]
    --- end arsync ---

Only the lines from ``--- arsync ---`` to ``--- end arsync ---`` are ever rewritten; the text
before and after them is kept byte for byte, including a "Voided - " that QuickBooks prepends
when the invoice is voided (the marker is then found mid-line). Each line ends in a tag derived
from the note's id, which is how a retry sees that a note is already there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

START = "--- arsync ---"
END = "--- end arsync ---"
#: QuickBooks' documented PrivateNote limit (fault 2050 beyond it).
MAX_UNITS = 4000
#: A note is a short line; anything longer is cut so one note cannot crowd out the others.
MAX_LINE_UNITS = 400
_TAG = re.compile(r"\[ar:([0-9a-f]{8})\]\s*$")
_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} .*\[ar:[0-9a-f]{8}\]\s*$")


def units(text: str) -> int:
    """Length as QuickBooks (Java) counts it: UTF-16 code units, so an emoji costs two."""
    return len(text.encode("utf-16-le")) // 2


def tag_for(note_id: str) -> str:
    """The short tag a note's line carries (8 hex digits of its id's SHA-256)."""
    return hashlib.sha256(note_id.encode("utf-8")).hexdigest()[:8]


def note_line(day: str, text: str, note_id: str) -> str:
    """One block line: ``YYYY-MM-DD text [ar:tag]``, on one line and at most MAX_LINE_UNITS."""
    flat = " ".join(text.replace(START, "").replace(END, "").split())
    suffix = f" [ar:{tag_for(note_id)}]"
    room = MAX_LINE_UNITS - units(day) - 1 - units(suffix)
    if units(flat) > room:
        flat = flat[:room]  # a code point is at least one unit: cut cheaply, then exactly
        while units(flat) > room - 1:
            flat = flat[:-1]
        flat = flat.rstrip() + "…"
    return f"{day} {flat}{suffix}"


@dataclass
class Parsed:
    """A PrivateNote split into the person's text around arsync's block and the block's lines."""

    before: str  # everything up to the start marker, verbatim
    lines: list[str] = field(default_factory=list)
    after: str = ""  # everything after the end marker (or after our last line), verbatim
    has_block: bool = False

    @property
    def tags(self) -> set[str]:
        return {m.group(1) for line in self.lines if (m := _TAG.search(line))}

    def person_parts(self) -> tuple[str, str]:
        """What a person wrote before and after the block, without arsync's separators."""
        if not self.has_block:
            return self.before, ""
        head = self.before.removesuffix("\n").removesuffix("\r")
        return head, self.after.removeprefix("\n").removeprefix("\r\n")

    def person_text(self) -> str:
        """The person's text as one string (the parts joined by a newline)."""
        head, tail = self.person_parts()
        return f"{head}\n{tail}" if head and tail else head + tail


def parse(private_note: str | None) -> Parsed:
    """Find arsync's block; a missing end marker (a person deleted it) ends at our last line."""
    text = private_note or ""
    at = text.find(START)
    if at < 0:
        return Parsed(before=text)
    before, rest = text[:at], text[at + len(START):]
    end_at = rest.find(END)
    if end_at >= 0:
        body, after = rest[:end_at], rest[end_at + len(END):]
        lines = [ln.rstrip("\r") for ln in body.split("\n")]
        return Parsed(before, [ln for ln in lines if ln.strip()], after, True)
    lines, consumed = [], 0
    for raw in rest.split("\n")[1:]:  # [0] is what follows the marker on its own line
        if not _LINE.match(raw.rstrip("\r")):
            break
        lines.append(raw.rstrip("\r"))
        consumed += 1
    parts = rest.split("\n")
    after = "\n".join(parts[1 + consumed:])
    return Parsed(before, lines, "\n" + after if after else "", True)


@dataclass(frozen=True)
class Composed:
    """A new PrivateNote, or None if nothing needs writing."""

    text: str | None
    present: frozenset[str]  # note ids already in the block
    no_room: frozenset[str]  # note ids whose line cannot fit beside the person's text


def compose(private_note: str | None, notes: Sequence[tuple[str, str, str]]) -> Composed:
    """Put ``(note_id, day, text)`` notes at the top of the block, rolling old lines off.

    The person's text always stays; the oldest arsync lines go first when space runs out (the
    full history lives in arsync's own ledger, the block is a convenience for the bookkeeper).
    """
    parsed = parse(private_note)
    tags = parsed.tags
    present = frozenset(nid for nid, _, _ in notes if tag_for(nid) in tags)
    fresh = [(nid, note_line(day, text, nid)) for nid, day, text in notes if nid not in present]
    if not fresh:
        return Composed(None, present, frozenset())
    head = parsed.before
    if head and not (parsed.has_block and head.endswith("\n")):
        # One newline between the person's text and the marker (person_text() drops it again);
        # also puts the marker back on its own line after QuickBooks prepends "Voided - ".
        head += "\n"
    tail = parsed.after
    if tail and not tail.startswith(("\n", "\r\n")):
        tail = "\n" + tail
    budget = MAX_UNITS - units(head) - units(tail) - units(START) - units(END) - 1
    kept: list[str] = []
    no_room: set[str] = set()
    for nid, line in fresh:
        if units(line) + 1 <= budget:
            kept.append(line)
            budget -= units(line) + 1
        else:
            no_room.add(nid)
    for line in parsed.lines:
        if units(line) + 1 > budget:
            break  # older lines than this one go too: the block stays a contiguous recent log
        kept.append(line)
        budget -= units(line) + 1
    if len(no_room) == len(fresh):
        return Composed(None, present, frozenset(no_room))
    body = "".join(f"{line}\n" for line in kept)
    return Composed(f"{head}{START}\n{body}{END}{tail}", present, frozenset(no_room))


def is_own_echo(before: str | None, after: str | None) -> bool:
    """True when two PrivateNotes differ only inside arsync's block (the echo of our write)."""
    return parse(before).person_parts() == parse(after).person_parts()
