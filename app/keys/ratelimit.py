"""Per-API-key rate limit, shared by every API process and host through Redis.

A key may make at most `burst` requests in any window of `burst / rate` seconds (rounded up to whole seconds):
on average `rate` requests per second, and up to `burst` of them at once. A request over the limit answers 429
with Retry-After (seconds until the oldest request in the window leaves it).

The window is a moving window kept in Redis by the `limits` library (MovingWindowRateLimiter over its
RedisStorage: per key, a list of the request times, read and extended by one atomic Lua script per request), so
N API processes or hosts sharing REDIS_URL allow the limit once, not N times.

When Redis does not answer, requests are not refused: each process falls back to a token bucket of its own
with the same rate and burst (the limit then holds per process, as it did before it was shared), logs
`ratelimit.degraded`, and tries Redis again after REDIS_RETRY_S. Refusing (503) instead would make Redis a
dependency of every API call, while only the calls that enqueue work need it: reads, downloads, uploads and
receipts are served from the database and the blob store while Redis is away. A short socket timeout bounds
what a hung Redis adds to a request.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from app.core.errors import TooManyRequests
from app.core.logging import log_event
from app.core.metrics import RATE_LIMIT_CHECKS

log = logging.getLogger("app.ratelimit")

KEY_PREFIX = "unlearn-ratelimit"  # Redis key prefix of the windows
REDIS_TIMEOUT_S = 0.5  # seconds to connect to, or hear back from, Redis before falling back
REDIS_RETRY_S = 5.0  # seconds a process uses its own bucket after Redis failed, before trying Redis again


class LocalBuckets:
    """Token buckets of this process: `burst` tokens per key, refilled at `rate` per second."""

    def __init__(self, *, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last refill monotonic time)
        self._lock = threading.Lock()

    def take(self, key_id: str) -> float | None:
        """Take a token; None when one was left, else the seconds until one will be."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key_id] = (tokens - 1.0, now)
            return None


class RateLimiter:
    """`check(key_id)` takes one request from the key's allowance or raises TooManyRequests.

    With `redis_url` the allowance is shared through Redis (falling back to this process's buckets while Redis
    does not answer); without it, it is this process's alone. `rate_per_s` 0 disables the limit."""

    def __init__(self, *, rate_per_s: float, burst: int, redis_url: str | None = None) -> None:
        self.rate = rate_per_s
        self.burst = max(1, burst)
        self.window_s = max(1, math.ceil(self.burst / rate_per_s)) if rate_per_s > 0 else 0
        self._local = LocalBuckets(rate_per_s=rate_per_s, burst=self.burst)
        self._item = RateLimitItemPerSecond(self.burst, self.window_s) if rate_per_s > 0 else None
        self._shared: MovingWindowRateLimiter | None = None
        if redis_url and rate_per_s > 0:
            storage = RedisStorage(
                redis_url,
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
                socket_connect_timeout=REDIS_TIMEOUT_S,
                socket_timeout=REDIS_TIMEOUT_S,
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._degraded_until = 0.0  # monotonic time until which Redis is not tried again
        self._lock = threading.Lock()

    def check(self, key_id: str) -> None:
        """Take a request for `key_id` or raise TooManyRequests (429 with Retry-After)."""
        if self._item is None:
            return
        try:
            wait, store = self._shared_wait(key_id), "redis"
        except _RedisUnavailable:
            wait, store = self._local.take(key_id), "local"
        RATE_LIMIT_CHECKS.labels(store=store, outcome="allowed" if wait is None else "limited").inc()
        if wait is not None:
            raise TooManyRequests(
                f"rate limit of {self.burst} requests per {self.window_s} s exceeded for this key",
                retry_after_s=max(1, math.ceil(wait)),
            )

    def _shared_wait(self, key_id: str) -> float | None:
        """None when Redis granted the request, else the seconds to wait. Raises _RedisUnavailable when there
        is no shared store, when Redis did not answer, or while it is not tried again yet."""
        if self._shared is None or time.monotonic() < self._degraded_until:
            raise _RedisUnavailable
        try:
            if self._shared.hit(self._item, key_id):
                wait = None
            else:
                reset_at = self._shared.get_window_stats(self._item, key_id).reset_time  # epoch seconds
                wait = max(0.0, reset_at - time.time())
        except (StorageError, RedisError, OSError) as exc:
            with self._lock:
                first = self._degraded_until == 0.0
                self._degraded_until = time.monotonic() + REDIS_RETRY_S
            if first:
                log_event(
                    log,
                    "ratelimit.degraded",
                    level=logging.WARNING,
                    error=type(getattr(exc, "storage_error", None) or exc).__name__,
                    fallback="per-process bucket",
                    retry_s=REDIS_RETRY_S,
                )
            raise _RedisUnavailable from exc
        if self._degraded_until:
            with self._lock:
                restored, self._degraded_until = self._degraded_until != 0.0, 0.0
            if restored:
                log_event(log, "ratelimit.restored")
        return wait


class _RedisUnavailable(Exception):
    """The shared store cannot decide: the per-process bucket does."""
