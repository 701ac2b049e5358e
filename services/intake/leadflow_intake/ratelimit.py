"""Rate limits: a token bucket per source, per person (lead key) and per failing client.

Per source: a sender's configured budget (`rate_limit` in the YAML). Per person: one
spammed form, or one looping integration, cannot flood one Kafka partition (and so the
scoring of everyone whose events share it). Per client address: a caller whose requests
keep failing authentication, or keep naming sources that do not exist, is slowed down
before it can guess a secret or list the configured sources.

The per-key limits keep at most `max_keys` buckets, the least recently used evicted first:
an evicted bucket is one that has been idle longest, and one idle for `burst / rate`
seconds is full again, just as if it had never been seen.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from leadflow.config import RateLimit


@dataclass
class TokenBucket:
    """`rate` tokens a second, up to `burst` saved; each request takes one."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> float:
        """Take a token: 0 when granted, else the seconds until one is available."""
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def retry_after(wait: float) -> int:
    """Whole seconds for `Retry-After` (at least 1) for a wait in seconds; 0 for none."""
    return 0 if wait <= 0 else max(1, math.ceil(wait))


class RateLimits:
    """The buckets of every rate-limited source (in this process)."""

    def __init__(self, limits: dict[str, RateLimit]) -> None:
        self._buckets = {
            name: TokenBucket(limit.per_second, limit.burst) for name, limit in limits.items()
        }

    def retry_after(self, source: str, now: float) -> int:
        """0 when `source` may send now; else whole seconds to wait (for `Retry-After`)."""
        bucket = self._buckets.get(source)
        if bucket is None:
            return 0
        return retry_after(bucket.take(now))


class KeyedLimit:
    """A token bucket per key (a lead key, a client address), at most `max_keys` of them.

    A bucket is `[tokens, updated]`; an unseen key has a full bucket. Every operation is
    O(1): a dictionary look-up, and a move to the end of the recency order.
    """

    def __init__(self, per_second: float, burst: int, max_keys: int) -> None:
        self.rate = per_second
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` has a token (0 when it has one now); takes nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str, now: float) -> float:
        """Take a token from `key`'s bucket: 0 when granted, else the seconds to wait."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self.max_keys:
                buckets.popitem(last=False)
            bucket = buckets[key] = [self.burst, now]
        else:
            buckets.move_to_end(key)
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1:
            bucket[0] -= 1
            return 0.0
        return (1 - bucket[0]) / self.rate

    def give_back(self, key: str) -> None:
        """Return a token taken for work that was then not done."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket[0] = min(self.burst, bucket[0] + 1)

    def take_all(self, keys: Iterable[str], now: float) -> dict[str, float]:
        """Take a token for each key if every one has a token, and return {}; else take none
        and return the keys without one, with their waits (so a refused delivery costs
        none of its keys a token)."""
        distinct = dict.fromkeys(keys)
        over = {key: wait for key in distinct if (wait := self.wait(key, now)) > 0}
        if not over:
            for key in distinct:
                self.take(key, now)
        return over
