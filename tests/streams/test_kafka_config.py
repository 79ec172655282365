"""rci.streams.kafka for a team's own cluster, without a broker: mutual TLS, OAUTHBEARER (librdkafka's OIDC
and the faust worker's token provider), RCI_KAFKA_EXTRA as is for confluent-kafka and translated for faust,
and the start-up check that names what a client cannot honour."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import faust
import pytest

from rci.core.errors import ConfigError
from rci.core.settings import Settings
from rci.streams.kafka import (
    FAUST_EQUIVALENTS,
    KafkaAuthError,
    OidcTokenProvider,
    check_client_config,
    client_config,
    consumer_config,
    faust_broker_kwargs,
    faust_extra_settings,
    make_consumer,
    make_producer,
)
from rci.streams.processes import settings_env


def _oidc_settings(**extra: object) -> Settings:
    return Settings(
        kafka_bootstrap="b1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_oauthbearer_token_endpoint_url="https://idp.example/oauth2/token",
        kafka_sasl_oauthbearer_client_id="rci-worker",
        kafka_sasl_oauthbearer_client_secret="oidc-secret",
        **extra,
    )


@pytest.fixture(scope="module")
def client_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its unencrypted key (what a team's CA would issue the service)."""
    folder = tmp_path_factory.mktemp("client-cert")
    cert, key = folder / "client.pem", folder / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rci",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    return cert, key


# --- offset reset ------------------------------------------------------------------------------------
def test_consumers_start_where_the_setting_says_unless_the_caller_insists() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1")
    assert consumer_config(settings, "g")["auto.offset.reset"] == "latest"
    earliest = settings.model_copy(update={"kafka_auto_offset_reset": "earliest"})
    assert consumer_config(earliest, "g")["auto.offset.reset"] == "earliest"
    assert consumer_config(settings, "g", auto_offset_reset="earliest")["auto.offset.reset"] == "earliest"  # read-backs


def test_the_worker_group_starts_where_the_setting_says(tmp_path: Path) -> None:
    from rci.streams.worker import build_app

    async def never() -> None:
        raise AssertionError("not started")

    for reset in ("latest", "earliest"):
        settings = Settings(data_dir=tmp_path, kafka_auto_offset_reset=reset)
        app, _ = build_app(settings, never)
        assert app.conf.consumer_auto_offset_reset == reset


