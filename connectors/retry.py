"""Bounded retries with exponential backoff and full jitter, shared by every connector."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from arsync.errors import ConflictError, RateLimitedError, TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try and how long to wait; waits grow as ``base * 2**n`` up to ``cap``."""

    attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    #: QuickBooks documents "wait 60 s" after a 429 yet often sends no Retry-After; a throttled
    #: request waits at least this long so that a burst of retries does not extend the throttle.
    min_throttle_wait: float = 2.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        # Full jitter (AWS architecture blog): spreads concurrent retriers apart.
        return rng.uniform(0, min(self.cap, self.base * 2 ** max(0, min(attempt, 30))))


def call_with_retries(call: Callable[[], T], *, policy: RetryPolicy,
                      sleep: Callable[[float], None], what: str = "request",
                      rng: random.Random | None = None) -> T:
    """Run ``call``, retrying throttling and transient failures; everything else propagates.

    ConflictError is *not* retried here: the caller must re-read before writing again.
    """
    rng = rng or random.Random()  # jitter, not cryptography
    for attempt in range(policy.attempts):
        try:
            return call()
        except RateLimitedError as exc:
            if attempt == policy.attempts - 1:
                raise
            wait = exc.retry_after if exc.retry_after is not None else max(
                policy.min_throttle_wait, policy.backoff(attempt + 1, rng))
            log.warning("%s throttled (%s); retrying in %.1fs", what, exc.problem or "429", wait)
            sleep(wait)
        except ConflictError:
            raise
        except TransientError as exc:
            if attempt == policy.attempts - 1:
                raise
            wait = policy.backoff(attempt, rng)
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
