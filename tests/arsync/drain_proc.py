"""A drain worker in its own process, for the kill -9 and two-process tests.

usage: python -m tests.arsync.drain_proc DB_URL HOME BASE_ISO BASE_REAL SENDER LOG SLEEP LEASE

Time is ``BASE_ISO`` plus the real seconds since ``BASE_REAL``, so claims expire for real while
the evaluation stays inside the send window. Drains until nothing is planned or in flight.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from arsync.config import Settings
from arsync.context import AppContext
from arsync.db import make_engine
from arsync.mailer import EmlMailer, MailerSender
from arsync.message import OutgoingMessage
from arsync.models import Action
from arsync.outbox import drain_outbox


class OffsetClock:
    def __init__(self, base: datetime, base_real: float) -> None:
        self.base, self.base_real = base, base_real

    def now(self) -> datetime:
        return self.base + timedelta(seconds=time.time() - self.base_real)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _append(log: Path, line: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write(2) of a short line: appended whole
        os.fsync(fd)
    finally:
        os.close(fd)


class BlindSender:
    """Delivers by appending to a log; after a crash it cannot tell what went out."""

    def __init__(self, log: Path, pause: float) -> None:
        self.log, self.pause = log, pause

    def send(self, message: OutgoingMessage) -> None:
        time.sleep(self.pause)
        _append(self.log, f"{message.action_id} {message.message_id}\n")

    def outcome(self, message: OutgoingMessage) -> bool | None:
        return None


class SlowEmlSender(MailerSender):
    """The real email path (render, MIME, ``.eml`` outbox), slowed so kills land mid-send."""

    def __init__(self, directory: Path, pause: float, clock: OffsetClock) -> None:
        super().__init__(EmlMailer(directory), clock)
        self.pause = pause

    def send(self, message: OutgoingMessage) -> None:
        time.sleep(self.pause)
        super().send(message)


def main(argv: list[str]) -> int:
    url, home, base_iso, base_real, kind, log, pause, lease = argv
    settings = Settings(_env_file=None, home=Path(home), secret_key="k" * 32,  # type: ignore[call-arg]
                        send_lease_seconds=float(lease))
    ctx = AppContext(settings, clock=OffsetClock(datetime.fromisoformat(base_iso),
                                                 float(base_real)))
    engine = make_engine(url)
    ctx.__dict__["engine"] = engine
    sender = (BlindSender(Path(log), float(pause)) if kind == "blind"
              else SlowEmlSender(Path(log), float(pause), ctx.clock))  # type: ignore[arg-type]
    while True:
        drain_outbox(ctx, ctx.clock.now(), sender=sender)
        with Session(engine) as s:
            left = s.scalar(select(func.count()).select_from(Action)
                            .where(Action.status.in_(["planned", "sending"])))
        if not left:
            return 0
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
