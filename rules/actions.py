"""Outputs of the rules: planned actions and the per-customer decision that carries them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rules.policy import Channel, TaskKind, Tone
from rules.views import ActionRecord, CoveredItem

ActionKind = Literal["message", "task"]

#: ``json.dumps(..., separators=(",", ":"))`` with the encoder built once (``dumps`` with
#: arguments builds a new encoder on every call); the same bytes, so the same keys.
_KEY_JSON = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One thing to do for one customer: a message on one channel, or a task for a person.

    A consolidated message on two channels (email and SMS) is two actions that share everything
    but ``channel``; the ledger should treat them as one contact (the rules already do).
    """

    customer_external_id: str
    invoice_external_ids: tuple[str, ...]
    stage_id: str
    channel: Channel
    kind: ActionKind
    tone: Tone
    template: str
    task_kind: TaskKind | None
    planned_for: dt.datetime
    local_date: dt.date
    # Per invoice line: the stage that invoice was due for (possibly less severe than stage_id)
    # and its anchor date. Persist it: it is what later evaluations read back from history.
    covered: tuple[CoveredItem, ...]
    # JSON-safe (str, int, bool, list, dict); see rules.reasons for the keys.
    reason: Mapping[str, Any] = field(hash=False, compare=False)

    def idempotency_key(self) -> str:
        """A stable key for (customer, stage, channel, sorted invoices, local date).

        Channel is part of the key so that the email and SMS legs of one message stay distinct;
        the ledger prefixes its connection id.
        """
        payload = _KEY_JSON.encode(
            [
                self.customer_external_id,
                self.stage_id,
                self.channel,
                sorted(self.invoice_external_ids),
                self.local_date.isoformat(),
            ]
        )
        return "rk1-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_record(self, status: str = "planned") -> ActionRecord:
        """The history record this action becomes once the ledger holds it with ``status``."""
        return ActionRecord(
            stage_id=self.stage_id,
            channel=self.channel,
            invoice_external_ids=self.invoice_external_ids,
            local_date=self.local_date,
            status=status,
            covered=self.covered,
        )


@dataclass(frozen=True, slots=True)
class HeldInvoice:
    """Why an invoice (or its message) is not in an action now.

    Codes: ``paid``, ``voided``, ``deleted``, ``draft``, ``disputed``, ``invoice_paused``,
    ``promise_pending``, ``plan_settled``, ``customer_excluded``, ``customer_paused``,
    ``nothing_due``, ``daily_message_limit``, ``daily_task_limit``.
    """

    invoice_external_id: str
    code: str
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of evaluating one customer at one instant."""

    customer_external_id: str
    now: dt.datetime
    # The send day this decision is for: today if the window is still open, else the next one.
    local_date: dt.date
    send_at: dt.datetime
    actions: tuple[PlannedAction, ...]
    held: tuple[HeldInvoice, ...]
    notes: tuple[str, ...] = ()

    @property
    def messages(self) -> tuple[PlannedAction, ...]:
        """Actions that reach the customer."""
        return tuple(a for a in self.actions if a.kind == "message")

    @property
    def tasks(self) -> tuple[PlannedAction, ...]:
        """Work items for a person."""
        return tuple(a for a in self.actions if a.kind == "task")
