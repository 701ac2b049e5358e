"""The Kafka bus on a real broker: commit after processing, retry of failed batches, DLQ replay."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError
from prometheus_client import REGISTRY

from leadflow import tracing
from leadflow.broker import start_broker
from leadflow.bus import STRUCTURED, Record
from leadflow.bus.kafka import (
    KafkaConsumerRunner,
    KafkaPublisher,
    ensure_topics,
    replay_dead_letters,
)
from leadflow.faults import InfrastructureUnavailable
from leadflow.settings import Settings
from leadflow.topics import ALL, DLQ, SCORED
from tests.fixtures.broker import (
    TopicReader,
    free_port,
    pause,
    running_broker,
    running_broker_process,
)

pytestmark = pytest.mark.integration

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with running_broker() as bootstrap:
        yield Settings(
            kafka_bootstrap=bootstrap,
            consumer_poll_ms=100,
            stop_timeout_s=5,
            consumer_session_timeout_ms=2000,
            consumer_heartbeat_ms=500,
            consumer_rebalance_timeout_ms=2000,
        )


class Recorder:
    """A processor that fails its first `failures` batches, then keeps what it is given."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.values: list[bytes] = []

    async def process(self, records: list[Record]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the dead-letter topic is unreachable")
        self.values.extend(r.value for r in records)


async def until(condition: object, timeout_s: float = 20) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def publish(settings: Settings, topic: str, values: list[bytes]) -> None:
    publisher = KafkaPublisher(settings, "test")
    await publisher.start()
    try:
        await publisher.publish_many([(topic, "k", v) for v in values])
    finally:
        await publisher.stop()


async def test_a_failed_batch_is_retried_and_offsets_commit_only_after_success(
    settings: Settings,
) -> None:
    topic = "bus.retry"
    await ensure_topics(settings, [topic])
    await publish(settings, topic, [b"a", b"b", b"c"])

    flaky = Recorder(failures=2)
    runner = KafkaConsumerRunner(settings, "g-retry", [topic], flaky)
    await runner.start()
    await until(lambda: len(flaky.values) >= 3)
    await runner.stop()
    assert flaky.values == [b"a", b"b", b"c"]

    await publish(settings, topic, [b"d"])
    second = Recorder()
    runner = KafkaConsumerRunner(settings, "g-retry", [topic], second)
    await runner.start()
    await until(lambda: second.values == [b"d"])
    await runner.stop()


async def test_dead_letters_are_replayed_to_their_topic_once(settings: Settings) -> None:
    await ensure_topics(settings, ALL)
    publisher = KafkaPublisher(settings, "test")
    await publisher.start()
    try:
        for value, owner in [
            (b"r1", "leadflow-router"),
            (b"s1", "leadflow-scoring"),
            (b"r2", "leadflow-router"),
        ]:
            await publisher.publish(
                DLQ,
                "lk_1",
                value,
                [
                    ("leadflow-original-topic", SCORED.encode()),
                    ("leadflow-consumer", owner.encode()),
                    ("traceparent", PARENT.encode()),
                ],
            )
    finally:
        await publisher.stop()

    assert await replay_dead_letters(settings, consumer="leadflow-router") == 2
    assert await replay_dead_letters(settings, consumer="leadflow-router") == 0

    reader = TopicReader(settings.kafka_bootstrap, [SCORED])
    async with reader:
        deadline = time.monotonic() + 10
        replayed: list[ConsumerRecord[bytes, bytes]] = []
        while len(replayed) < 2 and time.monotonic() < deadline:
            batches = await reader._consumer.getmany(timeout_ms=200)
            replayed += [m for ms in batches.values() for m in ms]
    assert [m.value for m in replayed] == [b"r1", b"r2"]
    # Replayed as first published: a structured CloudEvent in its trace, not a dead letter.
    for message in replayed:
        assert list(message.headers) == [STRUCTURED, ("traceparent", PARENT.encode())]


async def test_headers_of_a_batch_reach_the_consumer(settings: Settings) -> None:
    topic = "bus.headers"
    await ensure_topics(settings, [topic])
    publisher = KafkaPublisher(settings, "test")
    await publisher.start()
    try:
        await publisher.publish_many(
            [tracing.message(topic, "k", b"a", PARENT), tracing.message(topic, "k", b"b", None)]
        )
    finally:
        await publisher.stop()
    recorder = HeaderRecorder()
    runner = KafkaConsumerRunner(settings, "g-headers", [topic], recorder)
    await runner.start()
    await until(lambda: len(recorder.headers) >= 2)
    await runner.stop()
    assert recorder.headers == [[STRUCTURED, ("traceparent", PARENT.encode())], [STRUCTURED]]


class HeaderRecorder:
    """A processor that keeps the headers of what it is given."""

    def __init__(self) -> None:
        self.headers: list[list[tuple[str, bytes]]] = []

    async def process(self, records: list[Record]) -> None:
        self.headers.extend(r.headers for r in records)


async def read_all(settings: Settings, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    """Every (key, value) on `topic`, per partition in offset order, once `count` arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        seen: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + 20
        while len(seen) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            seen += [(m.key or b"", m.value) for ms in batches.values() for m in ms]
        await asyncio.sleep(0.5)  # anything beyond `count` would be a duplicate
        batches = await consumer.getmany(timeout_ms=200)
        seen += [(m.key or b"", m.value) for ms in batches.values() for m in ms]
        return seen
    finally:
        await consumer.stop()


async def test_concurrent_publishes_are_coalesced_without_loss_duplicate_or_reorder(
    settings: Settings,
) -> None:
    topic = "bus.coalesced"
    await ensure_topics(settings, [topic])
    publisher = KafkaPublisher(settings, "test")
    await publisher.start()
    try:
        # 400 callers at once, as under a burst of webhooks: 8 keys, each key's calls in order.
        keys = [f"lk_{k}" for k in range(8)]
        calls = [
            publisher.publish_many([(topic, keys[i % 8], f"{keys[i % 8]}:{i}".encode())])
            for i in range(400)
        ]
        # One call carries several messages of several keys, and one is large.
        several = [(topic, keys[i], f"{keys[i]}:multi".encode()) for i in range(8)]
        large = [(topic, keys[0], b"L" * 300_000)]
        await asyncio.gather(*calls, publisher.publish_many(several), publisher.publish_many(large))
    finally:
        await publisher.stop()

    seen = await read_all(settings, topic, 409)
    values = [v for _, v in seen if not v.startswith(b"L")]
    assert len(seen) == 409
    assert len(set(values)) == 408
    for key in keys:
        numbered = [
            int(v.split(b":")[1])
            for k, v in seen
            if k == key.encode() and v[:1] != b"L"
            if not v.endswith(b"multi")
        ]
        assert numbered == sorted(numbered), f"{key}'s messages were reordered"


async def test_a_publish_to_a_stopped_publisher_fails_at_once(settings: Settings) -> None:
    publisher = KafkaPublisher(settings, "test")
    await publisher.start()
    await publisher.stop()
    with pytest.raises(KafkaError):
        await publisher.publish_many([("bus.stopped", "k", b"v")], timeout_s=1)


async def test_calls_time_out_each_at_its_own_limit_while_the_broker_is_paused() -> None:
    with running_broker_process() as (bootstrap, broker):
        settings = Settings(kafka_bootstrap=bootstrap, publish_timeout_s=30, stop_timeout_s=2)
        await ensure_topics(settings, ["bus.paused"])
        publisher = KafkaPublisher(settings, "test")
        await publisher.start()
        try:
            await publisher.publish_many([("bus.paused", "k", b"before")])
            pause(broker)
            loop = asyncio.get_running_loop()
            started = loop.time()

            async def timed(limit: float) -> float:
                with pytest.raises(TimeoutError):
                    await publisher.publish_many([("bus.paused", "k", b"v")], timeout_s=limit)
                return loop.time() - started

            # A later call with a shorter limit must not wait for the earlier, longer one.
            limits = [1.2, 0.3, 0.6]
            waited = await asyncio.gather(*(timed(limit) for limit in limits))
            assert waited[1] < waited[2] < waited[0], waited
            for limit, took in zip(limits, waited, strict=True):
                assert limit <= took < limit + 0.5, (limit, took)
        finally:
            broker.send_signal(signal.SIGCONT)
            await publisher.stop()


class Outage:
    """A processor whose database is away for its first `failures` batches."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.values: list[bytes] = []
        self.paused_seen: list[str | None] = []
        self.runner: KafkaConsumerRunner | None = None

    async def process(self, records: list[Record]) -> None:
        if self.runner is not None:
            self.paused_seen.append(self.runner.paused)
        if self.failures:
            self.failures -= 1
            raise InfrastructureUnavailable("ConnectionRefusedError: Connect call failed")
        self.values.extend(r.value for r in records)


def paused_metric(group: str) -> float | None:
    return REGISTRY.get_sample_value("leadflow_consumer_paused", {"group": group})


async def test_a_consumer_pauses_through_an_outage_and_resumes_where_it_was(
    settings: Settings,
) -> None:
    topic = "bus.outage"
    await ensure_topics(settings, [topic])
    await publish(settings, topic, [b"1", b"2", b"3"])
    outage = Outage(failures=3)
    runner = KafkaConsumerRunner(settings, "g-outage", [topic], outage)
    outage.runner = runner
    await runner.start()
    try:
        await until(lambda: outage.values == [b"1", b"2", b"3"])
        # While the outage lasted it said so, with the reason; then it resumed.
        assert outage.paused_seen[0] is None
        assert (
            outage.paused_seen[1:4]
            == ["InfrastructureUnavailable: ConnectionRefusedError: Connect call failed"] * 3
        )
        assert runner.paused is None
        assert paused_metric("g-outage") == 0
    finally:
        await runner.stop()
    # Offsets were committed only once the records were applied: nothing is read twice.
    await publish(settings, topic, [b"4"])
    after = Recorder()
    runner = KafkaConsumerRunner(settings, "g-outage", [topic], after)
    await runner.start()
    await until(lambda: after.values == [b"4"])
    await runner.stop()


async def test_a_consumer_started_before_its_broker_waits_for_it() -> None:
    port = free_port()
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{port}",
        consumer_poll_ms=100,
        stop_timeout_s=5,
        consumer_session_timeout_ms=2000,
        consumer_heartbeat_ms=500,
        consumer_rebalance_timeout_ms=2000,
        retry_backoff_max_s=0.5,
    )
    recorder = Recorder()
    runner = KafkaConsumerRunner(settings, "g-late", ["bus.late"], recorder)
    task = asyncio.create_task(runner.run())
    try:
        await until(lambda: runner.paused is not None and "broker" in runner.paused)
        assert paused_metric("g-late") == 1
        broker = start_broker(port)
        try:
            await ensure_topics(settings, ["bus.late"])
            await publish(settings, "bus.late", [b"hello"])
            await until(lambda: recorder.values == [b"hello"], timeout_s=30)
            assert runner.paused is None
        finally:
            await runner.stop()
            broker.terminate()
            broker.wait(10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_topics_are_created_with_the_configured_durability(settings: Settings) -> None:
    durable = settings.model_copy(update={"kafka_min_insync_replicas": 1})
    await ensure_topics(durable, ["bus.durable"])
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "bus.durable")]
        )
        [resource] = described.resources
        entries = resource[-1]  # (error, message, type, name, config entries)
        assert ("min.insync.replicas", "1") in [(e[0], e[1]) for e in entries]
    finally:
        await admin.close()


