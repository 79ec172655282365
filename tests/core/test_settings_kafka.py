"""Settings for a team's own Kafka: offset reset, mutual TLS, OAUTHBEARER, RCI_KAFKA_EXTRA, topic shape."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rci.core.errors import ConfigError
from rci.core.settings import KAFKA_EXTRA_RESERVED, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("RCI_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_a_new_group_starts_at_the_end_unless_told_otherwise(clean_env: pytest.MonkeyPatch) -> None:
    assert load_settings().kafka_auto_offset_reset == "latest"
    clean_env.setenv("RCI_KAFKA_AUTO_OFFSET_RESET", "earliest")
    assert load_settings().kafka_auto_offset_reset == "earliest"
    clean_env.setenv("RCI_KAFKA_AUTO_OFFSET_RESET", "smallest")
    with pytest.raises(ConfigError, match="RCI_KAFKA_AUTO_OFFSET_RESET"):
        load_settings()


def test_kafka_extra_is_a_json_object_of_scalars(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_KAFKA_EXTRA", '{"client.id": "rci-prod", "session.timeout.ms": 30000, "socket.keepalive.enable": true}')
    assert load_settings().kafka_extra == {"client.id": "rci-prod", "session.timeout.ms": 30000,
                                           "socket.keepalive.enable": True}  # fmt: skip
    for bad in ('["client.id"]', '{"client.id": {"nested": 1}}', "client.id=rci"):
        clean_env.setenv("RCI_KAFKA_EXTRA", bad)
        with pytest.raises(ConfigError, match="RCI_KAFKA_EXTRA"):
            load_settings()


@pytest.mark.parametrize("key", ["security.protocol", "sasl.password", "ssl.key.location", "auto.offset.reset",
                                 "group.id", "enable.auto.commit", "acks"])  # fmt: skip
def test_kafka_extra_cannot_set_what_a_dedicated_setting_owns(clean_env: pytest.MonkeyPatch, key: str) -> None:
    clean_env.setenv("RCI_KAFKA_EXTRA", f'{{"{key}": "x"}}')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "RCI_KAFKA_EXTRA" in str(caught.value) and key in str(caught.value)
    assert KAFKA_EXTRA_RESERVED[key].split()[0] in str(caught.value)


def test_kafka_extra_stays_out_of_repr() -> None:
    settings = Settings(kafka_extra={"client.id": "visible-only-to-the-client"})
    assert "visible-only-to-the-client" not in repr(settings)


def test_client_certificate_needs_its_key_and_tls(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("RCI_KAFKA_SECURITY_PROTOCOL", "SSL")
    clean_env.setenv("RCI_KAFKA_SSL_CERTFILE", str(tmp_path / "client.pem"))
    with pytest.raises(ConfigError, match="RCI_KAFKA_SSL_CERTFILE and RCI_KAFKA_SSL_KEYFILE"):
        load_settings()
    clean_env.setenv("RCI_KAFKA_SSL_KEYFILE", str(tmp_path / "client.key"))
    clean_env.setenv("RCI_KAFKA_SSL_KEY_PASSWORD", "key-secret")
    settings = load_settings()
    assert settings.kafka_ssl_keyfile == tmp_path / "client.key"
    assert "key-secret" not in repr(settings)
    clean_env.setenv("RCI_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    with pytest.raises(ConfigError, match="RCI_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"):
        load_settings()


def test_oauthbearer_needs_the_oidc_client_not_a_password(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("RCI_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    for name in ("RCI_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL", "RCI_KAFKA_SASL_OAUTHBEARER_CLIENT_ID",
                 "RCI_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET"):  # fmt: skip
        assert name in str(caught.value)
    clean_env.setenv("RCI_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL", "https://idp.example/token")
    clean_env.setenv("RCI_KAFKA_SASL_OAUTHBEARER_CLIENT_ID", "rci")
    clean_env.setenv("RCI_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET", "oidc-secret")
    settings = load_settings()  # no RCI_KAFKA_SASL_USERNAME / PASSWORD needed
    assert settings.kafka_sasl_oauthbearer_client_secret.get_secret_value() == "oidc-secret"
    assert "oidc-secret" not in repr(settings)


def test_topic_shape_settings(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.topic_replication_factor, settings.topic_retention_ms) == (-1, None)
    clean_env.setenv("RCI_TOPIC_REPLICATION_FACTOR", "3")
    clean_env.setenv("RCI_TOPIC_RETENTION_MS", "604800000")
    settings = load_settings()
    assert (settings.topic_replication_factor, settings.topic_retention_ms) == (3, 604_800_000)
    clean_env.setenv("RCI_TOPIC_REPLICATION_FACTOR", "0")
    with pytest.raises(ConfigError, match="RCI_TOPIC_REPLICATION_FACTOR"):
        load_settings()
