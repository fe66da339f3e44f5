"""The escalation policy language: frozen pydantic models and the YAML loader.

A policy is an ordered list of stages. Severity is explicit (``severity:`` on every stage) or
positional (a later stage in the list is more severe); it orders catch-up and consolidation.
See ``rules/default_policy.yaml`` for an annotated example.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from rules import _yaml
from rules._policy_errors import FieldError, PolicyError, format_path, from_validation_error
from rules.views import AnchorKind

__all__ = [
    "Channel",
    "Conditions",
    "OffsetUnit",
    "Policy",
    "PolicyError",
    "SendWindow",
    "Stage",
    "TaskKind",
    "Tone",
    "default_policy",
    "load_policy",
    "load_policy_file",
]

Channel = Literal["email", "sms", "provider_email", "task"]
OffsetUnit = Literal["calendar_days", "business_days"]
Tone = Literal["friendly", "firm", "urgent", "final"]
TaskKind = Literal["call", "letter", "agency"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Slug = Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
TemplateName = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_][\w./-]{0,127}$")
]
# "*" is the threshold for any currency not listed explicitly.
CurrencyKey = Annotated[str, StringConstraints(strict=True, pattern=r"^([A-Z]{3}|\*)$")]
Amount = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]

WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MESSAGE_CHANNELS: frozenset[str] = frozenset({"email", "sms", "provider_email"})
MAX_OFFSET_DAYS = 3660


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SendWindow(_Frozen):
    """Local office hours during which messages may go out: ``[start, end)``."""

    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(17, 0)

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise FieldError(("start",), "times are local to the company: drop the offset")
        if self.end <= self.start:
            raise FieldError(("end",), "must be later than start (windows cannot span midnight)")
        return self


class Conditions(_Frozen):
    """When a stage applies; every listed condition must hold."""

    # Compared with the chased amount (open balance, or the instalment). A currency missing
    # here, with no "*" entry, fails the condition: an EUR invoice must not slip past a USD floor.
    min_amount: dict[CurrencyKey, Amount] = Field(default_factory=dict)
    customer_tags_any: frozenset[StrictStr] = frozenset()
    customer_tags_none: frozenset[StrictStr] = frozenset()
    segments: frozenset[StrictStr] = frozenset()
    risk_levels: frozenset[StrictStr] = frozenset()
    # Per invoice and anchor date (each instalment separately); only failed sends use up the
    # extra attempts, since a stage never fires twice once it covered an invoice.
    max_attempts: StrictInt = Field(default=1, ge=1, le=100)


class Stage(_Frozen):
    """One step of the escalation ladder."""

    id: Slug
    anchor: AnchorKind = "due_date"
    offset: StrictInt = Field(ge=-MAX_OFFSET_DAYS, le=MAX_OFFSET_DAYS)
    offset_unit: OffsetUnit = "calendar_days"
    tone: Tone
    channels: tuple[Channel, ...] = Field(min_length=1)
    template: TemplateName
    task_kind: TaskKind | None = None
    severity: StrictInt | None = None
    conditions: Conditions = Conditions()

    @model_validator(mode="after")
    def _consistent(self) -> Stage:
        if len(set(self.channels)) != len(self.channels):
            raise FieldError(("channels",), "lists a channel twice")
        if "task" in self.channels and self.task_kind is None:
            raise FieldError(("task_kind",), "is required when channels include task")
        if "task" not in self.channels and self.task_kind is not None:
            raise FieldError(("task_kind",), "only applies when channels include task")
        if self.anchor == "promise_date" and self.offset < 1:
            # A pending promise means no chasing at all; promise stages act after it breaks.
            raise FieldError(
                ("offset",), "promise_date stages fire after a broken promise: use 1 or more"
            )
        return self

    @property
    def message_channels(self) -> tuple[Channel, ...]:
        """Channels that reach the customer (everything but ``task``)."""
        return tuple(c for c in self.channels if c in MESSAGE_CHANNELS)

    @property
    def has_task(self) -> bool:
        """Whether the stage creates a work item for a person."""
        return "task" in self.channels


class Policy(_Frozen):
    """A validated escalation policy."""

    name: StrictStr = Field(min_length=1, max_length=200)
    timezone_default: StrictStr | None = None
    send_window: SendWindow = SendWindow()
    business_days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    skip_holidays: StrictBool = True
    max_messages_per_customer_per_day: StrictInt = Field(default=1, ge=1, le=24)
    stages: tuple[Stage, ...] = Field(min_length=1)

    _severity: dict[str, int] = PrivateAttr(default_factory=dict)
    _by_id: dict[str, Stage] = PrivateAttr(default_factory=dict)

    @field_validator("timezone_default")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Policy:
        if not self.business_days:
            raise FieldError(("business_days",), "needs at least one day")
        if len(set(self.business_days)) != len(self.business_days):
            raise FieldError(("business_days",), "lists a day twice")
        seen: dict[str, int] = {}
        for i, stage in enumerate(self.stages):
            if stage.id in seen:
                raise FieldError(
                    ("stages", i, "id"),
                    f"duplicate stage id {stage.id!r} (first at stages[{seen[stage.id]}])",
                )
            seen[stage.id] = i
        explicit = [s.severity is not None for s in self.stages]
        if any(explicit) and not all(explicit):
            i = explicit.index(False) if explicit[0] else explicit.index(True)
            raise FieldError(
                ("stages", i, "severity"),
                "give severity on every stage or on none (then list order is severity)",
            )
        if all(explicit):
            firsts: dict[int, int] = {}
            for i, stage in enumerate(self.stages):
                assert stage.severity is not None
                if stage.severity in firsts:
                    raise FieldError(
                        ("stages", i, "severity"),
                        f"must be unique (same as stages[{firsts[stage.severity]}])",
                    )
                firsts[stage.severity] = i
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Index stages by id and resolve severities once."""
        for i, stage in enumerate(self.stages):
            self._severity[stage.id] = stage.severity if stage.severity is not None else i
            self._by_id[stage.id] = stage

    def severity(self, stage_id: str) -> int | None:
        """Severity of a stage (higher is more severe), or None for an id not in this policy."""
        return self._severity.get(stage_id)

    def stage(self, stage_id: str) -> Stage | None:
        """The stage with this id, or None."""
        return self._by_id.get(stage_id)

    @property
    def weekday_numbers(self) -> frozenset[int]:
        """Business days as ``date.weekday()`` numbers (Monday is 0)."""
        return frozenset(WEEKDAYS.index(d) for d in self.business_days)