# --- mutual TLS --------------------------------------------------------------------------------------
def test_client_certificate_reaches_both_clients(client_pem: tuple[Path, Path]) -> None:
    cert, key = client_pem
    settings = Settings(kafka_bootstrap="b1:9093", kafka_security_protocol="SSL", kafka_ssl_certfile=cert,
                        kafka_ssl_keyfile=key)  # fmt: skip
    config = client_config(settings)
    assert (config["ssl.certificate.location"], config["ssl.key.location"]) == (str(cert), str(key))
    assert "ssl.key.password" not in config
    credentials = faust_broker_kwargs(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.check_hostname  # the broker's name is checked unless told otherwise


def test_an_unreadable_client_key_stops_the_worker_naming_the_settings(tmp_path: Path, client_pem) -> None:
    cert, _ = client_pem
    (tmp_path / "bad.key").write_text("not a key")
    settings = Settings(kafka_bootstrap="b1:9093", kafka_security_protocol="SSL", kafka_ssl_certfile=cert,
                        kafka_ssl_keyfile=tmp_path / "bad.key")  # fmt: skip
    with pytest.raises(ConfigError, match="RCI_KAFKA_SSL_CERTFILE / RCI_KAFKA_SSL_KEYFILE"):
        faust_broker_kwargs(settings)


# --- OAUTHBEARER -------------------------------------------------------------------------------------
def test_oauthbearer_is_librdkafkas_oidc_for_confluent_clients() -> None:
    config = client_config(_oidc_settings(kafka_sasl_oauthbearer_scope="kafka"))
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    assert config["sasl.oauthbearer.method"] == "oidc"
    assert config["sasl.oauthbearer.token.endpoint.url"] == "https://idp.example/oauth2/token"
    assert (config["sasl.oauthbearer.client.id"], config["sasl.oauthbearer.client.secret"]) == ("rci-worker", "oidc-secret")
    assert config["sasl.oauthbearer.scope"] == "kafka"
    assert not {"sasl.username", "sasl.password"} & config.keys()


def test_oauthbearer_gives_the_faust_worker_a_token_provider() -> None:
    credentials = faust_broker_kwargs(_oidc_settings())["broker_credentials"]
    assert isinstance(credentials, faust.OAuthCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "OAUTHBEARER"
    assert isinstance(credentials.oauth_cb, OidcTokenProvider)


class _TokenEndpoint(BaseHTTPRequestHandler):
    requests: list[dict] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).requests.append({"authorization": self.headers["Authorization"], "form": parse_qs(body)})
        payload = json.dumps({"access_token": f"token-{len(self.requests)}", "token_type": "Bearer", "expires_in": 3600})
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def token_endpoint() -> Iterator[tuple[str, type[_TokenEndpoint]]]:
    handler = type("Endpoint", (_TokenEndpoint,), {"requests": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/token", handler
    finally:
        server.shutdown()
        server.server_close()


def test_token_provider_uses_client_credentials_and_reuses_the_token(token_endpoint) -> None:
    url, endpoint = token_endpoint
    provider = OidcTokenProvider(url, "rci-worker", "s3cr:et", scope="kafka")

    async def twice() -> list[str]:
        return [await provider.token(), await provider.token()]

    assert asyncio.run(twice()) == ["token-1", "token-1"]  # one request: the token lives an hour
    (request,) = endpoint.requests
    assert request["form"] == {"grant_type": ["client_credentials"], "scope": ["kafka"]}
    assert base64.b64decode(request["authorization"].removeprefix("Basic ")).decode() == "rci-worker:s3cr%3Aet"


def test_a_refused_token_request_is_an_auth_error(token_endpoint) -> None:
    url, endpoint = token_endpoint
    endpoint.status = 401
    with pytest.raises(KafkaAuthError, match="HTTP 401"):
        OidcTokenProvider(url, "rci-worker", "wrong").fetch()


# --- RCI_KAFKA_EXTRA ---------------------------------------------------------------------------------
def test_extra_reaches_every_confluent_client_as_is_and_may_tune_project_defaults() -> None:
    extra = {"client.id": "team-rci", "socket.keepalive.enable": True, "linger.ms": 20}
    settings = Settings(kafka_bootstrap="127.0.0.1:1", kafka_extra=extra)
    assert extra.items() <= client_config(settings).items()
    make_producer(settings).flush(0)  # librdkafka accepted them


def test_extra_is_translated_for_the_faust_worker_through_the_table() -> None:
    settings = Settings(kafka_extra={"client.id": "team-rci", "session.timeout.ms": 30000, "max.poll.interval.ms": 600000,
                                     "metadata.max.age.ms": 60000, "linger.ms": 20})  # fmt: skip
    assert faust_extra_settings(settings) == {
        "broker_client_id": "team-rci",
        "broker_session_timeout": 30.0,
        "broker_max_poll_interval": 600.0,
        "consumer_metadata_max_age_ms": 60000,
        "producer_metadata_max_age_ms": 60000,
        "producer_linger": 0.02,
    }
    kwargs = faust_broker_kwargs(settings)
    app = faust.App("rci-test-translation", **kwargs, web_enabled=False)  # faust knows every translated name
    assert app.conf.broker_client_id == "team-rci" and app.conf.broker_session_timeout == 30.0


def test_every_translation_names_a_faust_setting() -> None:
    known = set(dir(faust.App("rci-test-names", web_enabled=False).conf))
    for key, (names, _) in FAUST_EQUIVALENTS.items():
        assert set(names) <= known, key


def test_a_key_the_faust_worker_cannot_honour_stops_it_naming_the_key() -> None:
    settings = Settings(kafka_extra={"statistics.interval.ms": 5000})
    with pytest.raises(ConfigError, match=r"RCI_KAFKA_EXTRA key 'statistics.interval.ms' has no equivalent"):
        check_client_config(settings)
    with pytest.raises(ConfigError, match=r"'session.timeout.ms': 'soon' is not a valid value"):
        faust_extra_settings(Settings(kafka_extra={"session.timeout.ms": "soon"}))


def test_a_key_librdkafka_does_not_know_stops_start_up_naming_the_key() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", kafka_extra={"client.id": "x", "no.such.property": 1})
    with pytest.raises(ConfigError, match=r'No such configuration property: "no.such.property".*RCI_KAFKA_EXTRA'):
        make_producer(settings)
    with pytest.raises(ConfigError, match="no.such.property"):
        make_consumer(settings, "g")


def test_tls_switches_in_extra_shape_the_workers_ssl_context() -> None:
    settings = Settings(kafka_bootstrap="b1:9093", kafka_security_protocol="SSL",
                        kafka_extra={"ssl.endpoint.identification.algorithm": "none"})  # fmt: skip
    context = faust_broker_kwargs(settings)["broker_credentials"].context
    assert isinstance(context, ssl.SSLContext) and not context.check_hostname
    check_client_config(settings)  # librdkafka takes the same key as is


def test_extra_survives_the_trip_to_a_child_process() -> None:
    settings = Settings(kafka_auto_offset_reset="earliest", kafka_extra={"client.id": "c", "linger.ms": 5})
    env = settings_env(settings)
    assert json.loads(env["RCI_KAFKA_EXTRA"]) == {"client.id": "c", "linger.ms": 5}
    assert env["RCI_KAFKA_AUTO_OFFSET_RESET"] == "earliest"
