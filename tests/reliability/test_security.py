"""Security: media only from the allowed prefixes, secrets never in logs or dead letters, Kafka
SASL through both client libraries, the metrics endpoint on loopback unless configured.

* broker-free: a property test over media URIs (hypothesis): whatever the URI, media is either
  refused with a code or read from a regular file whose real path lies inside an allowed folder;
  the metrics endpoint's bind address, with psutil;
* end to end (integration, slow): a real `rci worker` that talks to Kafka only through the
  broker's SASL/PLAIN listener (faust/aiokafka consumes, confluent-kafka produces), with the
  feature cache on S3 and a Milvus token set: it scores valid events and dead-letters records
  aimed at its own secrets (/proc/self/environ, directly and through a symlink); then no secret
  appears in its log (at DEBUG level) or in any dead letter, and its metrics endpoint listens on
  127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from benchmarks.faults import Ledger, OutputReader, judge
from rci.media.errors import MediaRejected
from rci.media.fetch import fetch_media
from rci.media.hostile import event
from rci.media.policy import MediaPolicy
from rci.core.errors import RejectCode
from rci.services.ports import free_port
from rci.core.settings import Settings
from rci.streams.metrics import WorkerMetrics, serve_metrics
from rci.streams.processes import ChildProcess

# --- media only from the allowed prefixes (broker-free) -------------------------------------------

URI_EXAMPLES = 400


@pytest.fixture(scope="module")
def media_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An allowed folder with files, sub-folders and links (in and out), a sibling and an outside folder."""
    root = tmp_path_factory.mktemp("tree")
    allowed, sibling, outside = root / "media", root / "media-private", root / "outside"
    for folder in (allowed / "sub", sibling, outside):
        folder.mkdir(parents=True)
    for folder in (allowed, allowed / "sub", sibling, outside):
        (folder / "a.mp4").write_bytes(b"\x00" * 64)
    (allowed / "in-link.mp4").symlink_to(allowed / "sub" / "a.mp4")
    (allowed / "out-link.mp4").symlink_to(outside / "a.mp4")
    (allowed / "out-dir").symlink_to(outside)
    (allowed / "up").symlink_to(root)
    (allowed / "etc").symlink_to("/etc")
    return root, allowed


segment = st.sampled_from(
    ["a.mp4", "sub", "..", ".", "", "%2e%2e", "%2E%2e", "%2F", "media", "media-private", "outside", "in-link.mp4",
     "out-link.mp4", "out-dir", "up", "etc", "passwd", "%00", "a.mp4%00.png", "~", "\\..", "a.mp4?x=1", "#f"]
)  # fmt: skip


@settings(max_examples=URI_EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scheme=st.sampled_from(["file://", "file:///", "FILE:///", "file:////", "file://localhost/", "s3://", "http://", ""]),
    base=st.sampled_from(["root", "allowed", "none"]),
    parts=st.lists(segment, max_size=6),
)
@example(scheme="file:///", base="allowed", parts=["sub", "a.mp4"])  # accepted
@example(scheme="file:///", base="allowed", parts=["in-link.mp4"])  # accepted: the link stays inside
@example(scheme="file:///", base="allowed", parts=["out-dir", "a.mp4"])
@example(scheme="file:///", base="allowed", parts=["sub", "..", "..", "outside", "a.mp4"])
def test_media_is_read_only_from_inside_an_allowed_folder(media_tree, scheme: str, base: str, parts: list[str]):
    root, allowed = media_tree
    prefix = {"root": str(root).lstrip("/") + "/", "allowed": str(allowed).lstrip("/") + "/", "none": ""}[base]
    uri = scheme + prefix + "/".join(parts)
    policy = MediaPolicy(allowed_prefixes=(allowed.as_uri() + "/",), max_bytes=1024)
    try:
        source = asyncio.run(fetch_media(uri, policy))
    except MediaRejected as rejection:
        assert rejection.code in (RejectCode.MEDIA_SCHEME_NOT_ALLOWED, RejectCode.MEDIA_NOT_ALLOWED,
                                  RejectCode.MEDIA_NOT_FOUND)  # fmt: skip
        return
    real = Path(os.path.realpath(source))
    assert real.is_relative_to(os.path.realpath(allowed)) and real.is_file(), (uri, real)


# --- the metrics endpoint ----------------------------------------------------------------------------


def _listening(pid: int, port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}  # fmt: skip