def load_policy(text: str, *, source: str = "policy.yaml") -> Policy:
    """Parse and validate a YAML policy.

    Args:
        text: the YAML document.
        source: the name used in error messages (usually the file name).

    Returns:
        The frozen, validated policy.

    Raises:
        PolicyError: with ``.line``, ``.field`` and ``.source`` of the first problem; the message
            lists every problem found, one per line.
    """
    try:
        data, lines = _yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(
            f"invalid YAML: {exc.problem or exc}", line=line, field=None, source=source
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", line=None, field=None, source=source) from None
    except _yaml.YamlShapeError as exc:
        field = format_path(exc.path) or None
        raise PolicyError(str(exc), line=exc.line, field=field, source=source) from None
    if not isinstance(data, dict):
        raise PolicyError(
            "a policy must be a mapping with name and stages", line=1, field=None, source=source
        )
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, lines, source) from None


def load_policy_file(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy file (UTF-8); errors name the file."""
    file = Path(path)
    return load_policy(file.read_text(encoding="utf-8"), source=str(file))


@functools.lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The policy shipped with arsync (``rules/default_policy.yaml``)."""
    text = (
        importlib.resources.files("rules")
        .joinpath("default_policy.yaml")
        .read_text(encoding="utf-8")
    )
    return load_policy(text, source="default_policy.yaml")
