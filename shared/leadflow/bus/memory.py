"""An in-memory bus with Kafka's shape (topics, keyed partitions, group offsets), for unit tests."""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import Sequence

from leadflow.bus import BatchProcessor, Headers, Message, Record


class InMemoryBus:
    """Topics held in lists; each consumer group keeps its own offsets per topic."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self.topics: dict[str, list[Record]] = defaultdict(list)
        self._offsets: dict[tuple[str, str], int] = defaultdict(int)

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> None:
        """Append a message, as an acknowledged produce would."""
        log = self.topics[topic]
        partition = zlib.crc32(key.encode()) % self.partitions
        log.append(Record(topic, partition, len(log), key.encode(), value, list(headers or [])))

    async def publish_many(
        self, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> None:
        """Append several messages in order (within `timeout_s`, when given)."""
        async with asyncio.timeout(timeout_s):
            for message in messages:
                await self.publish(*message)

    def values(self, topic: str) -> list[bytes]:
        """Every message value published on `topic`, in order."""
        return [record.value for record in self.topics[topic]]

    async def deliver(self, group: str, topics: list[str], processor: BatchProcessor) -> int:
        """Feed `group` every record it has not consumed yet; returns how many it got."""
        delivered = 0
        for topic in topics:
            start = self._offsets[(group, topic)]
            batch = self.topics[topic][start:]
            if batch:
                await processor.process(batch)
                self._offsets[(group, topic)] = start + len(batch)
                delivered += len(batch)
        return delivered
