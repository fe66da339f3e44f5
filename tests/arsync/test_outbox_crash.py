"""Exactly-once sending under ``kill -9``: real processes, killed at random instants.

The drain runs in a forked child (a real process: SIGKILL gives it no chance to clean up); the
parent kills it at a random moment, starts another, and repeats, then lets one finish. Every
action must end ``sent`` (or ``unknown`` with a sender that cannot tell), nothing may be lost,
and nothing may be delivered twice.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from arsync.mailer import EmlMailer, eml_path
from arsync.models import Action
from arsync.passes import plan_connection
from tests.arsync import drain_proc
from tests.arsync.ledger_world import NOW, context_on, seed

FORK = multiprocessing.get_context("fork")


def _planned(engine: Engine, tmp_path: Path, customers: int) -> None:
    ctx = context_on(engine, tmp_path)
    conn = seed(engine, customers=customers)
    assert plan_connection(ctx, conn, NOW, full=True).new == customers


def _child(argv: list[str]) -> None:
    os._exit(drain_proc.main(argv))


def _spawn(url: str, home: Path, kind: str, log: Path, pause: float, lease: float,
           base_real: float) -> multiprocessing.process.BaseProcess:
    argv = [url, str(home), NOW.isoformat(), repr(base_real), kind, str(log), str(pause),
            str(lease)]
    proc = FORK.Process(target=_child, args=(argv,))
    proc.start()
    return proc


def _statuses(engine: Engine) -> dict[int, str]:
    with Session(engine) as s:
        return {a.id: a.status for a in s.scalars(select(Action))}  # type: ignore[misc]


def _kill_loop(url: str, home: Path, kind: str, log: Path, *, kills: int, seed_: int,
               lease: float = 0.3, pause: float = 0.03) -> int:
    rng = random.Random(seed_)
    base_real = time.time()
    killed = 0
    for _ in range(kills):
        before = _touched(url)
        proc = _spawn(url, home, kind, log, pause, lease, base_real)
        # A loaded machine can take longer to start a child than the random delay below; wait
        # until it has claimed something, so every kill lands while it is really draining.
        deadline = time.monotonic() + 20
        while _touched(url) == before and proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.join(rng.uniform(0.0, 0.25))
        if proc.exitcode is None:
            os.kill(proc.pid or 0, signal.SIGKILL)  # kill -9, mid-whatever
            killed += 1
        proc.join()
    proc = _spawn(url, home, kind, log, pause, lease, base_real)  # one is let finish
    proc.join(60)
    assert proc.exitcode == 0
    return killed


def _touched(url: str) -> int:
    """How many actions have left ``planned`` (claimed, sent or unknown) so far."""
    with sqlite3.connect(url.split("///", 1)[1], timeout=30) as conn:
        return int(conn.execute(
            "SELECT count(*) FROM actions WHERE status != 'planned'").fetchone()[0])


@pytest.fixture
def db(tmp_path: Path, sqlite_engine: Engine) -> tuple[str, Engine]:
    return str(sqlite_engine.url), sqlite_engine


def test_kill_9_with_the_eml_outbox_sends_everything_exactly_once(
        db: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = db
    _planned(engine, tmp_path, customers=40)
    outbox = tmp_path / "outbox"
    # 40 sends of 0.1 s each outlast 25 kills at random instants in 0-0.25 s.
    killed = _kill_loop(url, tmp_path, "eml", outbox, kills=25, seed_=7, pause=0.1)
    assert killed >= 15
    statuses = _statuses(engine)
    assert len(statuses) == 40
    assert set(statuses.values()) == {"sent"}
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 40  # torn writes a kill left behind are .part files, never messages
    with Session(engine) as s:
        named = {eml_path(outbox, a.message_id or "").name for a in s.scalars(select(Action))}
    assert {f.name for f in files} == named  # one file per action, named by its Message-ID
    partial = list(outbox.glob(".tmp-*.part"))
    if partial:  # swept by the next drain once they are old enough
        assert EmlMailer(outbox).sweep(older_than=0) == len(partial)
    headers = Counter(line for f in files for line in f.read_text().splitlines()
                      if line.startswith(("Message-ID:", "X-Arsync-Action:")))
    assert len(headers) == 80
    assert set(headers.values()) == {1}
    with Session(engine) as s:
        ids = {a.message_id for a in s.scalars(select(Action))}
    assert {f"Message-ID: {m}" for m in ids} == {h for h in headers if h.startswith("Message")}


def test_kill_9_with_a_sender_that_cannot_tell_never_sends_twice(
        db: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = db
    _planned(engine, tmp_path, customers=30)
    log = tmp_path / "delivered.log"
    _kill_loop(url, tmp_path, "blind", log, kills=15, seed_=11)
    statuses = _statuses(engine)
    assert len(statuses) == 30
    assert set(statuses.values()) <= {"sent", "unknown"}
    delivered = Counter(int(line.split()[0]) for line in log.read_text().splitlines())
    assert max(delivered.values()) == 1  # never twice
    for action_id, status in statuses.items():
        if status == "sent":
            assert delivered[action_id] == 1  # nothing marked sent that did not go out
    assert "unknown" in statuses.values()  # the crash windows were really hit


def test_two_processes_draining_together_send_each_once(db: tuple[str, Engine],
                                                        tmp_path: Path) -> None:
    url, engine = db
    _planned(engine, tmp_path, customers=30)
    log = tmp_path / "delivered.log"
    base_real = time.time()
    procs = [_spawn(url, tmp_path, "blind", log, 0.01, 30, base_real) for _ in range(2)]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    delivered = Counter(int(line.split()[0]) for line in log.read_text().splitlines())
    assert len(delivered) == 30
    assert set(delivered.values()) == {1}
    assert set(_statuses(engine).values()) == {"sent"}
