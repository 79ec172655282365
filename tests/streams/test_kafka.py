"""rci.streams.kafka: configuration, back-pressure on a full producer queue, and against a real broker
topic creation, produce/consume, error types."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition

from rci.core.errors import TransientError
from rci.core.settings import Settings
from rci.streams.kafka import (
    BrokerUnavailable,
    ProducerQueueFull,
    client_config,
    cluster_metadata,
    contract_topics,
    ensure_topics,
    faust_broker_kwargs,
    make_consumer,
    make_producer,
    produce_with_backpressure,
)


def _sasl_settings(**extra: object) -> Settings:
    return Settings(
        kafka_bootstrap="b1:9092, b2:9092",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="alice",
        kafka_sasl_password="s3cret",
        **extra,
    )


def test_client_config_carries_security_settings(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    config = client_config(_sasl_settings(kafka_ssl_cafile=ca))
    assert config["bootstrap.servers"] == "b1:9092,b2:9092"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("alice", "s3cret")
    assert config["ssl.ca.location"] == str(ca)


def test_plaintext_config_has_no_credentials() -> None:
    config = client_config(Settings(kafka_bootstrap="127.0.0.1:9092"))
    assert config["security.protocol"] == "PLAINTEXT"
    assert not {"sasl.username", "sasl.password", "ssl.ca.location"} & config.keys()


def test_faust_kwargs_use_the_same_settings() -> None:
    kwargs = faust_broker_kwargs(_sasl_settings())
    assert kwargs["broker"] == ["kafka://b1:9092", "kafka://b2:9092"]
    credentials = kwargs["broker_credentials"]
    assert (credentials.username, credentials.password) == ("alice", "s3cret")
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"
    assert "broker_credentials" not in faust_broker_kwargs(Settings(kafka_bootstrap="h:1"))


def test_unreachable_broker_is_transient() -> None:
    with pytest.raises(BrokerUnavailable) as caught:
        cluster_metadata(Settings(kafka_bootstrap="127.0.0.1:1"), timeout_s=1.0)
    assert isinstance(caught.value, TransientError)


@pytest.mark.integration
def test_ensure_topics_is_idempotent(rci_settings: Settings) -> None:
    # rci_settings already created them once: a second call finds them all.
    assert ensure_topics(rci_settings) == {t: "exists" for t in contract_topics(rci_settings)}
    topics = cluster_metadata(rci_settings).topics
    for topic in contract_topics(rci_settings):
        assert len(topics[topic].partitions) == rci_settings.topic_partitions


@pytest.mark.integration
def test_ensure_topics_creates_missing_ones(rci_settings: Settings) -> None:
    extra = rci_settings.topic_published + ".extra"
    assert ensure_topics(rci_settings, partitions=3, topics=(extra,)) == {extra: "created"}
    assert len(cluster_metadata(rci_settings).topics[extra].partitions) == 3


@pytest.mark.integration
def test_producer_and_consumer_round_trip(rci_settings: Settings) -> None:
    producer = make_producer(rci_settings)
    for i in range(10):
        producer.produce(rci_settings.topic_scores, key=f"v{i}".encode(), value=f"{i}".encode())
    assert producer.flush(10) == 0

    consumer = make_consumer(rci_settings, group=rci_settings.worker_group)
    consumer.subscribe([rci_settings.topic_scores])
    seen: dict[bytes, bytes] = {}
    try:
        while len(seen) < 10:
            message = consumer.poll(10)
            assert message is not None, f"only {len(seen)} of 10 records arrived"
            assert message.error() is None
            seen[message.key()] = message.value()
        consumer.commit(asynchronous=False)  # auto-commit is off: nothing is committed unless asked
        committed = consumer.committed(
            [TopicPartition(rci_settings.topic_scores, p) for p in range(rci_settings.topic_partitions)], timeout=10
        )
    finally:
        consumer.close()
    assert seen == {f"v{i}".encode(): f"{i}".encode() for i in range(10)}
    assert sum(tp.offset for tp in committed if tp.offset > 0) == 10


def test_overrides_accept_python_names_and_librdkafka_names() -> None:
    from rci.streams.kafka import _librdkafka_names

    named = _librdkafka_names({"linger_ms": 0, "auto.offset.reset": "latest", "on_delivery": print})
    assert named == {"linger.ms": 0, "auto.offset.reset": "latest", "on_delivery": print}


class FullQueueProducer:
    """librdkafka at its boundary: `produce` raises BufferError while the local queue is full, and only
    `poll` (serving delivery callbacks) frees room, here after `room_after_polls` polls (None: never)."""

    def __init__(self, room_after_polls: int | None) -> None:
        self.room_after_polls = room_after_polls
        self.polls = 0
        self.queued: list[tuple] = []

    def produce(self, topic: str, value: bytes | None, key: bytes | None, on_delivery: object, **kwargs: object) -> None:
        if self.room_after_polls is None or self.polls < self.room_after_polls:
            raise BufferError("Local: Queue full")
        self.queued.append((topic, key, value, on_delivery, kwargs))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        time.sleep(timeout)  # as the real one does when no callback is due
        return 0


def test_a_full_queue_is_waited_out_by_serving_callbacks() -> None:
    producer = FullQueueProducer(room_after_polls=3)
    produce_with_backpressure(producer, "t", b"value", b"key", print, timestamp_ms=1234, deadline_s=30)
    assert producer.polls == 3
    assert producer.queued == [("t", b"key", b"value", print, {"timestamp": 1234})]


def test_a_queue_that_stays_full_raises_a_transient_error_at_the_deadline() -> None:
    producer = FullQueueProducer(room_after_polls=None)
    started = time.monotonic()
    with pytest.raises(ProducerQueueFull, match="stayed full") as caught:
        produce_with_backpressure(producer, "t", b"value", b"key", deadline_s=0.3)
    waited = time.monotonic() - started
    assert isinstance(caught.value, TransientError)  # the caller retries the batch with backoff
    assert 0.3 <= waited < 5 and producer.polls >= 2 and producer.queued == []
