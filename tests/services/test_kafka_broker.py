"""The local Kafka broker: its configuration, and a SASL/PLAIN listener that really authenticates."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from rci.services.kafka_broker import KafkaBroker, SaslUsers, random_cluster_id
from rci.core.settings import Settings
from rci.streams.kafka import KafkaAuthError, cluster_metadata, faust_broker_kwargs, make_consumer, make_producer


def test_cluster_id_is_a_kafka_uuid() -> None:
    for _ in range(50):
        cluster_id = random_cluster_id()
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id) and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_server_properties_bind_loopback_and_enable_sasl(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path, port=19092, controller_port=19093, sasl=SaslUsers({"admin": "a", "u": "p"}),
                         sasl_port=19094)  # fmt: skip
    props = dict(line.split("=", 1) for line in broker.server_properties().splitlines())
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,SASL_PLAINTEXT://127.0.0.1:19094"
    )
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in props  # --standalone formatting requires it unset
    assert props["sasl.enabled.mechanisms"] == "PLAIN"
    jaas = props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert 'user_u="p"' in jaas and jaas.endswith(";")
    assert broker.sasl_bootstrap == "127.0.0.1:19094"


def _sasl_settings(broker: KafkaBroker, password: str, topic: str) -> Settings:
    return Settings(
        kafka_bootstrap=broker.sasl_bootstrap,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="rci",
        kafka_sasl_password=password,
        kafka_auto_offset_reset="earliest",  # the consumer's new group reads what was produced before
        topic_scores=topic,
    )


@pytest.mark.integration
def test_sasl_client_with_the_right_password_produces_and_consumes(kafka_broker, rci_settings: Settings) -> None:
    settings = _sasl_settings(kafka_broker, kafka_broker.sasl.users["rci"], rci_settings.topic_scores)
    assert cluster_metadata(settings).brokers
    producer = make_producer(settings)
    producer.produce(settings.topic_scores, key=b"k", value=b"over sasl")
    assert producer.flush(10) == 0
    consumer = make_consumer(settings, group="sasl-test")
    consumer.subscribe([settings.topic_scores])
    try:
        message = consumer.poll(20)
        while message is not None and message.error():
            message = consumer.poll(20)
    finally:
        consumer.close()
    assert message is not None and message.value() == b"over sasl"


@pytest.mark.integration
def test_wrong_password_is_an_auth_error_not_a_transient_one(kafka_broker) -> None:
    with pytest.raises(KafkaAuthError):
        cluster_metadata(_sasl_settings(kafka_broker, "wrong", "unused"), timeout_s=5)


@pytest.mark.integration
async def test_faust_credentials_authenticate_through_aiokafka(kafka_broker, rci_settings: Settings) -> None:
    # The worker's path: faust turns broker_credentials into aiokafka's auth settings.
    from aiokafka import AIOKafkaProducer

    settings = _sasl_settings(kafka_broker, kafka_broker.sasl.users["rci"], rci_settings.topic_scores)
    kwargs = faust_broker_kwargs(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=[url.removeprefix("kafka://") for url in kwargs["broker"]],
        **credentials_to_aiokafka_auth(kwargs["broker_credentials"]),
    )
    await asyncio.wait_for(producer.start(), 30)
    try:
        metadata = await asyncio.wait_for(producer.send_and_wait(settings.topic_scores, b"via faust creds", key=b"f"), 30)
    finally:
        await producer.stop()
    assert metadata.topic == settings.topic_scores and metadata.offset >= 0
