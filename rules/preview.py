"""Preview: what would go out over the next days if nothing changed (pure simulation)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from rules.actions import PlannedAction
from rules.calendar import BusinessCalendar
from rules.evaluate import evaluate_customer
from rules.policy import Policy
from rules.views import (
    ActionHistory,
    CompanyContext,
    CustomerView,
    InvoiceView,
    RuleInputError,
    require_aware,
)


def preview(
    customer: CustomerView,
    invoices: Sequence[InvoiceView],
    history: ActionHistory,
    policy: Policy,
    company: CompanyContext,
    *,
    now: dt.datetime,
    horizon_days: int,
) -> tuple[PlannedAction, ...]:
    """Simulate the policy day by day and list every action it would plan.

    The simulation assumes nobody pays, promises or disputes anything from here on, and that
    every planned action is sent; promise, plan and pause dates already known unfold as usual.

    Args:
        customer, invoices, history, policy, company: as for :func:`evaluate_customer`.
        now: the instant the preview starts from (timezone-aware).
        horizon_days: how many company-local days to cover, today included: 1 is "today",
            2 "today and tomorrow", 7 "the coming week".

    Returns:
        The actions in the order they would be planned, each with its ``local_date`` inside
        the horizon.

    Raises:
        RuleInputError: as for :func:`evaluate_customer`, or a negative horizon.
    """
    require_aware(now, "now")
    if horizon_days < 0:
        raise RuleInputError("horizon_days must not be negative")
    calendar = BusinessCalendar.for_company(policy, company)
    start = calendar.local_date(now)
    end = start + dt.timedelta(days=horizon_days)
    planned: list[PlannedAction] = []
    simulated = history
    for offset in range(horizon_days):
        day = start + dt.timedelta(days=offset)
        # Midnight is before any window opens, so each day's evaluation sees the whole day.
        moment = now if offset == 0 else calendar.at(day, dt.time(0, 0))
        decision = evaluate_customer(customer, invoices, simulated, policy, company, now=moment)
        if decision.local_date >= end or not decision.actions:
            continue
        simulated = simulated.extended(tuple(a.to_record("planned") for a in decision.actions))
        planned.extend(decision.actions)
    return tuple(planned)
