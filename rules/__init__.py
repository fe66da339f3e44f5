"""arsync's escalation rules: a policy language and its pure evaluation.

Nothing here does I/O (apart from reading a policy file when asked), reads the clock or logs:
the caller passes ``now`` and maps its rows onto the frozen views.

Typical use by the scheduler, once per customer and run::

    policy = load_policy(text)                      # or default_policy()
    decision = evaluate_customer(customer, invoices, history, policy, company, now=now)
    for action in decision.actions:                 # messages first, then at most one task
        ledger.insert_once(connection_id, action.idempotency_key(), action)
    # later evaluations read back: ActionHistory(tuple(row.to_record() ...))

Contract in short:

* Messages and tasks are two tracks. Per customer and run there is at most one message (one
  action per channel of its stage: an email+SMS stage gives two actions that share
  everything but ``channel``) and at most one task. Each goes at the most severe stage any of
  the customer's invoices is due for, and lists every invoice due on that track.
* ``PlannedAction.covered`` says, per invoice line, which stage that invoice was due for and
  its anchor date. Store it and hand it back in :class:`ActionRecord` (``action.to_record``):
  it is how the rules know what was sent, never to repeat it or anything less severe.
* Lesser due stages are *superseded*: listed in ``reason["invoices"][i]["superseded"]`` and
  never sent later, because the covered stage raises that invoice's floor.
* At most ``max_messages_per_customer_per_day`` messages and one task per customer per local day,
  counted from history rows with ``local_date`` equal to the decision's ``local_date``.
"""

from __future__ import annotations

from rules.actions import Decision, HeldInvoice, PlannedAction
from rules.calendar import BusinessCalendar
from rules.evaluate import evaluate_customer
from rules.policy import (
    Conditions,
    Policy,
    PolicyError,
    SendWindow,
    Stage,
    default_policy,
    load_policy,
    load_policy_file,
)
from rules.preview import preview
from rules.reasons import explain
from rules.views import (
    ActionHistory,
    ActionRecord,
    CompanyContext,
    CoveredItem,
    CustomerView,
    InstalmentView,
    InvoiceView,
    PlanView,
    PromiseView,
    RuleInputError,
)

__all__ = [
    "ActionHistory",
    "ActionRecord",
    "BusinessCalendar",
    "CompanyContext",
    "Conditions",
    "CoveredItem",
    "CustomerView",
    "Decision",
    "HeldInvoice",
    "InstalmentView",
    "InvoiceView",
    "PlanView",
    "PlannedAction",
    "Policy",
    "PolicyError",
    "PromiseView",
    "RuleInputError",
    "SendWindow",
    "Stage",
    "default_policy",
    "evaluate_customer",
    "explain",
    "load_policy",
    "load_policy_file",
    "preview",
]
