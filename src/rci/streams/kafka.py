"""The one place Kafka clients are configured: confluent-kafka (producers, consumers, admin) and
faust/aiokafka (the worker) both get their connection and security settings from `Settings` here.

Secrets leave their `SecretStr` only inside the dict handed to the client library; never log
`client_config(...)`.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import faust
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata, ConfigResource, NewTopic, OffsetSpec, ResourceType

from rci.core.errors import RCIError, TransientError
from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.streams.contracts import PublishedEvent

log = get_logger(__name__)
# librdkafka's own log lines (connection refused, ...) go through stdlib logging, not straight to fd 2,
# so applications and pytest can filter or capture them.
_LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")

# librdkafka codes that mean "cannot reach / talk to the cluster right now".
_UNREACHABLE = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}


class KafkaClientError(RCIError):
    """Root of the errors raised by the project's Kafka layer."""


class BrokerUnavailable(KafkaClientError, TransientError):
    """No broker answered in time: infrastructure, worth retrying."""


class KafkaAuthError(KafkaClientError):
    """The broker refused our credentials (SASL/SSL): a configuration problem, not worth retrying."""


class TopicSetupError(KafkaClientError):
    """A topic could not be created or does not have the expected shape (configuration problem)."""


class ProducerQueueFull(KafkaClientError, TransientError):
    """The producer's local queue stayed full past the deadline: the broker is not taking records."""


# The DLQ carries the original record base64-encoded (+33%) inside a JSON envelope, so it needs a
# larger record limit than the input topic: 2 MiB holds any record of the broker's default 1 MiB.
DLQ_MAX_MESSAGE_BYTES = 2 * 1024 * 1024
# librdkafka's and Kafka's default record limit: what a topic we did not create is assumed to take.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000


def contract_topics(settings: Settings) -> tuple[str, ...]:
    """The four topics of CONTRACT.md, under their configured names."""
    return (settings.topic_published, settings.topic_scores, settings.topic_dlq, settings.topic_shadow)


def bootstrap_hosts(settings: Settings) -> list[str]:
    return [host.strip() for host in settings.kafka_bootstrap.split(",") if host.strip()]


