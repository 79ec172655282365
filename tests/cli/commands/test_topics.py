"""`rci topics create|describe` against the real broker: dry run, creation with the contract's shape,
idempotence, a partition mismatch reported, missing topics named."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from rci.cli.main import app
from rci.core.settings import Settings
from rci.streams.kafka import DLQ_MAX_MESSAGE_BYTES, cluster_metadata, contract_topics
from rci.streams.processes import settings_env

pytestmark = pytest.mark.integration


def _fresh_topics(settings: Settings) -> Settings:
    """`settings` with five topic names nobody created yet."""
    suffix = uuid.uuid4().hex[:8]
    return settings.model_copy(update={"topic_published": f"t.published.{suffix}", "topic_scores": f"t.scores.{suffix}",
                                       "topic_dlq": f"t.dlq.{suffix}", "topic_shadow": f"t.shadow.{suffix}",
                                       "topic_reviews": f"t.reviews.{suffix}"})  # fmt: skip


def _rci(settings: Settings, *args: str):  # noqa: ANN202
    return CliRunner().invoke(app, list(args), env={**settings_env(settings), "COLUMNS": "250"})


def _results(output: str) -> dict[str, str]:
    """topic -> the `result` column of `rci topics create`'s table (log lines on stderr are skipped)."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]
    return {row[0]: row[1] for row in rows if len(row) > 1}


def test_create_dry_run_then_create_then_again(rci_settings: Settings) -> None:
    settings = _fresh_topics(rci_settings)
    topics = contract_topics(settings)

    dry = _rci(settings, "topics", "create", "--dry-run", "--partitions", "2")
    assert dry.exit_code == 0, dry.output
    assert _results(dry.output) == dict.fromkeys(topics, "would create")
    assert "dry run: nothing created" in dry.output
    assert f"max.message.bytes={DLQ_MAX_MESSAGE_BYTES}" in dry.output
    assert not set(topics) & set(cluster_metadata(settings).topics)

    created = _rci(settings, "topics", "create", "--partitions", "2", "--retention-ms", "3600000")
    assert created.exit_code == 0, created.output
    assert _results(created.output) == dict.fromkeys(topics, "created"), created.output

    described = _rci(settings, "topics", "describe", "--json")
    assert described.exit_code == 0, described.output
    shape = json.loads(described.output)
    assert set(shape) == set(topics)
    for topic in topics:
        assert (shape[topic]["partitions"], shape[topic]["replication_factor"]) == (2, 1)
        assert shape[topic]["config"]["retention.ms"] == "3600000"
        assert "retention.ms" in shape[topic]["set_on_topic"]
    assert shape[settings.topic_dlq]["config"]["max.message.bytes"] == str(DLQ_MAX_MESSAGE_BYTES)
    assert shape[settings.topic_scores]["config"]["max.message.bytes"] != str(DLQ_MAX_MESSAGE_BYTES)

    again = _rci(settings, "topics", "create", "--partitions", "2")
    assert again.exit_code == 0, again.output
    assert _results(again.output) == dict.fromkeys(topics, "exists"), again.output

    wider = _rci(settings, "topics", "create", "--partitions", "3")
    assert wider.exit_code == 0, wider.output
    assert wider.output.count("exists with 2 partitions, 3 wanted: left as it is") == 5, wider.output
    assert all(len(cluster_metadata(settings).topics[t].partitions) == 2 for t in topics)  # never altered

    table = _rci(settings, "topics", "describe")
    assert table.exit_code == 0 and "retention.ms=3600000 *" in table.output, table.output


def test_describe_names_missing_topics_and_exits_1(rci_settings: Settings) -> None:
    settings = rci_settings.model_copy(update={"topic_shadow": f"t.absent.{uuid.uuid4().hex[:8]}"})
    result = _rci(settings, "topics", "describe")
    assert result.exit_code == 1
    assert "missing" in result.output and "rci topics create" in result.output


def test_an_unreachable_cluster_exits_1_with_a_message(rci_settings: Settings) -> None:
    settings = rci_settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    result = _rci(settings, "topics", "create", "--dry-run")
    assert result.exit_code == 1
    assert "127.0.0.1:1" in result.output and "Traceback" not in result.output
