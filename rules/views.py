"""Input types for the rules: read-only views of the mirror and of the action ledger.

The ledger/scheduler maps its database rows onto these frozen dataclasses; ``rules`` never sees a
session or a connector. Money is ``Decimal`` and every datetime is timezone-aware.

History statuses (``ActionRecord.status``) and what each one means to the rules:

============================  =======  =======  =========
status                        covers   attempt  daily cap
============================  =======  =======  =========
planned, awaiting_approval    yes      yes      yes
sent, unknown, done           yes      yes      yes
failed                        no       yes      yes
rejected                      yes      no       no
cancelled                     no       no       no
============================  =======  =======  =========

*covers*: the stage counts as done for the invoices it covered (and so does every lesser stage of
the same ladder: the rules never de-escalate). *attempt*: counts toward ``max_attempts``, in
distinct local days; a stage that used up its attempts counts as done too. *daily cap*: counts
toward ``max_messages_per_customer_per_day`` (or the one task per customer per day).
``unknown`` (the worker died mid-send) covers, because arsync promises at most one send;
``rejected`` is a person declining the action in pilot mode; ``cancelled`` is an action withdrawn
before sending (the invoice got paid, the data changed), which the rules may plan again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

InvoiceStatus = Literal["open", "paid", "voided", "deleted", "draft"]
AnchorKind = Literal["due_date", "promise_date", "instalment_date"]

INVOICE_STATUSES: frozenset[str] = frozenset({"open", "paid", "voided", "deleted", "draft"})
COVERING_STATUSES: frozenset[str] = frozenset(
    {"planned", "awaiting_approval", "sent", "unknown", "done", "rejected"}
)
ATTEMPT_STATUSES: frozenset[str] = frozenset(
    {"planned", "awaiting_approval", "sent", "unknown", "done", "failed"}
)
DAILY_STATUSES: frozenset[str] = ATTEMPT_STATUSES
HISTORY_STATUSES: frozenset[str] = COVERING_STATUSES | ATTEMPT_STATUSES | {"cancelled"}


class RuleInputError(ValueError):
    """The caller handed the rules something unusable (naive datetime, unknown zone, bad status)."""


def require_aware(value: dt.datetime, what: str) -> None:
    """Raise :class:`RuleInputError` unless ``value`` is timezone-aware."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise RuleInputError(f"{what} must be a timezone-aware datetime, got naive {value!r}")


@dataclass(frozen=True, slots=True)
class PromiseView:
    """A promise to pay: no chasing until ``date`` has passed; then chasing resumes, firmer."""

    date: dt.date
    amount: Decimal | None
    recorded_at: dt.datetime

    def __post_init__(self) -> None:
        require_aware(self.recorded_at, "PromiseView.recorded_at")


@dataclass(frozen=True, slots=True)
class InstalmentView:
    """One instalment of a payment plan."""

    date: dt.date
    amount: Decimal
    paid: bool


@dataclass(frozen=True, slots=True)
class PlanView:
    """An agreed payment plan: its instalments replace the invoice's due-date stages."""

    instalments: tuple[InstalmentView, ...]


@dataclass(frozen=True, slots=True)
class InvoiceView:
    """An invoice as the rules see it; ``balance`` already reflects payments and credit notes."""

    external_id: str
    number: str
    currency: str
    total: Decimal
    balance: Decimal
    issue_date: dt.date
    due_date: dt.date
    status: InvoiceStatus
    paused_until: dt.date | None = None
    disputed: bool = False
    promise: PromiseView | None = None
    plan: PlanView | None = None

    def __post_init__(self) -> None:
        if self.status not in INVOICE_STATUSES:
            raise RuleInputError(f"invoice {self.external_id}: unknown status {self.status!r}")


@dataclass(frozen=True, slots=True)
class CustomerView:
    """A customer and its per-customer overrides (exclude, pause, named policy)."""

    external_id: str
    name: str
    tags: frozenset[str] = frozenset()
    segment: str | None = None
    risk: str | None = None
    excluded: bool = False
    paused_until: dt.date | None = None
    # Informational: the caller resolves it to a Policy; evaluate_customer checks they match.
    policy_name: str | None = None


@dataclass(frozen=True, slots=True)
class CoveredItem:
    """One invoice line of an action: the stage it was due for and the date measured from."""

    invoice_external_id: str
    stage_id: str
    anchor: AnchorKind
    anchor_date: dt.date


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A past action from the ledger, as the rules need it.

    ``covered`` should be stored from ``PlannedAction.covered`` (``PlannedAction.to_record``
    builds the whole record). A record without it is read conservatively: every listed invoice
    counts as covered at ``stage_id`` for every anchor date (never re-sent, possibly under-sent).
    """

    stage_id: str
    channel: str
    invoice_external_ids: tuple[str, ...]
    local_date: dt.date
    status: str
    covered: tuple[CoveredItem, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in HISTORY_STATUSES:
            known = ", ".join(sorted(HISTORY_STATUSES))
            raise RuleInputError(f"unknown action status {self.status!r} (known: {known})")

    @property
    def track(self) -> Literal["message", "task"]:
        """``task`` for a person's work item, ``message`` for anything sent to the customer."""
        return "task" if self.channel == "task" else "message"


@dataclass(frozen=True, slots=True)
class ActionHistory:
    """The customer's past actions (any order; include at least the open invoices' actions)."""

    records: tuple[ActionRecord, ...] = ()

    def extended(self, records: tuple[ActionRecord, ...]) -> ActionHistory:
        """Return a new history with ``records`` appended (used by previews)."""
        return ActionHistory(self.records + records)


@dataclass(frozen=True, slots=True)
class CompanyContext:
    """Where the company is: IANA time zone, and ISO country (and subdivision) for holidays."""

    timezone: str | None
    country: str | None = None
    subdivision: str | None = None
    name: str | None = field(default=None, compare=False)