# --- confluent-kafka ---------------------------------------------------------------------------------
def client_config(settings: Settings) -> dict[str, object]:
    """Connection and security properties common to every confluent-kafka client (librdkafka names)."""
    config: dict[str, object] = {
        "bootstrap.servers": ",".join(bootstrap_hosts(settings)),
        "security.protocol": settings.kafka_security_protocol,
        "logger": _LIBRDKAFKA_LOGGER,
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_security_protocol.endswith("SSL") and settings.kafka_ssl_cafile:
        config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
    return config


# confluent-kafka's own (Python-level) properties: these keep their underscores.
_PYTHON_PROPERTIES = {"error_cb", "throttle_cb", "stats_cb", "oauth_cb", "on_delivery", "on_commit", "logger"}


def _librdkafka_names(overrides: Mapping[str, object]) -> dict[str, object]:
    # `linger_ms=0` and `**{"linger.ms": 0}` mean the same: librdkafka names contain no underscores.
    return {key if key in _PYTHON_PROPERTIES else key.replace("_", "."): value for key, value in overrides.items()}


def _log_client_error(err: KafkaError) -> None:
    log.warning("kafka.client_error", code=err.name(), reason=err.str())


def make_producer(settings: Settings, **overrides: object) -> Producer:
    """A producer that loses nothing once `flush()` returned 0: acks from all in-sync replicas,
    idempotent (no duplicates from internal retries, per-partition order kept)."""
    config = {
        **client_config(settings),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "error_cb": _log_client_error,
        **_librdkafka_names(overrides),
    }
    return Producer(config)


def make_consumer(settings: Settings, group: str, **overrides: object) -> Consumer:
    """A consumer that commits only when told to (`enable.auto.commit` off): at-least-once by default."""
    config = {
        **client_config(settings),
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "error_cb": _log_client_error,
        **_librdkafka_names(overrides),
    }
    return Consumer(config)


class _Admin:
    """An AdminClient plus the errors librdkafka reported on the side (error_cb).

    A refused login surfaces in `list_topics` only as a transport failure; the error callback is
    where the real reason (`_AUTHENTICATION`) arrives, so it is kept to tell the two apart.
    """

    def __init__(self, settings: Settings) -> None:
        self.errors: list[KafkaError] = []
        self.client = AdminClient({**client_config(settings), "error_cb": self.errors.append})

    def auth_failure(self) -> KafkaError | None:
        self.client.poll(0)  # serve pending callbacks
        return next((e for e in self.errors if e.code() == KafkaError._AUTHENTICATION), None)


def make_admin(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def cluster_metadata(settings: Settings, timeout_s: float = 10.0, admin: _Admin | None = None) -> ClusterMetadata:
    """One metadata round trip. BrokerUnavailable (transient) if no broker answers within `timeout_s`;
    KafkaAuthError if the broker refused the credentials."""
    admin = admin or _Admin(settings)
    try:
        metadata = admin.client.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        if refused := admin.auth_failure():
            raise KafkaAuthError(f"{settings.kafka_bootstrap} refused the credentials: {refused.str()}") from exc
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() not in _UNREACHABLE:
            raise KafkaClientError(f"metadata request to {settings.kafka_bootstrap} failed: {error.str()}") from exc
        raise BrokerUnavailable(f"no Kafka broker answered at {settings.kafka_bootstrap} within {timeout_s:.0f}s") from exc
    if not metadata.brokers:
        raise BrokerUnavailable(f"{settings.kafka_bootstrap} answered without any live broker")
    return metadata


def ensure_topics(
    settings: Settings,
    partitions: int | None = None,
    topics: tuple[str, ...] | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Create the contract topics (or `topics`) if missing; idempotent. Returns topic -> created|exists.

    Replication uses the cluster's `default.replication.factor` (-1), so the same call suits a
    one-node dev broker and a production cluster. Existing topics are never altered; one with
    fewer partitions than asked is reported in the log.
    """
    partitions = partitions or settings.topic_partitions
    topics = topics or contract_topics(settings)
    admin = _Admin(settings)
    existing = cluster_metadata(settings, timeout_s, admin).topics
    missing = [t for t in topics if t not in existing]
    result = {t: "exists" for t in topics if t in existing}
    for topic in result:
        if len(existing[topic].partitions) < partitions:
            log.warning("kafka.topic_fewer_partitions", topic=topic, has=len(existing[topic].partitions), wanted=partitions)
    if missing:
        futures = admin.client.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=-1, config=_topic_config(settings, t))
             for t in missing],  # fmt: skip
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
        )
        for topic, future in futures.items():
            result[topic] = _created(topic, future, timeout_s)
        _wait_until_served(settings, admin, missing, timeout_s)
    log.info("kafka.topics_ready", topics=result, partitions=partitions)
    return result


def _topic_config(settings: Settings, topic: str) -> dict[str, str]:
    return {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)} if topic == settings.topic_dlq else {}


def topic_max_message_bytes(settings: Settings, topic: str, timeout_s: float = 10.0) -> int | None:
    """The largest record `topic` accepts (its effective `max.message.bytes`), or None if unknown."""
    admin = _Admin(settings)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        entries = admin.client.describe_configs([resource], request_timeout=timeout_s)[resource].result(timeout_s)
        return int(entries["max.message.bytes"].value)
    except (KafkaException, KeyError, TypeError, ValueError, TimeoutError) as exc:
        log.warning("kafka.topic_config_unknown", topic=topic, reason=str(exc)[:200])
        return None


def _wait_until_served(settings: Settings, admin: _Admin, topics: list[str], timeout_s: float) -> None:
    # CreateTopics returns once the controller committed the topics; the leader serves them a moment
    # later (metadata may already name it while it still answers NOT_LEADER). Waiting until every
    # partition answers a ListOffsets means callers never see UNKNOWN_TOPIC or NOT_LEADER afterwards.
    deadline = time.monotonic() + timeout_s
    pending = list(topics)
    while pending:
        served = cluster_metadata(settings, timeout_s, admin).topics
        pending = [t for t in pending if t not in served or not _partitions_answer(admin, t, served[t], timeout_s)]
        if pending and time.monotonic() > deadline:
            raise TopicSetupError(f"topics created but not served after {timeout_s:.0f}s: {pending}")
        if pending:
            time.sleep(0.1)


def _partitions_answer(admin: _Admin, topic: str, metadata: object, timeout_s: float) -> bool:
    if any(p.leader < 0 for p in metadata.partitions.values()):
        return False
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in metadata.partitions}
    try:
        for future in admin.client.list_offsets(request, request_timeout=timeout_s).values():
            future.result()
    except KafkaException:
        return False
    return True


def _created(topic: str, future: object, timeout_s: float) -> str:
    try:
        future.result(timeout=timeout_s)
        return "created"
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent creator won the race
            return "exists"
        if error.code() in _UNREACHABLE:
            raise BrokerUnavailable(f"creating {topic}: {error.str()}") from exc
        raise TopicSetupError(f"creating {topic}: {error.str()}") from exc


# --- faust / aiokafka -----------------------------------------------------------------------------
def faust_broker_kwargs(settings: Settings) -> dict[str, object]:
    """`broker` and (when secured) `broker_credentials` for `faust.App(...)`, from the same settings."""
    kwargs: dict[str, object] = {"broker": [f"kafka://{host}" for host in bootstrap_hosts(settings)]}
    protocol = settings.kafka_security_protocol
    ssl_context = _ssl_context(settings) if protocol.endswith("SSL") else None
    if protocol.startswith("SASL"):
        kwargs["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=ssl_context,  # set: SASL_SSL; None: SASL_PLAINTEXT
        )
    elif protocol == "SSL":
        kwargs["broker_credentials"] = faust.SSLCredentials(ssl_context)
    return kwargs


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)


# --- producing ------------------------------------------------------------------------------------
class RecordProducer(Protocol):
    """The part of confluent_kafka.Producer the project's writers use (tests pass in-memory fakes)."""

    def produce(self, topic: str, value: bytes | None, key: bytes | None, on_delivery: object) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


# librdkafka's own delivery timeout (message.timeout.ms) is 300 s; a queue that stays full for half a
# minute means the broker is not taking records, and the caller's retry (with backoff) should take over.
PRODUCE_DEADLINE_S = 30.0
_QUEUE_FULL_POLL_S = 0.1


def produce_with_backpressure(
    producer: RecordProducer,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    on_delivery: Callable[[KafkaError | None, object], None] | None = None,
    *,
    timestamp_ms: int | None = None,
    deadline_s: float = PRODUCE_DEADLINE_S,
) -> None:
    """Queue one record. While librdkafka's local queue is full (BufferError), serve delivery callbacks
    (which is what frees room) and try again; ProducerQueueFull (transient) once `deadline_s` has passed."""
    extra = {} if timestamp_ms is None else {"timestamp": timestamp_ms}  # fakes need not take `timestamp`
    give_up_at = time.monotonic() + deadline_s
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery, **extra)
            return
        except BufferError as exc:
            if time.monotonic() >= give_up_at:
                raise ProducerQueueFull(f"{topic}: the producer's queue stayed full for {deadline_s:.0f}s") from exc
            producer.poll(_QUEUE_FULL_POLL_S)


# --- publishing contract events -----------------------------------------------------------------
@dataclass
class DeliveryReport:
    """What the broker acknowledged after `publish_events` flushed."""

    delivered: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (video_id, error)
    unacknowledged: int = 0  # still queued when the flush timed out


def publish_events(
    settings: Settings,
    events: Iterable[PublishedEvent],
    producer: Producer | None = None,
    on_delivery: Callable[[bool], None] | None = None,
    flush_timeout_s: float = 30.0,
) -> DeliveryReport:
    """Produce `video.published` events keyed by video_id (per-video order) and wait for the acks."""
    producer = producer or make_producer(settings)
    report = DeliveryReport()

    def delivered(err: KafkaError | None, msg: object) -> None:
        if err is None:
            report.delivered += 1
        else:
            report.failed.append((msg.key().decode("utf-8", "replace"), err.str()))
        if on_delivery:
            on_delivery(err is None)

    for event in events:
        produce_with_backpressure(producer, settings.topic_published, event.to_json_bytes(),
                                  event.video_id.encode("utf-8"), delivered)  # fmt: skip
        producer.poll(0)
    report.unacknowledged = producer.flush(flush_timeout_s)
    return report
