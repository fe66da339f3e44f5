"""The policy language: defaults, exact decimals, and errors that name the line and the field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from rules import PolicyError, default_policy, load_policy, load_policy_file

GOOD = """\
name: custom
timezone_default: Europe/London
send_window: {start: 08:30, end: 17:00}
business_days: [mon, tue, wed, thu, fri, sat]
skip_holidays: false
max_messages_per_customer_per_day: 2
stages:
  - id: nudge
    offset: -2
    offset_unit: business_days
    tone: friendly
    channels: [email, sms]
    template: nudge
    conditions:
      min_amount: {USD: 10.10, GBP: 0.1, "*": 25}
      customer_tags_none: [no, vip]
      max_attempts: 3
  - id: call
    offset: 20
    tone: firm
    channels: [task]
    task_kind: call
    template: call
"""


def test_default_policy_follows_the_brief() -> None:
    policy = default_policy()
    by_id = {s.id: s for s in policy.stages}
    assert (by_id["due_soon"].offset, by_id["due_soon"].tone) == (-3, "friendly")
    late = [by_id[f"overdue_{n}"] for n in (1, 7, 14)]
    assert [s.offset for s in late] == [1, 7, 14]
    assert [s.tone for s in late] == ["friendly", "firm", "urgent"]  # rising firmness
    assert by_id["call_30"].channels == ("task",)
    assert by_id["call_30"].task_kind == "call"
    assert by_id["plan_offer_60"].template == "payment_plan_offer"
    assert (by_id["final_90"].offset, by_id["final_90"].tone) == (90, "final")
    assert by_id["promise_broken"].anchor == "promise_date"
    assert {s.anchor for s in policy.stages} == {"due_date", "promise_date", "instalment_date"}
    severities = [policy.severity(s.id) or 0 for s in policy.stages]
    assert severities == sorted(severities)  # positional: later means more severe
    assert policy.send_window.start == dt.time(9)
    assert policy.send_window.end == dt.time(17)
    assert policy.weekday_numbers == frozenset(range(5))
    assert policy.skip_holidays
    assert policy.max_messages_per_customer_per_day == 1
    assert default_policy() is policy  # parsed once


def test_good_policy_keeps_decimals_exact_and_yaml_surprises_out() -> None:
    policy = load_policy(GOOD)
    nudge = policy.stages[0]
    assert nudge.conditions.min_amount == {
        "USD": Decimal("10.10"),
        "GBP": Decimal("0.1"),
        "*": Decimal("25"),
    }
    assert str(nudge.conditions.min_amount["USD"]) == "10.10"  # never went through float
    # YAML 1.1 would read 17:00 as 1020 and `no` as False.
    assert policy.send_window.end == dt.time(17)
    assert policy.send_window.start == dt.time(8, 30)
    assert nudge.conditions.customer_tags_none == frozenset({"no", "vip"})
    assert nudge.offset_unit == "business_days"
    assert nudge.message_channels == ("email", "sms")
    assert policy.stages[1].has_task
    assert policy.stages[1].message_channels == ()
    assert policy.timezone_default == "Europe/London"
    assert policy.weekday_numbers == frozenset(range(6))


def test_policy_models_are_frozen() -> None:
    policy = load_policy(GOOD)
    with pytest.raises(ValueError, match="frozen"):
        policy.stages[0].offset = 5  # type: ignore[misc]


def test_explicit_severity_orders_stages() -> None:
    policy = load_policy(
        "name: s\nstages:\n"
        "  - {id: b, offset: 7, tone: firm, channels: [email], template: t, severity: 20}\n"
        "  - {id: a, offset: 1, tone: friendly, channels: [email], template: t, severity: 10}\n"
    )
    assert policy.severity("a") == 10
    assert policy.severity("b") == 20
    assert policy.severity("nope") is None


STAGE = "  - id: a\n    offset: 1\n    tone: firm\n    channels: [email]\n    template: t\n"


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        pytest.param(
            "name: x\nstages:\n" + STAGE.replace("offset: 1", "offset: soon"),
            4,
            "stages[0].offset",
            "must be an integer number of days",
            id="bad-offset-text",
        ),
        pytest.param(
            "name: x\nstages:\n"
            + STAGE
            + STAGE.replace("id: a", "id: b").replace("offset: 1", "offset: 1.5"),
            9,
            "stages[1].offset",
            "must be an integer number of days",
            id="bad-offset-float",
        ),
        pytest.param(
            "name: x\nstages:\n" + STAGE.replace("offset: 1", 'offset: "7"'),
            4,
            "stages[0].offset",
            "must be an integer number of days",
            id="quoted-offset",
        ),
        pytest.param(
            "name: x\nstages:\n" + STAGE + "    colour: red\n",
            8,
            "stages[0].colour",
            "unknown key",
            id="unknown-stage-key",
        ),
        pytest.param(
            "name: x\nstage:\n" + STAGE,
            2,
            "stage",
            "unknown key (did you mean 'stages'?)",
            id="unknown-top-key",
        ),
        pytest.param(
            "name: x\nstages:\n" + STAGE + "    conditions:\n      max_atempts: 2\n",
            9,
            "stages[0].conditions.max_atempts",
            "did you mean 'max_attempts'",
            id="typo-condition",
        ),
        pytest.param(
            "name: x\nstages:\n" + STAGE + STAGE,
            8,
            "stages[1].id",
            "duplicate stage id 'a' (first at stages[0])",
            id="duplicate-stage-id",
        ),
        pytest.param(
            "name: x\nstages:\n  - id: a\n    offset: [1\n",
            5,
            None,
            "invalid YAML",
            id="bad-yaml-syntax",
        ),
        pytest.param(
            "name: x\nname: y\nstages: []\n", 2, "name", "duplicate key 'name'", id="duplicate-key"
        ),
        pytest.param(
            "name: x\nstages:\n" + STAGE.replace("[email]", "[task]"),
            3,
            "stages[0].task_kind",
            "is required when channels include task",
            id="task-needs-kind",
        ),
        pytest.param(
            "name: x\nstages:\n"
            + STAGE.replace("offset: 1", "offset: 0")
            + "    anchor: promise_date\n",
            4,
            "stages[0].offset",
            "after a broken promise",
            id="promise-offset",
        ),
        pytest.param(
            "name: x\nstages:\n" + STAGE.replace("[email]", "[email, fax]"),
            6,
            "stages[0].channels[1]",
            "must be 'email', 'sms', 'provider_email' or 'task'",
            id="unknown-channel",
        ),
        pytest.param(
            "name: x\nstages:\n" + STAGE + "    conditions: {min_amount: {usd: 5}}\n",
            8,
            "stages[0].conditions.min_amount.usd",
            "3-letter ISO code",
            id="bad-currency",
        ),
        pytest.param(
            "name: x\nstages:\n"
            + STAGE
            + "    conditions:\n      min_amount:\n        EUR: lots\n",
            10,
            "stages[0].conditions.min_amount.EUR",
            "decimal amount",
            id="bad-amount",
        ),
        pytest.param(
            "name: x\nstages:\n" + STAGE + "    conditions: {min_amount: {EUR: -1}}\n",
            8,
            "stages[0].conditions.min_amount.EUR",
            "greater than or equal to 0",
            id="negative-amount",
        ),
        pytest.param(
            "name: x\nsend_window:\n  start: 17:00\n  end: 09:00\nstages:\n" + STAGE,
            4,
            "send_window.end",
            "must be later than start",
            id="window-order",
        ),
        pytest.param(
            "name: x\ntimezone_default: Mars/Olympus\nstages:\n" + STAGE,
            2,
            "timezone_default",
            "unknown IANA time zone",
            id="bad-zone",
        ),
        pytest.param(
            "name: x\nstages:\n" + STAGE + "    severity: 3\n" + STAGE.replace("id: a", "id: b"),
            9,
            "stages[1].severity",
            "every stage or on none",
            id="mixed-severity",
        ),
        pytest.param("name: x\nstages: []\n", 2, "stages", "at least one", id="no-stages"),
        pytest.param("stages:\n" + STAGE, 1, "name", "is required", id="missing-name"),
        pytest.param("- just\n- a list\n", 1, None, "must be a mapping", id="not-a-mapping"),
        pytest.param("", 1, None, "must be a mapping", id="empty"),
        pytest.param(
            "name: x\nbusiness_days: [mon, funday]\nstages:\n" + STAGE,
            2,
            "business_days[1]",
            "must be 'mon'",
            id="bad-weekday",
        ),
    ],
)
def test_policy_errors_name_line_and_field(
    text: str, line: int, field: str | None, message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    err = caught.value
    assert (err.line, err.field, err.source) == (line, field, "policy.yaml")
    assert message in str(err)
    where = f"policy.yaml line {line}: " + (f"{field}: " if field else "")
    assert str(err).splitlines()[0].startswith(where)


def test_every_problem_is_reported_in_line_order() -> None:
    text = "name: x\nstages:\n" + STAGE.replace("offset: 1", "offset: x") + "    colour: red\n"
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    lines = str(caught.value).splitlines()
    assert lines == [
        "policy.yaml line 4: stages[0].offset: must be an integer number of days",
        "policy.yaml line 8: stages[0].colour: unknown key",
    ]
    assert [p.line for p in caught.value.problems] == [4, 8]


def test_load_policy_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(
        "name: x\nstages:\n" + STAGE.replace("offset: 1", "offset: 2.5"), encoding="utf-8"
    )
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    assert caught.value.source == str(path)
    assert (
        str(caught.value) == f"{path} line 4: stages[0].offset: must be an integer number of days"
    )
    path.write_text("name: x\nstages:\n" + STAGE, encoding="utf-8")
    assert load_policy_file(path).stages[0].id == "a"


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)
