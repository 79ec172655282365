"""A real broker with an SSL listener that requires client certificates (mutual TLS) and a SASL_SSL
listener with SCRAM-SHA-512 users and OAUTHBEARER (Kafka's unsecured JWS validator, tokens from a local
OIDC token endpoint): the project's confluent-kafka clients and the faust worker's client
(aiokafka, through `faust_broker_kwargs`) connect with the RCI_KAFKA_* settings; without a client
certificate, with an untrusted broker or with a wrong password the connection is refused as a
configuration fault. The broker and its certificates: tests/services/conftest.py."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from rci.core.settings import Settings
from rci.services.kafka_broker import BrokerTls, KafkaBroker
from rci.streams.kafka import KafkaAuthError, cluster_metadata, ensure_topics, faust_broker_kwargs, make_consumer, make_producer
from tests.services.conftest import SCRAM_USERS

pytestmark = pytest.mark.integration


def _tls_settings(broker: KafkaBroker, pki: Path, client_cert: bool = True, **extra: object) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    fields: dict[str, object] = {
        "kafka_bootstrap": broker.tls_bootstrap, "kafka_security_protocol": "SSL", "kafka_ssl_cafile": pki / "ca.pem",
        "kafka_auto_offset_reset": "earliest", "topic_published": f"video.published.{suffix}",
        "topic_scores": f"rci.scores.{suffix}", "topic_dlq": f"video.published.dlq.{suffix}",
        "topic_shadow": f"rci.shadow.{suffix}", "topic_reviews": f"rci.reviews.{suffix}", "topic_partitions": 1,
    }  # fmt: skip
    if client_cert:
        fields |= {"kafka_ssl_certfile": pki / "client.pem", "kafka_ssl_keyfile": pki / "client.key"}
    return Settings(**(fields | extra))


def test_server_properties_name_the_pem_stores(pki: Path, tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path, tls=BrokerTls(pki / "k.pem", pki / "ca.pem"), libs=tmp_path)
    props = broker.server_properties()
    assert f"SSL://{broker.tls_bootstrap}" in props and "SSL:SSL" in props
    assert f"listener.name.ssl.ssl.keystore.location={pki / 'k.pem'}" in props
    assert "listener.name.ssl.ssl.client.auth=required" in props


def test_confluent_clients_with_a_client_certificate_create_produce_and_consume(tls_broker, pki: Path) -> None:
    settings = _tls_settings(tls_broker, pki)
    assert set(ensure_topics(settings).values()) == {"created"}  # the admin client over mutual TLS
    producer = make_producer(settings)
    producer.produce(settings.topic_scores, key=b"v1", value=b"over mutual tls")
    assert producer.flush(20) == 0
    consumer = make_consumer(settings, f"tls-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([settings.topic_scores])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                break
        assert message is not None and message.value() == b"over mutual tls"
    finally:
        consumer.close()


def test_without_a_client_certificate_the_broker_refuses(tls_broker, pki: Path) -> None:
    # a configuration fault (KafkaAuthError, not worth retrying), not an outage (BrokerUnavailable)
    with pytest.raises(KafkaAuthError, match="certificate"):
        cluster_metadata(_tls_settings(tls_broker, pki, client_cert=False), timeout_s=8)


def test_a_broker_certificate_from_another_ca_is_refused_too(tls_broker, pki: Path) -> None:
    with pytest.raises(KafkaAuthError, match="certificate verify failed"):
        cluster_metadata(_tls_settings(tls_broker, pki, kafka_ssl_cafile=pki / "client.pem"), timeout_s=8)


def _aiokafka_round_trip(settings: Settings, create_with: Settings | None = None) -> bytes:
    """Produce and consume one record with aiokafka configured as faust configures the worker's
    consumer (rci.streams.worker.build_app -> faust_broker_kwargs -> credentials_to_aiokafka_auth)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    ensure_topics(create_with or settings, topics=(settings.topic_published,))  # confluent-kafka's admin client
    auth = credentials_to_aiokafka_auth(faust_broker_kwargs(settings)["broker_credentials"])
    assert auth["security_protocol"] == settings.kafka_security_protocol

    async def round_trip() -> bytes:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, **auth)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic_published, b"from aiokafka", key=b"v1")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(settings.topic_published, bootstrap_servers=settings.kafka_bootstrap,
                                    group_id=f"tls-faust-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest", **auth)  # fmt: skip
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 30)
        finally:
            await consumer.stop()
        return record.value

    return asyncio.run(round_trip())


def test_the_faust_workers_client_connects_with_the_same_settings(tls_broker, pki: Path) -> None:
    assert _aiokafka_round_trip(_tls_settings(tls_broker, pki)) == b"from aiokafka"


# --- SASL_SSL with SCRAM-SHA-512 ------------------------------------------------------------------------
def _scram_settings(broker: KafkaBroker, pki: Path, password: str) -> Settings:
    return _tls_settings(broker, pki, client_cert=False, kafka_bootstrap=broker.scram_bootstrap,
                         kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                         kafka_sasl_username="rci", kafka_sasl_password=password)  # fmt: skip


