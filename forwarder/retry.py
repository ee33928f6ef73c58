"""Exponential backoff with jitter, and log lines that do not flood.

The first failure is logged, then one line per ``LOG_EVERY`` failures, then one
"recovered after N" line: an operator sees the outage, not ten thousand lines about it.
"""

from __future__ import annotations

import logging
import random

LOG_EVERY = 20


class Backoff:
    def __init__(self, retry_min: float, retry_max: float, rng: random.Random | None = None):
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Delay before the next try: uniform in [retry_min, min(retry_max, min*2^n)]."""
        ceiling = min(self.retry_max, self.retry_min * (2 ** min(self.failures, 60)))
        self.failures += 1
        return self._rng.uniform(self.retry_min, max(self.retry_min, ceiling))

    def reset(self) -> int:
        n, self.failures = self.failures, 0
        return n


class FailureLog:
    def __init__(self, log: logging.Logger, what: str):
        self.log = log
        self.what = what
        self.count = 0

    def failed(self, message: str, delay: float) -> None:
        self.count += 1
        if self.count == 1 or self.count % LOG_EVERY == 0:
            self.log.warning("%s failed (%d in a row): %s; retrying in %.1fs",
                             self.what, self.count, message, delay)

    def recovered(self) -> None:
        if self.count:
            self.log.warning("%s recovered after %d failures", self.what, self.count)
        self.count = 0
