"""The local stack: endpoints -> settings/env, the same scenario on local and compose stacks, LocalStack life cycle."""

from __future__ import annotations

import os
from pathlib import Path

import botocore.session
import pytest

from tests.kafka_helpers import consume_all
from rci.services.ports import is_listening
from rci.services.stack import LocalStack, StackEndpoints
from rci.core.settings import Settings, load_settings
from rci.streams.contracts import PublishedEvent
from rci.streams.kafka import cluster_metadata, contract_topics, publish_events


def _s3(settings: Settings):
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id.get_secret_value(),
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        region_name=settings.s3_region,
    )


def test_env_file_reproduces_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoints = StackEndpoints(tmp_path, "127.0.0.1:19092", "http://127.0.0.1:19000", "ak", "sk", str(tmp_path / "m.db"))
    for name in [n for n in os.environ if n.startswith("RCI_")]:
        monkeypatch.delenv(name)
    for name, value in endpoints.env().items():
        monkeypatch.setenv(name, value)
    from_env = load_settings()
    direct = endpoints.settings(Settings.model_construct())
    for field in ("kafka_bootstrap", "kafka_auto_offset_reset", "s3_endpoint_url", "milvus_uri", "object_store",
                  "s3_bucket", "media_allowed_prefixes", "data_dir"):  # fmt: skip
        assert getattr(from_env, field) == getattr(direct, field), field
    assert from_env.s3_secret_access_key.get_secret_value() == "sk"
    assert from_env.kafka_auto_offset_reset == "earliest"  # a dev stack's worker reads events published before it
    assert from_env.media_allowed_prefixes == ((tmp_path / "media").as_uri() + "/", "s3://rci-media/")


@pytest.mark.integration
def test_stack_has_topics_buckets_and_carries_events(stack_settings: Settings) -> None:
    topics = cluster_metadata(stack_settings).topics
    for topic in contract_topics(stack_settings):
        assert len(topics[topic].partitions) == stack_settings.topic_partitions
    s3 = _s3(stack_settings)
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {stack_settings.s3_bucket, "rci-media"} <= buckets
    s3.put_object(Bucket="rci-media", Key="probe.mp4", Body=b"x")
    assert s3.get_object(Bucket="rci-media", Key="probe.mp4")["Body"].read() == b"x"

    event = PublishedEvent(schema_version=1, video_id="stack-1", media_uri="s3://rci-media/probe.mp4", title="",
                           published_at="2026-11-22T10:00:00Z")  # fmt: skip
    assert publish_events(stack_settings, [event]).delivered == 1
    [message] = consume_all(stack_settings, stack_settings.topic_published, expected=1)
    assert message.key() == b"stack-1"


@pytest.mark.integration
@pytest.mark.slow
def test_local_stack_starts_and_stops(tmp_path: Path) -> None:
    base = Settings(data_dir=tmp_path, topic_partitions=3)
    with LocalStack(tmp_path, base) as stack:
        settings = stack.settings()
        assert settings.kafka_bootstrap == stack.kafka.bootstrap
        assert settings.resolved_milvus_uri == stack.milvus.uri
        assert stack.milvus.answers()
        assert set(stack.topics) == set(contract_topics(base))
        assert len(cluster_metadata(settings).topics[base.topic_scores].partitions) == 3
        ports = (stack.kafka.port, stack.s3.port, stack.milvus.port)
    assert not any(is_listening(p) for p in ports)
