"""Policy errors naming the file, the line and the field, in words a policy author understands."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

Path = tuple[str | int, ...]


class FieldError(ValueError):
    """Raised inside model validators to point at a field below the model being validated."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a policy."""

    line: int | None
    field: str | None
    message: str

    def render(self, source: str) -> str:
        """``source line N: field: message``, leaving out what is unknown."""
        where = source if self.line is None else f"{source} line {self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class PolicyError(ValueError):
    """A policy file is invalid.

    Attributes:
        line: 1-based line of the first problem (None when the file could not be read as YAML).
        field: dotted path of the first problem's field, e.g. ``stages[2].offset`` (or None).
        source: the file name given to the loader.
        problems: every problem found, first one first.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None,
        field: str | None,
        source: str,
        problems: Sequence[Problem] = (),
    ) -> None:
        self.line = line
        self.field = field
        self.source = source
        self.problems = tuple(problems) or (Problem(line, field, message),)
        super().__init__("\n".join(p.render(source) for p in self.problems))


def format_path(path: Path) -> str:
    """``("stages", 2, "offset")`` -> ``stages[2].offset``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def from_validation_error(
    exc: ValidationError, lines: Mapping[Path, int], source: str
) -> PolicyError:
    """Translate pydantic's errors into a :class:`PolicyError` with lines from the YAML map."""
    errors = exc.errors()
    locs = [tuple(p for p in err["loc"] if p != "[key]") for err in errors]
    located: list[tuple[bool, Problem]] = []
    for err, loc in zip(errors, locs, strict=True):
        if err["type"] == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs):
            continue  # a list whose items failed also looks "too short"; the item errors say why
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):
            loc = loc + cause.path
        line, exact = _line_for(loc, lines)
        located.append((exact, Problem(line, format_path(loc) or None, _message(err, loc))))
    # Problems at a node of their own first, in file order; missing fields (which can only be
    # placed at their parent's line) after them.
    located.sort(key=lambda item: (not item[0], item[1].line or 0))
    problems = [problem for _, problem in located]
    first = problems[0]
    return PolicyError(
        first.message, line=first.line, field=first.field, source=source, problems=problems
    )


def _line_for(loc: Path, lines: Mapping[Path, int]) -> tuple[int | None, bool]:
    # A missing field has no node of its own: fall back to the closest enclosing one.
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]], end == len(loc)
    return None, False


_KNOWN_FIELDS: dict[str, tuple[str, ...]] = {
    "policy": (
        "name",
        "timezone_default",
        "send_window",
        "business_days",
        "skip_holidays",
        "max_messages_per_customer_per_day",
        "stages",
    ),
    "stage": (
        "id",
        "anchor",
        "offset",
        "offset_unit",
        "tone",
        "channels",
        "template",
        "task_kind",
        "severity",
        "conditions",
    ),
    "conditions": (
        "min_amount",
        "customer_tags_any",
        "customer_tags_none",
        "segments",
        "risk_levels",
        "max_attempts",
    ),
    "send_window": ("start", "end"),
}


def _message(err: Mapping[str, Any], loc: Path) -> str:
    kind = str(err["type"])
    name = loc[-1] if loc else ""
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "missing":
        return "is required"
    if kind == "too_short":
        return "needs at least one entry"
    if kind == "extra_forbidden":
        return f"unknown key{_suggest(str(name), loc[:-1])}"
    if kind.startswith("int_") or kind == "int_type":
        return "must be an integer number of days" if name == "offset" else "must be an integer"
    if kind.startswith("decimal_"):
        return "must be a decimal amount such as 500 or 500.00"
    if kind == "string_pattern_mismatch":
        return _pattern_hint(loc)
    msg = str(err["msg"])
    for prefix in ("Input should be", "Value should be"):
        if msg.startswith(prefix):
            msg = "must be" + msg[len(prefix) :]
    return msg


def _pattern_hint(loc: Path) -> str:
    if "min_amount" in loc:
        return "currency must be a 3-letter ISO code like USD, or * for any other"
    if loc and loc[-1] == "template":
        return "must be a template name (letters, digits, _ . / -)"
    return "must be a lowercase slug (a-z, 0-9, _ and -)"


def _suggest(name: str, parent: Path) -> str:
    if not parent:
        known = _KNOWN_FIELDS["policy"]
    elif parent[-1] == "conditions":
        known = _KNOWN_FIELDS["conditions"]
    elif parent[-1] == "send_window":
        known = _KNOWN_FIELDS["send_window"]
    elif isinstance(parent[-1], int):
        known = _KNOWN_FIELDS["stage"]
    else:
        return ""
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
