"""The one place Kafka clients are configured: confluent-kafka (producers, consumers, admin) and
faust/aiokafka (the worker) both get their connection and security settings from `Settings` here.

Secrets leave their `SecretStr` only inside the dict handed to the client library; never log
`client_config(...)`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import faust
from aiokafka.abc import AbstractTokenProvider
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ClusterMetadata,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from rci.core.errors import ConfigError, RCIError, TransientError
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
    """The five topics of docs/contract.md, under their configured names."""
    return (settings.topic_published, settings.topic_scores, settings.topic_dlq, settings.topic_shadow,
            settings.topic_reviews)


def bootstrap_hosts(settings: Settings) -> list[str]:
    return [host.strip() for host in settings.kafka_bootstrap.split(",") if host.strip()]


# --- confluent-kafka ---------------------------------------------------------------------------------
def client_config(settings: Settings) -> dict[str, object]:
    """Connection and security properties common to every confluent-kafka client (librdkafka names),
    then RCI_KAFKA_EXTRA as is (it cannot name a key a dedicated setting owns: rci.core.settings)."""
    config: dict[str, object] = {
        "bootstrap.servers": ",".join(bootstrap_hosts(settings)),
        "security.protocol": settings.kafka_security_protocol,
        "logger": _LIBRDKAFKA_LOGGER,
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_mechanism == "OAUTHBEARER":  # librdkafka fetches and refreshes the tokens itself
            config["sasl.oauthbearer.method"] = "oidc"
            config["sasl.oauthbearer.token.endpoint.url"] = settings.kafka_sasl_oauthbearer_token_endpoint_url
            config["sasl.oauthbearer.client.id"] = settings.kafka_sasl_oauthbearer_client_id
            config["sasl.oauthbearer.client.secret"] = settings.kafka_sasl_oauthbearer_client_secret.get_secret_value()
            if settings.kafka_sasl_oauthbearer_scope:
                config["sasl.oauthbearer.scope"] = settings.kafka_sasl_oauthbearer_scope
        else:
            config["sasl.username"] = settings.kafka_sasl_username
            config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_security_protocol.endswith("SSL"):
        if settings.kafka_ssl_cafile:
            config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:  # mutual TLS: the client's own certificate
            config["ssl.certificate.location"] = str(settings.kafka_ssl_certfile)
            config["ssl.key.location"] = str(settings.kafka_ssl_keyfile)
            if settings.kafka_ssl_key_password:
                config["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    config.update(settings.kafka_extra)
    return config


def _build(factory: Callable[[dict], object], config: dict[str, object], settings: Settings) -> object:
    """A confluent-kafka client; ConfigError (naming the key, as librdkafka does) if it refuses a setting."""
    try:
        return factory(config)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError._INVALID_ARG:
            source = f" (RCI_KAFKA_EXTRA sets {sorted(settings.kafka_extra)})" if settings.kafka_extra else ""
            raise ConfigError(f"Kafka client configuration refused: {error.str()}{source}") from exc
        raise


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
        "linger.ms": 5,  # RCI_KAFKA_EXTRA may change it
        **client_config(settings),
        "acks": "all",
        "enable.idempotence": True,
        "error_cb": _log_client_error,
        **_librdkafka_names(overrides),
    }
    return _build(Producer, config, settings)


def make_consumer(settings: Settings, group: str, **overrides: object) -> Consumer:
    """A consumer that commits only when told to (`enable.auto.commit` off): at-least-once by default.

    A group with no committed offset starts at RCI_KAFKA_AUTO_OFFSET_RESET; readers that must see a
    topic from its start whatever the setting (read-backs, replays) pass `auto_offset_reset="earliest"`."""
    return _build(Consumer, consumer_config(settings, group, **overrides), settings)


def consumer_config(settings: Settings, group: str, **overrides: object) -> dict[str, object]:
    """The librdkafka configuration `make_consumer` hands to the client (secrets included: never log it)."""
    return {
        **client_config(settings),
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": settings.kafka_auto_offset_reset,
        "error_cb": _log_client_error,
        **_librdkafka_names(overrides),
    }


class _Admin:
    """An AdminClient plus the errors librdkafka reported on the side (error_cb).

    A refused login surfaces in `list_topics` only as a transport failure; the error callback is
    where the real reason (`_AUTHENTICATION`) arrives, so it is kept to tell the two apart.
    """

    def __init__(self, settings: Settings) -> None:
        self.errors: list[KafkaError] = []
        self.client = _build(AdminClient, {**client_config(settings), "error_cb": self.errors.append}, settings)

    def auth_failure(self) -> KafkaError | None:
        self.client.poll(0)  # serve pending callbacks
        return next((e for e in self.errors if _is_refusal(e)), None)


def _is_refusal(error: KafkaError) -> bool:
    """SASL refused, or a TLS handshake that failed over a certificate (the broker's alert "bad
    certificate" when ours is missing or untrusted, or ours "certificate verify failed"): configuration."""
    if error.code() == KafkaError._AUTHENTICATION:
        return True
    return error.code() in (KafkaError._TRANSPORT, KafkaError._SSL) and "certificate" in error.str().lower()


def make_admin(settings: Settings) -> AdminClient:
    return _build(AdminClient, client_config(settings), settings)


def check_client_config(settings: Settings) -> None:
    """Start-up check of the Kafka settings for every client kind, without talking to a broker:
    ConfigError naming the setting or the RCI_KAFKA_EXTRA key that librdkafka (confluent-kafka) or
    the faust worker (aiokafka) cannot honour."""
    faust_broker_kwargs(settings)
    # librdkafka checks every property's name and value when a client is created (consumer-only
    # properties included: a producer logs and ignores them); the client is dropped at once.
    _build(Producer, client_config(settings), settings)


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


@dataclass(frozen=True)
class TopicPlan:
    """What creating one topic means on this cluster: `create` it with this shape, or it `exists`."""

    topic: str
    action: str  # "create" | "exists"
    partitions: int  # wanted
    replication_factor: int  # wanted; -1: the cluster's default.replication.factor
    config: dict[str, str]  # topic configs set at creation
    existing_partitions: int | None = None
    existing_replication_factor: int | None = None

    @property
    def mismatches(self) -> list[str]:
        """How an existing topic differs from the wanted shape (never altered by the project)."""
        found = []
        if self.existing_partitions is not None and self.existing_partitions != self.partitions:
            found.append(f"{self.existing_partitions} partitions, {self.partitions} wanted")
        if (self.existing_replication_factor is not None and self.replication_factor > 0
                and self.existing_replication_factor != self.replication_factor):  # fmt: skip
            found.append(f"replication factor {self.existing_replication_factor}, {self.replication_factor} wanted")
        return found


def plan_topics(
    settings: Settings,
    partitions: int | None = None,
    topics: tuple[str, ...] | None = None,
    timeout_s: float = 30.0,
    admin: _Admin | None = None,
) -> list[TopicPlan]:
    """One metadata request: for each topic (the contract topics by default), create it or it exists.
    Shape from the settings: RCI_TOPIC_PARTITIONS (or `partitions`), RCI_TOPIC_REPLICATION_FACTOR,
    RCI_TOPIC_RETENTION_MS, and the DLQ's larger `max.message.bytes`."""
    partitions = partitions or settings.topic_partitions
    existing = cluster_metadata(settings, timeout_s, admin).topics
    plans = []
    for topic in topics or contract_topics(settings):
        found = existing.get(topic)
        first = next(iter(found.partitions.values()), None) if found else None
        plans.append(TopicPlan(
            topic, "exists" if found else "create", partitions, settings.topic_replication_factor,
            _topic_config(settings, topic),
            existing_partitions=len(found.partitions) if found else None,
            existing_replication_factor=len(first.replicas) if first else None,
        ))  # fmt: skip
    return plans


def ensure_topics(
    settings: Settings,
    partitions: int | None = None,
    topics: tuple[str, ...] | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Create the contract topics (or `topics`) if missing; idempotent. Returns topic -> created|exists.

    The shape is `plan_topics`'s: by default the cluster's `default.replication.factor` (-1), so the
    same call suits a one-node dev broker and a production cluster. Existing topics are never altered;
    one whose shape differs is reported in the log.
    """
    admin = _Admin(settings)
    plans = plan_topics(settings, partitions, topics, timeout_s, admin)
    result = {p.topic: "exists" for p in plans if p.action == "exists"}
    for plan in plans:
        if plan.mismatches:
            log.warning("kafka.topic_shape_differs", topic=plan.topic, differs="; ".join(plan.mismatches))
    missing = [p for p in plans if p.action == "create"]
    if missing:
        futures = admin.client.create_topics(
            [NewTopic(p.topic, num_partitions=p.partitions, replication_factor=p.replication_factor, config=p.config)
             for p in missing],  # fmt: skip
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
        )
        for topic, future in futures.items():
            result[topic] = _created(topic, future, timeout_s)
        _wait_until_served(settings, admin, [p.topic for p in missing], timeout_s)
    log.info("kafka.topics_ready", topics=result, partitions=plans[0].partitions if plans else None)
    return {p.topic: result[p.topic] for p in plans}


def _topic_config(settings: Settings, topic: str) -> dict[str, str]:
    config = {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)} if topic == settings.topic_dlq else {}
    if settings.topic_retention_ms is not None:
        config["retention.ms"] = str(settings.topic_retention_ms)
    return config


@dataclass(frozen=True)
class TopicDescription:
    """An existing topic as the cluster reports it."""

    topic: str
    partitions: int
    replication_factor: int
    config: dict[str, str]  # every topic config, effective values (defaults included)
    overrides: tuple[str, ...]  # the keys set on the topic itself, not inherited from the broker


def describe_topics(
    settings: Settings, topics: tuple[str, ...] | None = None, timeout_s: float = 30.0
) -> dict[str, TopicDescription | None]:
    """topic -> its partitions, replication factor and configs (None when the topic does not exist)."""
    admin = _Admin(settings)
    topics = topics or contract_topics(settings)
    existing = cluster_metadata(settings, timeout_s, admin).topics
    resources = {t: ConfigResource(ResourceType.TOPIC, t) for t in topics if t in existing}
    futures = admin.client.describe_configs(list(resources.values()), request_timeout=timeout_s) if resources else {}
    described: dict[str, TopicDescription | None] = {}
    for topic in topics:
        if topic not in resources:
            described[topic] = None
            continue
        try:
            entries = futures[resources[topic]].result(timeout_s)
        except KafkaException as exc:
            raise TopicSetupError(f"describing {topic}: {exc.args[0].str() if exc.args else exc}") from exc
        first = next(iter(existing[topic].partitions.values()), None)
        described[topic] = TopicDescription(
            topic, len(existing[topic].partitions), len(first.replicas) if first else 0,
            {k: e.value for k, e in sorted(entries.items()) if e.value is not None},
            tuple(sorted(k for k, e in entries.items() if _set_on_topic(e))),
        )  # fmt: skip
    return described


def _set_on_topic(entry: object) -> bool:
    source = getattr(entry.source, "value", entry.source)  # an int or the enum, by client version
    return source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value


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
def _seconds(value: object) -> float:
    return float(value) / 1000


# RCI_KAFKA_EXTRA for the faust worker: librdkafka name -> the faust App settings (which faust hands
# to aiokafka) with the same meaning, and the conversion of the value. A key missing here and from
# _SSL_CONTEXT_KEYS has no aiokafka equivalent: the worker refuses to start (ConfigError naming it).
FAUST_EQUIVALENTS: dict[str, tuple[tuple[str, ...], Callable[[object], object]]] = {
    "client.id": (("broker_client_id",), str),
    "session.timeout.ms": (("broker_session_timeout",), _seconds),
    "heartbeat.interval.ms": (("broker_heartbeat_interval",), _seconds),
    "max.poll.interval.ms": (("broker_max_poll_interval",), _seconds),
    "socket.timeout.ms": (("broker_request_timeout",), _seconds),
    "max.partition.fetch.bytes": (("consumer_max_fetch_size",), int),
    "group.instance.id": (("consumer_group_instance_id",), str),
    "metadata.max.age.ms": (("consumer_metadata_max_age_ms", "producer_metadata_max_age_ms"), int),
    "connections.max.idle.ms": (("consumer_connections_max_idle_ms", "producer_connections_max_idle_ms"), int),
    "compression.type": (("producer_compression_type",), str),
    "linger.ms": (("producer_linger",), _seconds),
    "message.max.bytes": (("producer_max_request_size",), int),
}
# Keys that shape the worker's ssl.SSLContext instead of an App setting.
_SSL_CONTEXT_KEYS = ("ssl.endpoint.identification.algorithm", "ssl.cipher.suites")


def faust_extra_settings(settings: Settings) -> dict[str, object]:
    """RCI_KAFKA_EXTRA as faust App settings; ConfigError naming the first key aiokafka cannot honour."""
    translated: dict[str, object] = {}
    for key, value in settings.kafka_extra.items():
        if key in _SSL_CONTEXT_KEYS:
            continue
        if key not in FAUST_EQUIVALENTS:
            raise ConfigError(
                f"RCI_KAFKA_EXTRA key {key!r} has no equivalent in the faust worker's client (aiokafka); "
                f"keys it can honour: {', '.join(sorted([*FAUST_EQUIVALENTS, *_SSL_CONTEXT_KEYS]))}"
            )
        names, convert = FAUST_EQUIVALENTS[key]
        try:
            translated.update({name: convert(value) for name in names})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"RCI_KAFKA_EXTRA key {key!r}: {value!r} is not a valid value") from exc
    return translated


def faust_broker_kwargs(settings: Settings) -> dict[str, object]:
    """`broker`, (when secured) `broker_credentials` and the translated RCI_KAFKA_EXTRA for
    `faust.App(...)`, from the same settings as the confluent-kafka clients."""
    kwargs: dict[str, object] = {"broker": [f"kafka://{host}" for host in bootstrap_hosts(settings)]}
    protocol = settings.kafka_security_protocol
    ssl_context = _ssl_context(settings) if protocol.endswith("SSL") else None
    if protocol.startswith("SASL") and settings.kafka_sasl_mechanism == "OAUTHBEARER":
        kwargs["broker_credentials"] = faust.OAuthCredentials(oauth_cb=OidcTokenProvider.from_settings(settings),
                                                              ssl_context=ssl_context)  # fmt: skip
    elif protocol.startswith("SASL"):
        kwargs["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=ssl_context,  # set: SASL_SSL; None: SASL_PLAINTEXT
        )
    elif protocol == "SSL":
        kwargs["broker_credentials"] = faust.SSLCredentials(ssl_context)
    kwargs.update(faust_extra_settings(settings))
    return kwargs


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    try:
        if settings.kafka_ssl_certfile:
            password = settings.kafka_ssl_key_password.get_secret_value() if settings.kafka_ssl_key_password else None
            context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile, password)
        if ciphers := settings.kafka_extra.get("ssl.cipher.suites"):
            context.set_ciphers(str(ciphers))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"RCI_KAFKA_SSL_CERTFILE / RCI_KAFKA_SSL_KEYFILE / ssl.cipher.suites: {exc}") from exc
    identification = str(settings.kafka_extra.get("ssl.endpoint.identification.algorithm", "https")).lower()
    if identification not in ("https", "none"):
        raise ConfigError(f"RCI_KAFKA_EXTRA key 'ssl.endpoint.identification.algorithm': {identification!r} is not https or none")
    if identification == "none":  # librdkafka's switch for "do not check the broker's host name"
        context.check_hostname = False
    return context


class OidcTokenProvider(AbstractTokenProvider):
    """SASL/OAUTHBEARER tokens for the faust worker (aiokafka) from an OIDC token endpoint with the
    client-credentials grant, as librdkafka's `sasl.oauthbearer.method=oidc` does for the other clients.
    A token is reused until 80% of its lifetime has passed."""

    def __init__(self, url: str, client_id: str, client_secret: str, scope: str | None = None,
                 timeout_s: float = 30.0) -> None:  # fmt: skip
        self._url = url
        self._basic = base64.b64encode(f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(client_secret)}".encode()).decode()
        self._scope = scope
        self._timeout_s = timeout_s
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcTokenProvider:
        return cls(settings.kafka_sasl_oauthbearer_token_endpoint_url, settings.kafka_sasl_oauthbearer_client_id,
                   settings.kafka_sasl_oauthbearer_client_secret.get_secret_value(),
                   settings.kafka_sasl_oauthbearer_scope)  # fmt: skip

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                token, lifetime_s = await asyncio.to_thread(self.fetch)
                self._token, self._renew_at = token, time.monotonic() + 0.8 * lifetime_s
            return self._token

    def fetch(self) -> tuple[str, float]:
        """One token request -> (access token, lifetime in seconds)."""
        form = {"grant_type": "client_credentials", **({"scope": self._scope} if self._scope else {})}
        request = urllib.request.Request(
            self._url,
            data=urllib.parse.urlencode(form).encode(),
            headers={"Authorization": f"Basic {self._basic}", "Accept": "application/json",
                     "Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as exc:
            raise KafkaAuthError(f"token endpoint {self._url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError) as exc:
            raise BrokerUnavailable(f"token endpoint {self._url} unreachable: {exc}") from exc
        except ValueError as exc:
            raise KafkaAuthError(f"token endpoint {self._url} answered something other than JSON") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
            raise KafkaAuthError(f"token endpoint {self._url} answered without an access_token")
        return payload["access_token"], float(payload.get("expires_in", 300))


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
