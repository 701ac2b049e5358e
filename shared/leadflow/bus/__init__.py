"""The message bus seen by services: records in, keyed bytes out.

`KafkaPublisher`/`KafkaConsumerRunner` speak to any Kafka-protocol broker; the
`InMemoryBus` stands in for them in unit tests and in `leadflow simulate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

Headers = list[tuple[str, bytes]]
# CloudEvents' Kafka protocol binding, structured content mode: the record's value is the
# whole event as JSON, and this header says so. Consumers do not need it (records written
# before it was added have none): every value is read as a structured event.
CONTENT_TYPE = "content-type"
CLOUDEVENTS_JSON = "application/cloudevents+json; charset=UTF-8"
STRUCTURED: tuple[str, bytes] = (CONTENT_TYPE, CLOUDEVENTS_JSON.encode())
# A message to publish: topic, key, value, and its headers if it has any.
Message = tuple[str, str, bytes] | tuple[str, str, bytes, Headers]


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message, independent of the transport it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)


def structured(headers: Headers) -> Headers:
    """`headers` with the structured-mode content type, added when missing."""
    if any(name == CONTENT_TYPE for name, _ in headers):
        return headers
    return [STRUCTURED, *headers]


class Publisher(Protocol):
    """Publishes keyed messages; returns once the broker acknowledged them."""

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> None: ...

    async def publish_many(
        self, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> None:
        """Publish in order; raises TimeoutError when not all are acknowledged within
        `timeout_s` (default: the publisher's own bound). A timed-out publish is not
        withdrawn: its messages may still arrive."""
        ...


class BatchProcessor(Protocol):
    """Handles a batch of records; returns once their effects are durable."""

    async def process(self, records: list[Record]) -> None: ...
