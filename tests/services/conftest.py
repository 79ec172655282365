"""A real Kafka broker with TLS and SASL listeners, shared by the security tests and the existing-cluster
acceptance test: an SSL listener that requires client certificates (mutual TLS) and a SASL_SSL listener
with SCRAM-SHA-512 users and OAUTHBEARER (Kafka's unsecured JWS validator). Certificates are made here with
openssl: a throwaway CA, a broker and a client certificate."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rci.services.kafka_broker import BrokerTls, KafkaBroker, SaslUsers
from rci.services.kafka_jars import cache_root_from_env, ensure_jars

SCRAM_USERS = SaslUsers({"admin": "admin-scram-secret", "rci": "rci-scram-secret"})


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _issue(folder: Path, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
    """A key and a certificate signed by the CA in `folder`."""
    key, csr, cert, ext = (folder / f"{name}.{s}" for s in ("key", "csr", "pem", "ext"))
    ext.write_text(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", subject)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(folder / "ca.pem"), "-CAkey", str(folder / "ca.key"),
             "-CAcreateserial", "-days", "1", "-out", str(cert), "-extfile", str(ext))  # fmt: skip
    return cert, key


@pytest.fixture(scope="package")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rci-test-ca",
             "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem"),
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    cert, key = _issue(folder, "broker", "/CN=127.0.0.1",
                       "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")  # fmt: skip
    (folder / "broker-keystore.pem").write_text(key.read_text() + cert.read_text())  # Kafka's PEM keystore: key, then chain
    _issue(folder, "client", "/CN=rci-worker", "extendedKeyUsage=clientAuth\n")
    return folder


@pytest.fixture(scope="package")
def tls_broker(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    tls = BrokerTls(keystore=pki / "broker-keystore.pem", truststore=pki / "ca.pem")
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-tls"), tls=tls, scram=SCRAM_USERS, unsecured_oauthbearer=True,
                         libs=ensure_jars(cache_root_from_env()))  # fmt: skip
    with broker:
        yield broker