@pytest.mark.parametrize(("configured", "bound"), [(None, {"127.0.0.1"}), ("0.0.0.0", {"0.0.0.0"})])
def test_metrics_endpoint_binds_loopback_unless_configured(configured: str | None, bound: set[str]):
    settings = Settings(metrics_port=free_port()) if configured is None else Settings(
        metrics_host=configured, metrics_port=free_port())  # fmt: skip
    server = serve_metrics(WorkerMetrics(), settings.metrics_host, settings.metrics_port)
    try:
        assert _listening(os.getpid(), settings.metrics_port) == bound
    finally:
        server.shutdown()
        server.server_close()


# --- the worker over SASL, and where its secrets go --------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_worker_over_sasl_keeps_its_secrets(worker_settings: Settings, kafka_broker, clips: list[Path], tmp_path: Path):
    secrets = {
        "sasl": kafka_broker.sasl.users["rci"],
        "s3": f"s3-secret-{uuid.uuid4().hex}",
        "milvus": f"milvus-token-{uuid.uuid4().hex}",
    }
    metrics_port = free_port()
    settings = worker_settings.model_copy(update={
        "kafka_bootstrap": kafka_broker.sasl_bootstrap,  # the SASL_PLAINTEXT listener only
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "PLAIN",
        "kafka_sasl_username": "rci",
        "kafka_sasl_password": SecretStr(secrets["sasl"]),
        "object_store": "s3",  # the feature cache signs its requests with the secret key
        "s3_secret_access_key": SecretStr(secrets["s3"]),
        "milvus_token": SecretStr(secrets["milvus"]),
        "metrics_port": metrics_port,
        "log_level": "DEBUG",
    })  # fmt: skip
    media = settings.media_dir
    media.mkdir(parents=True, exist_ok=True)
    for clip in clips[:3]:
        (media / clip.name).write_bytes(clip.read_bytes())
    (media / "environ.mp4").symlink_to("/proc/self/environ")
    ledger = Ledger()
    valid = [ledger.add_valid(*_encoded(event(f"sasl-{i}", (media / c.name).as_uri(), second=i)))
             for i, c in enumerate(clips[:3])]  # fmt: skip
    aimed = {  # records aimed at the worker's secrets, and the code each must get
        "environ": ("file:///proc/self/environ", RejectCode.MEDIA_NOT_ALLOWED),
        "environ-link": ((media / "environ.mp4").as_uri(), RejectCode.MEDIA_NOT_ALLOWED),
        "cmdline": (f"{media.as_uri()}/../../../../proc/self/cmdline", RejectCode.MEDIA_NOT_ALLOWED),
        "metadata": ("http://169.254.169.254/latest/meta-data/iam/", RejectCode.SCHEMA_VIOLATION),
    }
    hostile = []
    for name, (uri, code) in aimed.items():
        key, value = _encoded(event(f"aim-{name}", uri))
        ledger.hostile[(key, value)] = code
        hostile.append((key, value))
    _produce(settings, valid + hostile)  # over SASL too

    worker = ChildProcess("worker", settings, tmp_path / "worker.log")
    reader = OutputReader(settings)  # confluent-kafka over SASL
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and worker.alive() and not reader.done(ledger):
            reader.poll(1.0)
        listening = _listening(worker.pid, metrics_port) if worker.alive() else set()
        alive = worker.alive()
    finally:
        code = worker.stop()
        reader.close()
    verdict = judge(ledger, reader.scores, reader.dead)
    assert alive, f"worker died (exit {code}):\n{worker.log_tail()}"
    assert verdict.ok, (verdict.summary(), verdict.hostile_wrong_code, worker.log_tail())
    assert listening == {"127.0.0.1"}

    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "worker ready" in worker_log and worker_log.count('"dead-lettered"') == len(aimed)  # the log was read
    assert "Sending username and password in the clear" in worker_log  # aiokafka's own SASL/PLAIN warning
    letters = [letter.model_dump_json() + base64.b64decode(letter.original).decode(errors="replace")
               for _, letter in reader.dead]  # fmt: skip
    for name, secret in secrets.items():
        assert secret not in worker_log, f"{name} secret in the worker log"
        assert not any(secret in text for text in letters), f"{name} secret in a dead letter"


def _encoded(payload: dict) -> tuple[bytes, bytes]:
    return payload["video_id"].encode(), json.dumps(payload).encode()


def _produce(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    from rci.streams.kafka import make_producer

    producer = make_producer(settings)
    for key, value in records:
        producer.produce(settings.topic_published, key=key, value=value)
    assert producer.flush(60) == 0
