"""Two workers at once, on PostgreSQL and SQLite: enqueue converges on one job per (source,
invoice), each job is claimed by one worker, and every note lands exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.models_notes import NoteJob
from arsync.notes_queue import NotesReport, drain_notes
from tests.writeback.conftest import World, add_action, qbo_world


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "sqlite":
        return None
    engine: Engine = request.getfixturevalue("postgres_engine")  # a fresh, migrated schema
    return engine.url.render_as_string(hide_password=False)


def test_two_workers_converge(tmp_path: Path, database_url: str | None) -> None:
    for w in qbo_world(tmp_path, invoices=60, database_url=database_url):
        _race(w)


def _race(w: World) -> None:
    ids = w.open_invoices(12)
    for k in range(0, 12, 2):  # six reminders, two invoices each, and overlapping tasks
        add_action(w, ids[k:k + 2])
        add_action(w, [ids[k]], kind="task", status="planned", stage="call_30")
    reports: list[NotesReport] = []
    start = threading.Barrier(2)

    def worker(name: str) -> None:
        start.wait()
        reports.append(drain_notes(w.ctx, w.clock.now(), w.cid, owner=name))

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(reports) == 2 and all(not r.errors for r in reports), reports
    assert sum(r.enqueued for r in reports) == 18  # 12 reminder notes + 6 task notes
    assert sum(r.written for r in reports) == 18
    with Session(w.ctx.engine) as s:
        jobs = list(s.scalars(select(NoteJob)))
    assert len(jobs) == 18 and {j.status for j in jobs} == {"done"}
    assert {j.attempts for j in jobs} == {1}  # nobody wrote a job the other had claimed
    lines = [line for i in ids for line in w.notes_on(i)]
    assert len(lines) == 18 and len(set(lines)) == 18
