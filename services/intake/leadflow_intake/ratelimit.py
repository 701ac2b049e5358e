"""Per-source rate limits: a token bucket per source, refilled continuously."""

from __future__ import annotations

import math
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
        wait = bucket.take(now)
        return 0 if wait == 0 else max(1, math.ceil(wait))
