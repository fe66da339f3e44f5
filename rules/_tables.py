"""Plain lookup tables derived from a Policy, built once per Policy object.

Evaluation asks the same questions of the policy for every invoice and stage (severity, which
stages belong to a track, which conditions can fail); answering them from plain tuples and dicts
keeps pydantic attribute machinery out of the per-invoice loop.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from rules.policy import WEEKDAYS, Conditions, Policy, Stage

_CACHE_LIMIT = 256


class StageRow(NamedTuple):
    """One stage on one track, with everything the ladder loop needs precomputed."""

    stage: Stage
    id: str
    severity: int
    anchor: str
    offset: int
    unit: str
    # The calendar shift as a timedelta, or None when it counts business days.
    delta: dt.timedelta | None
    # "due soon" stages are skipped on or before the issue date.
    check_issue: bool
    # None when no condition can fail (only max_attempts applies).
    conditions: Conditions | None
    max_attempts: int


class Tables(NamedTuple):
    """A policy's tables."""

    message: tuple[StageRow, ...]
    task: tuple[StageRow, ...]
    severity: dict[str, int]
    stages: dict[str, Stage]
    weekdays: frozenset[int]


_CACHE: dict[int, tuple[Policy, Tables]] = {}


def tables(policy: Policy) -> Tables:
    """The tables of ``policy`` (cached per object; policies are frozen)."""
    hit = _CACHE.get(id(policy))
    if hit is not None and hit[0] is policy:
        return hit[1]
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    built = _build(policy)
    # Holding the policy keeps its id from being reused while the entry lives.
    _CACHE[id(policy)] = (policy, built)
    return built


def _trivial(c: Conditions) -> bool:
    return not (
        c.min_amount or c.customer_tags_any or c.customer_tags_none or c.segments or c.risk_levels
    )


def _build(policy: Policy) -> Tables:
    severity: dict[str, int] = {}
    message: list[StageRow] = []
    task: list[StageRow] = []
    for i, stage in enumerate(policy.stages):
        sev = stage.severity if stage.severity is not None else i
        severity[stage.id] = sev
        cond = stage.conditions
        row = StageRow(
            stage,
            stage.id,
            sev,
            stage.anchor,
            stage.offset,
            stage.offset_unit,
            dt.timedelta(days=stage.offset) if stage.offset_unit == "calendar_days" else None,
            stage.anchor == "due_date" and stage.offset <= 0,
            None if _trivial(cond) else cond,
            cond.max_attempts,
        )
        if stage.message_channels:
            message.append(row)
        if stage.has_task:
            task.append(row)
    return Tables(
        tuple(message),
        tuple(task),
        severity,
        {s.id: s for s in policy.stages},
        frozenset(WEEKDAYS.index(d) for d in policy.business_days),
    )