def test_scram_over_tls_for_the_confluent_clients(tls_broker, pki: Path) -> None:
    settings = _scram_settings(tls_broker, pki, SCRAM_USERS.users["rci"])
    assert set(ensure_topics(settings).values()) == {"created"}
    producer = make_producer(settings)
    producer.produce(settings.topic_scores, key=b"v1", value=b"over scram")
    assert producer.flush(20) == 0
    consumer = make_consumer(settings, f"scram-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([settings.topic_scores])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                break
        assert message is not None and message.value() == b"over scram"
    finally:
        consumer.close()


def test_scram_with_a_wrong_password_is_refused(tls_broker, pki: Path) -> None:
    with pytest.raises(KafkaAuthError):
        cluster_metadata(_scram_settings(tls_broker, pki, "not-the-password"), timeout_s=8)


def test_scram_over_tls_for_the_faust_workers_client(tls_broker, pki: Path) -> None:
    assert _aiokafka_round_trip(_scram_settings(tls_broker, pki, SCRAM_USERS.users["rci"])) == b"from aiokafka"


# --- SASL_SSL with OAUTHBEARER (OIDC client credentials) -----------------------------------------------
def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


class _TokenEndpoint(BaseHTTPRequestHandler):
    """An OIDC token endpoint issuing unsigned JWTs (what the broker's unsecured validator accepts)."""

    clients: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        client_id = base64.b64decode(self.headers["Authorization"].removeprefix("Basic ")).decode().split(":")[0]
        type(self).clients.append(client_id)
        now = int(time.time())
        token = f"{_b64({'alg': 'none'})}.{_b64({'sub': client_id, 'iat': now, 'exp': now + 3600})}."
        body = json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[tuple[str, type[_TokenEndpoint]]]:
    handler = type("Endpoint", (_TokenEndpoint,), {"clients": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/token", handler
    finally:
        server.shutdown()
        server.server_close()


def _oauth_settings(broker: KafkaBroker, pki: Path, url: str, client_id: str) -> Settings:
    return _tls_settings(broker, pki, client_cert=False, kafka_bootstrap=broker.scram_bootstrap,
                         kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER",
                         kafka_sasl_oauthbearer_token_endpoint_url=url,
                         kafka_sasl_oauthbearer_client_id=client_id,
                         kafka_sasl_oauthbearer_client_secret="oidc-secret")  # fmt: skip


def test_oauthbearer_for_the_confluent_clients(tls_broker, pki: Path, token_endpoint) -> None:
    url, endpoint = token_endpoint
    settings = _oauth_settings(tls_broker, pki, url, "rci-confluent")
    assert set(ensure_topics(settings).values()) == {"created"}
    producer = make_producer(settings)
    producer.produce(settings.topic_scores, key=b"v1", value=b"over oauthbearer")
    assert producer.flush(20) == 0
    assert "rci-confluent" in endpoint.clients  # librdkafka fetched its token from the endpoint


def test_oauthbearer_for_the_faust_workers_client(tls_broker, pki: Path, token_endpoint) -> None:
    url, endpoint = token_endpoint
    settings = _oauth_settings(tls_broker, pki, url, "rci-faust")
    admin = settings.model_copy(update={"kafka_sasl_oauthbearer_client_id": "rci-admin"})
    assert _aiokafka_round_trip(settings, create_with=admin) == b"from aiokafka"
    assert "rci-faust" in endpoint.clients  # only OidcTokenProvider asked for this client's token


# --- the whole worker over mutual TLS ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rci_worker_scores_and_dead_letters_over_mutual_tls(tls_broker, pki: Path, tmp_path: Path) -> None:
    """`rci worker` (faust consumer, confluent-kafka sink) on the mutual-TLS listener only, with
    RCI_KAFKA_EXTRA carried to the child process, translated for faust and given to librdkafka."""
    from rci.inference.model_dir import install_untrained_models
    from rci.streams.processes import ChildProcess
    from tests.streams.worker_harness import MAX_FRAMES, encode, produce, published_event, read_outputs, write_media_library

    model_dir = tmp_path / "models"
    install_untrained_models(model_dir, MAX_FRAMES)
    settings = _tls_settings(tls_broker, pki, data_dir=tmp_path / "rci", model_dir=model_dir, media_max_frames=MAX_FRAMES,
                             milvus_uri=str(tmp_path / "milvus.db"), metrics_port=0,
                             kafka_extra={"client.id": "rci-tls-worker", "session.timeout.ms": 30000})  # fmt: skip
    ensure_topics(settings)
    media = write_media_library(settings.media_dir, 2)
    produce(settings, [*(encode(published_event(f"v{i}", m, i)) for i, m in enumerate(media)), (b"bad", b"not json")])
    worker = ChildProcess("worker", settings, tmp_path / "worker.log")
    try:
        out = read_outputs(settings, expected_total=3, timeout_s=400)
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    assert set(out.scored_ids) == {"v0", "v1"} and len(out.dead_letters) == 1, worker.log_tail()
