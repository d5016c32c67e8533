"""Per-API-key token bucket, in process.

Each key gets `burst` tokens, refilled at `rate` per second; a request takes one token, and a request that
finds the bucket empty answers 429 with Retry-After. With several API processes each holds its own buckets,
so the effective limit is the per-process limit times the number of processes.
"""

import math
import threading
import time

from app.core.errors import TooManyRequests


class RateLimiter:
    def __init__(self, *, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last refill monotonic time)
        self._lock = threading.Lock()

    def check(self, key_id: str) -> None:
        """Take a token for `key_id` or raise TooManyRequests."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise TooManyRequests(
                    f"rate limit of {self.rate:g} requests per second (burst {self.burst}) exceeded for this key",
                    retry_after_s=wait,
                )
            self._buckets[key_id] = (tokens - 1.0, now)
