"""A per-sender send rate limit for the outbox dispatcher (a token bucket per sender).

Carriers and Twilio queue or refuse what a sender sends faster than it may: a US/Canadian long
code takes about 1 SMS per second, toll-free and messaging services with several numbers more
(Twilio queues the excess, for hours at worst), and outbound calls are limited per account
(1 call per second by default). A burst of alerts then sits in Twilio's queue while the
escalation clock runs. We pace at our end instead: `WELFARE_OUTBOX_MAX_PER_SECOND` (default 10,
0 turns it off) per sender and per kind (SMS and calls are limited separately), with a burst of
up to one second's worth. A row over the limit is put back to wait (never dropped) and goes out
as soon as its sender has room.

The bucket lives in the dispatcher's process: with several workers, each takes its share of the
provider's rate, so set the value to (what the sender allows) / (number of workers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class SenderRateLimit:
    """`acquire(key)`: 0.0 and a token used when the sender may send now; otherwise the seconds
    until it may (nothing used). `clock` is monotonic seconds (tests pass their own)."""

    def __init__(
        self,
        max_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        burst: float | None = None,
    ) -> None:
        self.rate = max_per_second
        # A burst of up to one second's worth, unless told otherwise (a page's per-visitor
        # limit: a few requests at once, a handful a minute).
        self.capacity = burst if burst is not None else max(max_per_second, 1.0)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str) -> float:
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(tokens=self.capacity, updated=now))
            elapsed = max(now - bucket.updated, 0.0)
            bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def forget_idle(self) -> int:
        """Drop every bucket that has refilled (the same as a new one); returns how many. For
        keys without end (client addresses), so the table stays as small as the busy keys."""
        now = self.clock()
        with self._lock:
            idle = [
                key
                for key, bucket in self._buckets.items()
                if bucket.tokens + max(now - bucket.updated, 0.0) * self.rate >= self.capacity
            ]
            for key in idle:
                del self._buckets[key]
        return len(idle)

    @property
    def keys(self) -> int:
        """How many keys have a bucket (not `__len__`: an empty limit must stay truthy)."""
        return len(self._buckets)