async def test_a_consumer_whose_client_broke_is_replaced_by_a_fresh_one(
    settings: Settings,
) -> None:
    """aiokafka's coordinator can die on a connection the broker closed and re-raise that on
    every fetch; the runner must connect a new client rather than fail forever."""
    topic = "bus.broken"
    await ensure_topics(settings, [topic])
    await publish(settings, topic, [b"1"])
    recorder = Recorder()
    runner = KafkaConsumerRunner(settings, "g-broken", [topic], recorder)
    await runner.start()
    try:
        await until(lambda: recorder.values == [b"1"])
        broken = runner._consumer
        assert broken is not None

        async def dead(*_args: object, **_kwargs: object) -> object:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

        broken.getmany = dead
        await until(lambda: runner.paused is not None and "connection lost" in runner.paused)
        await publish(settings, topic, [b"2"])
        await until(lambda: recorder.values == [b"1", b"2"], timeout_s=30)
        assert runner._consumer is not broken
        assert runner.paused is None
    finally:
        await runner.stop()


async def test_a_consumer_whose_coordinator_died_is_replaced_and_ready_on_a_quiet_topic(
    settings: Settings,
) -> None:
    """aiokafka's coordinator task can end on an unexpected error (a closed transport):
    it says so once, as a KafkaError raised from it, and the client never joins its group
    again. With nothing to read (a quiet bulk lane) no batch would ever resume the runner:
    it must connect a new client, and be ready without a new record."""
    topic = "bus.coordination"
    await ensure_topics(settings, [topic])
    await publish(settings, topic, [b"1"])
    recorder = Recorder()
    runner = KafkaConsumerRunner(settings, "g-coordination", [topic], recorder)
    await runner.start()
    try:
        await until(lambda: recorder.values == [b"1"])
        broken = runner._consumer
        assert broken is not None
        said = False

        async def dead(*_args: object, **_kwargs: object) -> object:
            nonlocal said
            if not said:
                said = True
                closed = RuntimeError("unable to perform operation on <TCPTransport closed=True>")
                raise KafkaError(f"Unexpected error during coordination {closed!r}") from closed
            return {}

        broken.getmany = dead
        await until(lambda: said)
        await until(lambda: runner._consumer is not broken and runner.paused is None, timeout_s=30)
        await publish(settings, topic, [b"2"])
        await until(lambda: recorder.values == [b"1", b"2"], timeout_s=30)
    finally:
        await runner.stop()


