"""`rci worker` at start-up, as an operator runs it (issue 15): a configuration fault exits 2 with one
message naming the setting, before the broker is even contacted; SIGTERM during an object-store
outage at start-up ends the retries within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from rci.services.kafka_broker import KafkaBroker
from rci.services.ports import free_port
from rci.services.s3server import S3Server
from tests.streams.test_preflight import fake_model_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RCI = str(Path(sys.executable).parent / "rci")


def worker_env(tmp_path: Path, **rci: str) -> dict[str, str]:
    """The caller's environment without RCI_* or AWS credentials, plus `rci`. The broker address
    is a closed port: a worker that got as far as Kafka would hang or fail differently."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCI_", "AWS_")) or k == "RCI_CACHE_DIR"}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent"), "AWS_CONFIG_FILE": str(tmp_path / "absent"),
            "AWS_EC2_METADATA_DISABLED": "true", "HF_HUB_OFFLINE": "1",
            "RCI_DATA_DIR": str(tmp_path / "rci"), "RCI_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "RCI_METRICS_PORT": "0", "RCI_LOG_FORMAT": "json"}
    return env | {f"RCI_{k.upper()}": v for k, v in rci.items()}


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def sigterm_once_logged(env: dict[str, str], log: Path, line: str, times: int,
                        before_sigterm: Callable[[], object] = lambda: None) -> tuple[int, float]:
    """Start `rci worker`, wait (120 s at most) until `line` is in its log `times` times, call
    `before_sigterm`, send SIGTERM: (exit code, seconds from SIGTERM to exit)."""
    with open(log, "w") as out:
        worker = subprocess.Popen([RCI, "worker"], stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while log.read_text().count(line) < times:
                assert worker.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            before_sigterm()
            worker.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            returncode = worker.wait(timeout=30)
            return returncode, time.monotonic() - sent
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def run_worker(env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([RCI, "worker"], capture_output=True, text=True, timeout=timeout, env=env)


def test_a_model_dir_without_models_exits_2_naming_rci_model_dir(tmp_path: Path) -> None:
    done = run_worker(worker_env(tmp_path, model_dir=str(tmp_path / "no-models")))
    assert done.returncode == 2, done.stderr[-3000:]
    assert "rci worker cannot start: RCI_MODEL_DIR=" in done.stderr and "Traceback" not in done.stderr


def test_s3_without_credentials_exits_2_naming_the_settings(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = f"rci-cli-{uuid.uuid4().hex[:8]}"
    s3_server.create_bucket(bucket)
    env = worker_env(tmp_path, model_dir=str(fake_model_dir(tmp_path / "models")), object_store="s3",
                     s3_endpoint_url=s3_server.endpoint_url, s3_bucket=bucket)
    started = time.monotonic()
    done = run_worker(env)
    assert done.returncode == 2, done.stderr[-3000:]
    assert time.monotonic() - started < 60  # was: "Unable to locate credentials" retried for minutes
    assert "RCI_S3_ACCESS_KEY_ID and RCI_S3_SECRET_ACCESS_KEY" in done.stderr and "Traceback" not in done.stderr


def test_sigterm_during_start_up_retries_exits_within_seconds(tmp_path: Path) -> None:
    env = worker_env(tmp_path, model_dir=str(fake_model_dir(tmp_path / "models")), object_store="s3",
                     s3_endpoint_url=f"http://127.0.0.1:{free_port()}", s3_bucket="rci-features",
                     s3_access_key_id="test", s3_secret_access_key="test")
    log = tmp_path / "worker.log"
    returncode, waited = sigterm_once_logged(env, log, "transient failure, retrying", times=2)  # outage retried
    assert returncode == 0, log.read_text()[-3000:]
    assert waited < 5.0, waited
    assert "stopped during the start-up check" in log.read_text()


def test_a_kafka_extra_key_the_worker_cannot_honour_exits_2_naming_it(tmp_path: Path) -> None:
    env = worker_env(tmp_path, model_dir=str(fake_model_dir(tmp_path / "models")),
                     kafka_extra='{"client.id": "rci", "statistics.interval.ms": 5000}')  # librdkafka only
    done = run_worker(env, timeout=60)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "rci worker cannot start: RCI_KAFKA_EXTRA key 'statistics.interval.ms'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_model_that_is_there_but_corrupt_exits_2_naming_it(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """The start-up check only looks for the files; an empty MatchLite ONNX file fails when the agent
    loads it, on the real broker. faust alone would log the crashed agent and keep the process up in
    the group, holding partitions it never scores (issue 15: corrupt model files exit 2)."""
    env = worker_env(tmp_path, model_dir=str(fake_model_dir(tmp_path / "models")),
                     kafka_bootstrap=kafka_broker.bootstrap, milvus_uri=str(tmp_path / "milvus.db"),
                     topic_published=f"video.published.{uuid.uuid4().hex[:8]}")  # fmt: skip
    done = run_worker(env, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "worker cannot start" in output and "encoder" in output, output[-3000:]


def test_no_broker_at_start_up_is_an_outage_retried_until_sigterm(tmp_path: Path) -> None:
    """No broker answering is infrastructure, not configuration: retried with backoff (each try logged),
    never exited on (before: faust gave up after about 20 s and the worker exited 1)."""
    port = free_port()
    env = worker_env(tmp_path, model_dir=str(fake_model_dir(tmp_path / "models")), metrics_port=str(port))  # broker port closed
    log = tmp_path / "worker.log"
    statuses = []  # alive, not ready, while it retries
    returncode, waited = sigterm_once_logged(env, log, "start-up check: Kafka broker", times=4, before_sigterm=lambda: (
        statuses.extend([http_status(port, "/metrics"), http_status(port, "/ready")])))
    assert statuses == [200, 503], statuses
    assert returncode == 0, log.read_text()[-3000:]
    assert waited < 10.0, waited  # at most one metadata request (5 s) still in flight
    assert "stopped during the start-up check" in log.read_text()


def test_a_broker_refusing_the_credentials_exits_2_naming_the_settings(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    env = worker_env(tmp_path, model_dir=str(fake_model_dir(tmp_path / "models")),
                     kafka_bootstrap=kafka_broker.sasl_bootstrap, kafka_security_protocol="SASL_PLAINTEXT",
                     kafka_sasl_mechanism="PLAIN", kafka_sasl_username="rci", kafka_sasl_password="wrong")  # fmt: skip
    done = run_worker(env, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "refused the credentials" in done.stderr and "RCI_KAFKA_SASL_*" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
