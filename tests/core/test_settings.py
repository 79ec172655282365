"""Settings: RCI_* environment parsing, secrets kept out of output, errors that name the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from rci.core.errors import ConfigError
from rci.core.settings import Settings, env_name, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No RCI_* variable from the developer's shell leaks into these tests."""
    for name in [n for n in os.environ if n.startswith("RCI_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_every_field_has_an_rci_variable() -> None:
    assert env_name("kafka_bootstrap") == "RCI_KAFKA_BOOTSTRAP"
    for field in Settings.model_fields:
        assert env_name(field) == "RCI_" + field.upper()


def test_values_are_parsed_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    clean_env.setenv("RCI_TOPIC_PARTITIONS", "12")
    clean_env.setenv("RCI_SHADOW_SAMPLE_RATE", "0.25")
    clean_env.setenv("RCI_DATA_DIR", "/srv/rci")
    clean_env.setenv("RCI_OBJECT_STORE", "s3")
    clean_env.setenv("RCI_DEVICE", "cpu")
    settings = load_settings()
    assert settings.kafka_bootstrap == "k1:9092,k2:9092"
    assert settings.topic_partitions == 12
    assert settings.shadow_sample_rate == 0.25
    assert settings.data_dir == Path("/srv/rci")
    assert (settings.object_store, settings.device) == ("s3", "cpu")


def test_comma_lists_are_split_and_trimmed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_MEDIA_ALLOWED_PREFIXES", " file:///srv/media/ , s3://rci-media/,, ")
    assert load_settings().media_allowed_prefixes == ("file:///srv/media/", "s3://rci-media/")


def test_empty_prefix_list_falls_back_to_the_data_dir(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("RCI_MEDIA_ALLOWED_PREFIXES", "")
    clean_env.setenv("RCI_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.media_allowed_prefixes == ()
    assert settings.resolved_media_prefixes == ((tmp_path / "media").as_uri() + "/",)
    assert settings.resolved_milvus_uri == str(tmp_path / "milvus.db")


def test_secrets_never_appear_in_repr_or_dumps(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("RCI_KAFKA_SASL_USERNAME", "svc-rci")
    clean_env.setenv("RCI_KAFKA_SASL_PASSWORD", "hunter2-kafka")
    clean_env.setenv("RCI_S3_SECRET_ACCESS_KEY", "hunter2-s3")
    clean_env.setenv("RCI_MILVUS_TOKEN", "hunter2-milvus")
    settings = load_settings()
    for rendering in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert "hunter2" not in rendering
    assert settings.kafka_sasl_password.get_secret_value() == "hunter2-kafka"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RCI_TOPIC_PARTITIONS", "0"),
        ("RCI_TOPIC_PARTITIONS", "six"),
        ("RCI_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("RCI_MEDIA_ALLOWED_PREFIXES", "http://cdn.example.com/"),
        ("RCI_SHADOW_SAMPLE_RATE", "1.5"),
        ("RCI_METRICS_PORT", "70000"),
        ("RCI_KAFKA_BOOTSTRAP", ""),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert name in str(caught.value)


def test_sasl_without_credentials_is_a_config_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "RCI_KAFKA_SASL_USERNAME" in str(caught.value)


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.kafka_bootstrap = "elsewhere:9092"


def test_unknown_rci_variables_are_ignored(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_NOT_A_SETTING", "x")
    assert load_settings().kafka_bootstrap == "127.0.0.1:9092"
