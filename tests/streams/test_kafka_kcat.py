"""Interoperability with an independent Kafka client (kcat): the contracts need nothing but CONTRACT.md."""

from __future__ import annotations

import json
import shutil
import subprocess

import jsonschema
import pytest
from typer.testing import CliRunner

from tests.kafka_helpers import consume_all, settings_env
from rci.cli.main import app
from rci.core.settings import Settings
from rci.streams.contracts import json_schemas, parse_published
from rci.streams.kafka import contract_topics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (scripts/bootstrap.sh installs it)"),
]


def kcat(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["kcat", *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kcat_lists_the_contract_topics(rci_settings: Settings) -> None:
    metadata = json.loads(kcat("-b", rci_settings.kafka_bootstrap, "-L", "-J"))
    topics = {t["topic"]: len(t["partitions"]) for t in metadata["topics"]}
    for topic in contract_topics(rci_settings):
        assert topics.get(topic) == rci_settings.topic_partitions


def test_events_from_rci_publish_read_back_by_kcat_match_the_schema(rci_settings: Settings, tmp_path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    for name in ("Cat video (final).mp4", "dog.mkv", "notes.txt"):
        (media / name).write_bytes(b"not decoded by publish")
    result = CliRunner().invoke(app, ["publish", str(media)], env=settings_env(rci_settings))
    assert result.exit_code == 0, result.output
    assert "delivered 2/2" in result.output

    lines = kcat("-b", rci_settings.kafka_bootstrap, "-C", "-t", rci_settings.topic_published, "-o", "beginning",
                 "-e", "-J", "-q").splitlines()  # fmt: skip
    envelopes = [json.loads(line) for line in lines if line.strip()]
    schema = json_schemas()["video.published"]
    by_id = {}
    for envelope in envelopes:
        value = json.loads(envelope["payload"])
        jsonschema.validate(value, schema)
        assert envelope["key"] == value["video_id"]
        by_id[value["video_id"]] = value
    assert set(by_id) == {"Cat-video-final", "dog"}
    assert by_id["dog"]["media_uri"] == (media / "dog.mkv").as_uri()
    assert by_id["Cat-video-final"]["title"] == "Cat video (final)"


def test_event_produced_by_kcat_is_accepted(rci_settings: Settings) -> None:
    value = {
        "schema_version": 1,
        "video_id": "kcat-001",
        "media_uri": "s3://rci-media/kcat-001.mp4",
        "title": "from kcat",
        "published_at": "2026-11-22T10:00:00Z",
        "producer": "an unknown extra field",
    }
    # -K: splits each line at its first colon: key, then the JSON value (which may contain colons).
    kcat("-b", rci_settings.kafka_bootstrap, "-P", "-t", rci_settings.topic_published, "-K:",
         stdin=f"kcat-001:{json.dumps(value)}\n")  # fmt: skip
    [message] = consume_all(rci_settings, rci_settings.topic_published, expected=1)
    event = parse_published(message.value(), message.key())
    assert (event.video_id, event.title) == ("kcat-001", "from kcat")
