"""``arsync template``: a company's wording is validated when saved and a bad one changes nothing
(real processes, real SQLite; the outbox's use of overrides is tested in tests/delivery)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.engine import Engine

from tests.arsync.ledger_world import seed
from tests.arsync.test_cli_ledger import arsync, db, env, home, ok  # noqa: F401 - fixtures

GOOD = "{{ company.name }}: a word about {{ invoices|length }} invoice(s)"


def test_set_show_reset(env: dict[str, str], db: Engine, tmp_path: Path) -> None:  # noqa: F811
    conn = seed(db, customers=1)
    good = tmp_path / "good.j2"
    good.write_text(GOOD)
    saved = ok(env, "template", "set", "email", "firm.subject.j2", str(good),
               "--connection", str(conn.id))
    assert saved == {"connection_id": conn.id, "path": "email/firm.subject.j2",
                     "status": "saved"}
    assert ok(env, "template", "show", "--connection", str(conn.id)) == [
        {"path": "email/firm.subject.j2", "source": GOOD}]

    # An unknown variable on line 2: refused with the line, exit 2, the good one stays.
    bad = tmp_path / "bad.j2"
    bad.write_text("Hello\n{{ customer.secret_code }}")
    out = arsync(env, "template", "set", "email", "firm.subject.j2", str(bad),
                 "--connection", str(conn.id))
    assert out.returncode == 2
    assert "line 2" in out.stderr
    assert ok(env, "template", "show", "--connection", str(conn.id))[0]["source"] == GOOD

    # An unsafe construct is refused too.
    bad.write_text("{{ ''.__class__.__mro__ }}")
    assert arsync(env, "template", "set", "email", "firm.subject.j2", str(bad),
                  "--connection", str(conn.id)).returncode == 2

    assert ok(env, "template", "reset", "email", "firm.subject.j2",
              "--connection", str(conn.id))["status"] == "reset"
    assert json.loads(arsync(env, "template", "show", "--connection", str(conn.id),
                             "--json").stdout) == []


def test_reply_to(env: dict[str, str], db: Engine) -> None:  # noqa: F811
    conn = seed(db, customers=1)
    assert ok(env, "reply-to", "Billing <ar@acme.example>", "--connection", str(conn.id)) == {
        "connection_id": conn.id, "reply_to": "Billing <ar@acme.example>"}
    out = arsync(env, "reply-to", "not an address", "--connection", str(conn.id))
    assert out.returncode == 2 and "not an email address" in out.stderr
    [row] = ok(env, "connections")
    assert row["id"] == conn.id
