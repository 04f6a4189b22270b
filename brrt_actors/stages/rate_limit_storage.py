"""The rate limit counters of one app: a `limits` storage and strategy, owned by the app.

``memory://`` counts in this process (a `limits` memory storage bounded to ``max_keys``
counters: the oldest go first, and that client's count starts again). A Redis URL counts in
Redis, so every process and machine using the same Redis shares each limit; the connections
are bounded (``storage_connections``) and every wait on Redis is (``storage_timeout_ms``).

When the storage cannot be reached, ``on_storage_error`` decides: ``open`` lets the request
through, ``closed`` answers 503. Either way the first failure is logged as an error (the next
ones are not, until the storage answers again, which is logged too) and every failure counts
in ``brrt_rate_limit_storage_errors_total``.

Part of the rate limit stage (`brrt_actors.stages.rate_limit`); `limits` is imported only
when some operation has a limit.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gevent.monkey import is_module_patched
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from brrt_actors.config.settings import RateLimitSettings, redact_url

if TYPE_CHECKING:
    from limits import RateLimitItem

__all__ = ["BoundedMemoryStorage", "Counters", "StorageFailed"]

logger = logging.getLogger("brrt_actors.rate_limit")

_STRATEGIES: dict[str, Callable[[Any], RateLimiter]] = {
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}


class StorageFailed(Exception):
    """The storage could not be reached (the policy says what the request gets)."""


class BoundedMemoryStorage(MemoryStorage):
    """`limits`' memory storage holding at most `max_keys` counters (the oldest go first).

    # SECURITY: a client sending many distinct identities (addresses, keys) cannot grow the
    # table without bound; an evicted client's count starts again.
    """

    # NOTE: a scheme of its own: a subclass inheriting "memory" would replace `limits`' own
    # memory storage in its registry, for every user of the library in the process.
    STORAGE_SCHEME = ["brrt+memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 max_keys: int = 10000, **options: str) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.max_keys = max_keys
        if is_module_patched("threading"):
            # PERF: no lock per counter (~1.4 µs a hit): the requests and the expiry sweep
            # (a Timer: a greenlet once threading is patched) all run in the hub's thread,
            # and nothing in a counter update yields (benchmarks/features.py).
            self.locks = _NoLocks()

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add `amount` to the counter `key`, evicting the oldest counter to make room."""
        storage = self.storage
        if key not in storage:
            while len(storage) >= self.max_keys:
                self.clear(next(iter(storage)))
        return super().incr(key, expiry, amount)

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Take entries in the moving window `key`, evicting the oldest window for room."""
        events = self.events
        if key not in events:
            while len(events) >= self.max_keys:
                self.clear(next(iter(events)))
        return super().acquire_entry(key, limit, expiry, amount)

    def close(self) -> None:
        """Stop the background sweep of expired counters."""
        self.timer.cancel()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _NoLocks(defaultdict[str, Any]):
    _lock = _NoLock()

    def __missing__(self, key: str) -> _NoLock:
        return self._lock


def _storage(settings: RateLimitSettings) -> Storage:
    url = settings.storage
    if url.startswith("memory://"):
        return BoundedMemoryStorage(wrap_exceptions=True, max_keys=settings.max_keys)
    import redis  # NOTE: the `redis` extra; only for a Redis storage

    timeout_s = settings.storage_timeout_ms / 1000
    pool = redis.BlockingConnectionPool.from_url(
        url.replace("redis+unix://", "unix://", 1), max_connections=settings.storage_connections,
        timeout=timeout_s, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    return RedisStorage(url, connection_pool=pool, wrap_exceptions=True)


#: ``hit(client) -> (allowed, remaining, seconds until the window resets)``.
Hit = Callable[[str], tuple[bool, int, int]]


class Counters:
    """The app's rate limit counters (see the module's docstring).

    Args:
        settings: storage, strategy, bounds and the policy on storage errors.
        count_error: called once per storage failure (the metric), if given.

    Raises:
        ImportError: a Redis storage without the `redis` package.
    """

    __slots__ = ("_failing", "_fixed", "_limiter", "_storage", "_where", "count_error",
                 "fail_open")

    def __init__(self, settings: RateLimitSettings,
                 count_error: Callable[[], None] | None = None) -> None:
        self._storage = _storage(settings)
        self._limiter = _STRATEGIES[settings.strategy](self._storage)
        self._fixed = settings.strategy == "fixed-window"
        self._where = redact_url(settings.storage)
        self._failing = False
        self.fail_open = settings.on_storage_error == "open"
        self.count_error = count_error

    def counter(self, item: RateLimitItem, operation_id: str) -> Hit:
        """Return ``hit(client)``: count one request of `client` on `operation_id`.

        ``hit`` raises `StorageFailed` when the storage cannot be reached (logged and
        counted here).
        """
        if not self._fixed:
            return self._strategy_hit(item, operation_id)
        # PERF: the fixed window is `limits`' FixedWindowRateLimiter.hit with its key built
        # once per operation (the same key) and the reset read from the same counter: one
        # storage call less per request (benchmarks/features.py).
        incr, get_expiry = self._storage.incr, self._storage.get_expiry
        suffix = item.key_for("")[len(item.namespace) + 1:]  # "/<amount>/<multiples>/<unit>"
        prefix = item.key_for(operation_id, "")[:-len(suffix)]  # "LIMITER/<operationId>/"
        amount, expiry = item.amount, item.get_expiry()
        failed, recovered = self._failed, self._recovered

        def fixed_window_hit(client: str) -> tuple[bool, int, int]:
            key = prefix + client + suffix
            try:
                count = incr(key, expiry)
                reset = get_expiry(key)
            except StorageError as ex:
                failed(ex.storage_error)
                raise StorageFailed from ex
            if self._failing:
                recovered()
            return count <= amount, max(0, amount - count), max(0, int(reset - time.time()
                                                                          + 0.999))

        return fixed_window_hit

    def _strategy_hit(self, item: RateLimitItem, operation_id: str) -> Hit:
        limiter = self._limiter

        def strategy_hit(client: str) -> tuple[bool, int, int]:
            try:
                allowed = limiter.hit(item, operation_id, client)
                reset, remaining = limiter.get_window_stats(item, operation_id, client)
            except StorageError as ex:
                self._failed(ex.storage_error)
                raise StorageFailed from ex
            if self._failing:
                self._recovered()
            return allowed, remaining, max(0, int(reset - time.time() + 0.999))

        return strategy_hit

    def _recovered(self) -> None:
        self._failing = False
        logger.warning("rate limit storage %s answers again", self._where)

    def _failed(self, error: Exception) -> None:
        if self.count_error is not None:
            self.count_error()
        if not self._failing:
            self._failing = True
            logger.error("rate limit storage %s cannot be reached (%s: %s); requests are %s "
                         "until it answers", self._where, type(error).__name__, error,
                         "let through" if self.fail_open else "refused (503)")

    def close(self) -> None:
        """Release the storage: the memory sweep stops, Redis connections close."""
        storage = self._storage
        if isinstance(storage, BoundedMemoryStorage):
            storage.close()
            return
        client = getattr(storage, "storage", None)  # RedisStorage's redis client
        if client is not None:
            client.close()
            client.connection_pool.disconnect()