async def test_a_fetch_that_failed_once_on_a_quiet_topic_does_not_leave_the_consumer_paused(
    settings: Settings,
) -> None:
    topic = "bus.quiet"
    await ensure_topics(settings, [topic])
    recorder = Recorder()
    runner = KafkaConsumerRunner(settings, "g-quiet", [topic], recorder)
    await runner.start()
    try:
        await until(lambda: runner.paused is None)
        client = runner._consumer
        assert client is not None
        fetch = client.getmany
        failed = False
        paused_on_retry: list[str | None] = []

        async def once(*args: object, **kwargs: object) -> object:
            nonlocal failed
            if not failed:
                failed = True
                raise KafkaConnectionError("the broker closed the connection")
            if not paused_on_retry:
                paused_on_retry.append(runner.paused)
            return await fetch(*args, **kwargs)

        client.getmany = once
        await until(lambda: bool(paused_on_retry))
        assert paused_on_retry[0] is not None
        assert "broker unavailable" in paused_on_retry[0]
        await until(lambda: runner.paused is None, timeout_s=30)
        assert runner._consumer is client  # a failed fetch alone keeps the client
    finally:
        await runner.stop()


async def test_a_publisher_whose_sender_died_connects_a_new_producer(settings: Settings) -> None:
    """aiokafka's sender dies on an unexpected error (under uvloop, a RuntimeError on a
    connection the broker closed) and the producer then refuses every send: the publisher
    must replace it rather than fail forever."""
    topic = "bus.sender"
    await ensure_topics(settings, [topic])
    publisher = KafkaPublisher(settings, "test")
    await publisher.start()
    try:
        await publisher.publish_many([(topic, "k", b"before")])
        broken = publisher._producer

        async def closed(*_args: object, **_kwargs: object) -> object:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

        broken.client.send = closed
        with pytest.raises((KafkaError, TimeoutError)):
            await publisher.publish_many([(topic, "k", b"lost")], timeout_s=2)
        await publisher.publish_many([(topic, "k", b"after")])
        assert publisher._producer is not broken
        await publisher.publish(topic, "k", b"single")
    finally:
        await publisher.stop()
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        batches = await reader.getmany(timeout_ms=5000)
        values = [m.value for messages in batches.values() for m in messages]
    finally:
        await reader.stop()
    assert values[0] == b"before"
    assert values[-2:] == [b"after", b"single"]
