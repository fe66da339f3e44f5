"""The scripted interface of the loop: ``run``, ``actions``, ``approve`` and friends, as real
``python -m arsync`` processes over a mirror seeded directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from arsync.db import make_engine, upgrade
from tests.arsync.ledger_world import NOW, seed

AS_OF = NOW.isoformat()
ACTION_FIELDS = {"id", "connection_id", "customer_external_id", "invoice_external_ids", "stage",
                 "channel", "recipient", "status", "planned_for", "sent_at", "reason"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ARSYNC_")}
    return {**base, "ARSYNC_HOME": str(home), "ARSYNC_SECRET_KEY": "c" * 32}


@pytest.fixture
def db(home: Path) -> Engine:
    engine = make_engine(f"sqlite:///{(home / 'arsync.db').resolve()}")
    upgrade(engine)
    return engine


def arsync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arsync", *args], env=env,
                          capture_output=True,
                          text=True, timeout=120, check=False)


def ok(env: dict[str, str], *args: str) -> Any:
    out = arsync(env, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_run_actions_and_approve_in_pilot_mode(env: dict[str, str], db: Engine,
                                               home: Path) -> None:
    conn = seed(db, customers=3)
    assert ok(env, "pilot", "on", "--connection", str(conn.id)) == {
        "connection_id": conn.id, "pilot_mode": True}

    preview = ok(env, "run", "--dry-run", "--as-of", AS_OF)
    assert preview[0]["dry_run"]
    assert preview[0]["planned"] == 3
    assert {a["status"] for a in preview[0]["actions"]} == {"awaiting_approval"}
    assert ok(env, "actions") == []  # a dry run writes nothing

    [report] = ok(env, "run", "--as-of", AS_OF)
    assert (report["connection_id"], report["planned"], report["outbox"]["sent"]) == (
        conn.id, 3, [])
    rows = ok(env, "actions", "--connection", str(conn.id))
    assert len(rows) == 3
    assert all(r.keys() >= ACTION_FIELDS for r in rows)
    row = rows[0]
    assert isinstance(row["invoice_external_ids"], list)
    assert row["status"] == "awaiting_approval"
    assert row["planned_for"].endswith("+00:00")
    assert row["sent_at"] is None
    assert row["explanation"].startswith("Email at stage overdue_14")

    by_customer = {r["customer_external_id"]: r for r in rows}
    [one] = ok(env, "approve", "--action", str(by_customer["C1"]["id"]))
    assert (one["id"], one["status"]) == (by_customer["C1"]["id"], "planned")
    assert [r["customer_external_id"] for r in ok(env, "approve", "--customer", "C2")] == ["C2"]
    [sent] = ok(env, "run", "--as-of", AS_OF)
    assert sorted(sent["outbox"]["sent"]) == sorted([by_customer["C1"]["id"],
                                                     by_customer["C2"]["id"]])
    assert len(list((home / "outbox").glob("*.eml"))) == 2
    assert [r["customer_external_id"] for r in ok(env, "approve", "--all")] == ["C3"]
    ok(env, "run", "--as-of", AS_OF)
    final = ok(env, "actions")
    assert {r["status"] for r in final} == {"sent"}
    assert all(r["sent_at"] and r["recipient"] for r in final)


def test_preview_of_the_next_days(env: dict[str, str], db: Engine) -> None:
    from datetime import date

    from tests.factories import make_customer, make_invoice

    conn = seed(db, customers=0)
    make_customer(db, conn, "P1")
    make_invoice(db, conn, "P1", "P1", due=date(2026, 3, 13))  # Friday
    out = ok(env, "run", "--dry-run", "--days", "7", "--as-of", AS_OF)
    assert [(a["local_date"], a["stage"]) for a in out["actions"]] == [
        ("2026-03-10", "due_soon"), ("2026-03-16", "overdue_1")]  # Saturday's waits for Monday
    assert ok(env, "actions") == []


def test_people_records_from_the_cli(env: dict[str, str], db: Engine) -> None:
    conn = seed(db, customers=2)
    c = ("--connection", str(conn.id))
    promise = ok(env, "promise", "--invoice", "I1a", "--date", "2026-03-20", "--amount", "100",
                 *c)
    assert (promise["customer_external_id"], promise["amount"]) == ("C1", "100")
    ok(env, "dispute", "open", "--invoice", "I1b", "--reason", "wrong quantity", *c)
    ok(env, "exclude", "--customer", "C2", *c)
    [report] = ok(env, "run", "--as-of", AS_OF)
    assert report["planned"] == 0  # C1: promised and disputed; C2: excluded
    ok(env, "exclude", "--customer", "C2", "--undo", *c)
    ok(env, "pause", "--invoice", "I2a", "--until", "2026-03-31", *c)
    ok(env, "dispute", "resolve", "--invoice", "I1b", *c)
    ok(env, "run", "--as-of", AS_OF)
    got = {(r["customer_external_id"], tuple(r["invoice_external_ids"]))
           for r in ok(env, "actions")}
    assert got == {("C1", ("I1b",)), ("C2", ("I2b",))}
    assert ok(env, "tasks") == []


@pytest.mark.parametrize(("args", "message"), [
    (("run", "--as-of", "2026-03-10T15:00:00"), "--as-of must carry a UTC offset"),
    (("run", "--as-of", "yesterday"), "--as-of must be an ISO 8601 datetime"),
    (("run", "--days", "7"), "use it with --dry-run"),
    (("approve",), "say what to approve"),
    (("approve", "--action", "999"), "no action with id 999"),
    (("actions", "--connection", "42"), "no connection with id 42"),
    (("pilot", "maybe", "--connection", "1"), "pilot takes on or off"),
    (("promise", "--invoice", "nope", "--date", "2026-03-20", "--connection", "1"),
     "no invoice 'nope'"),
    (("plan", "--invoice", "I1a", "--instalment", "2026-04-01:10", "--connection", "1"),
     "instalments add up to 10"),
])
def test_bad_input_exits_2_with_one_line(env: dict[str, str], db: Engine, args: tuple[str, ...],
                                         message: str) -> None:
    seed(db, customers=1)
    out = arsync(env, *args, "--json")
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert message in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("arsync: ")


def test_a_bad_policy_is_refused_with_its_line(env: dict[str, str], db: Engine,
                                               tmp_path: Path) -> None:
    conn = seed(db, customers=1)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: mine\nstages:\n  - id: x\n    offset: 1\n    tone: loud\n"
                   "    channels: [email]\n    template: t\n")
    out = arsync(env, "policy", "set", str(bad), "--connection", str(conn.id))
    assert out.returncode == 2
    assert f"{bad}:5" in out.stderr
    good = tmp_path / "good.yaml"
    good.write_text("name: mine\nstages:\n  - id: late\n    offset: 1\n    tone: firm\n"
                    "    channels: [email]\n    template: t\n")
    assert ok(env, "policy", "set", str(good), "--connection", str(conn.id))["policy"] == "mine"
    [report] = ok(env, "run", "--as-of", AS_OF)
    assert {r["stage"] for r in ok(env, "actions")} == {"late"}
    assert report["outbox"]["sent"]


def test_tasks_list_and_done_with_an_outcome(env: dict[str, str], db: Engine) -> None:
    from datetime import date

    from tests.factories import make_customer, make_invoice

    conn = seed(db, customers=0)
    make_customer(db, conn, "K1")
    make_invoice(db, conn, "K1", "K1", due=date(2026, 2, 6), amount="900.00")  # 32 days late
    ok(env, "run", "--as-of", AS_OF)
    [task] = ok(env, "tasks")
    assert (task["stage"], task["task_kind"], task["status"]) == ("call_30", "call", "planned")
    assert task["priority"] and float(task["priority"]) > 900
    done = ok(env, "tasks", "done", str(task["id"]), "--outcome", "promise",
              "--date", "2026-03-20", "--amount", "900.00")
    assert done["status"] == "done"
    assert done["outcome"] == {"outcome": "promise", "date": "2026-03-20", "amount": "900.00"}
    assert ok(env, "tasks") == []
    assert [t["status"] for t in ok(env, "tasks", "--all")] == ["done"]


def test_a_person_settles_an_unknown_action(env: dict[str, str], db: Engine) -> None:
    from sqlalchemy import update
    from sqlmodel import Session

    from arsync.models import Action

    seed(db, customers=2, pilot=True)
    ok(env, "run", "--as-of", AS_OF)
    first, second = ok(env, "actions")
    with Session(db) as s, s.begin():  # both went out... or did they? A crash left them unknown
        s.execute(update(Action).values(status="unknown", status_reason="worker died"))
    assert ok(env, "resolve", "--action", str(first["id"]), "--sent")["status"] == "sent"
    assert ok(env, "resolve", "--action", str(second["id"]), "--not-sent")["status"] == "failed"
    out = arsync(env, "resolve", "--action", str(first["id"]), "--json")
    assert out.returncode == 2
    assert "is not unknown" in out.stderr
