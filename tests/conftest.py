"""Session-wide fixtures: real local services, started once per test session.

Nothing here is mocked:
* `kafka_broker`: Apache Kafka 4.x (KRaft) from Maven jars, a JVM child process on free ports;
* `s3_server`: an S3-compatible HTTP server (moto's standalone server) in a subprocess;
* `milvus_uri`: a Milvus Lite database path (embedded: opened by the one process using it);
* `milvus_server`: Milvus Lite served over gRPC, for tests with several processes (as `rci services up`);
* `milvus_standalone`: a real Milvus standalone server (the `milvus` wheel's binary), for what only a server does;
* `trained_model_dir`: the models `rci demo` serves, trained once per session on their own corpus.

`rci_settings` ties them together per test, with topics of its own so tests never read each
other's records. Services start lazily: a test that asks for none of them starts nothing.

`stack` / `stack_settings` run the same scenario against two stacks: `local` (the processes above,
Milvus Lite server) and `compose` (docker-compose.yml through testcontainers: Kafka, MinIO, Milvus
standalone), which is skipped with its reason when no Docker engine is reachable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rci.services.kafka_broker import KafkaBroker, SaslUsers
from rci.services.kafka_jars import cache_root_from_env, ensure_jars
from rci.services.milvus_server import MilvusLiteServer, MilvusStandaloneServer, standalone_problem
from rci.services.s3server import S3Server
from rci.services.stack import StackEndpoints, prepare_stack
from rci.core.settings import Settings
from rci.streams.kafka import ensure_topics


SASL_USERS = SaslUsers({"admin": "admin-secret", "rci": "rci-secret"})


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A running broker: `.bootstrap` ("127.0.0.1:<port>", PLAINTEXT), `.sasl_bootstrap` (SASL_PLAINTEXT,
    PLAIN users in `.sasl.users`, e.g. rci/rci-secret), `.data_dir`, `.log_path`."""
    libs = ensure_jars(cache_root_from_env())
    with KafkaBroker(tmp_path_factory.mktemp("kafka"), sasl=SASL_USERS, libs=libs) as broker:
        yield broker


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A running S3 server: `.endpoint_url`, `.access_key`, `.secret_key`, `.region`."""
    with S3Server(log_path=tmp_path_factory.mktemp("s3server") / "s3server.log") as server:
        yield server


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLiteServer]:
    """Milvus Lite served over gRPC (`.uri`), as `rci services up` runs it for a consumer group.
    Tests share it: give each test its own collection (`rci_settings` does)."""
    data_dir = tmp_path_factory.mktemp("milvus-server")
    with MilvusLiteServer(data_dir / "milvus.db", log_path=data_dir / "milvus.log") as server:
        yield server


@pytest.fixture(scope="session")
def milvus_standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusStandaloneServer]:
    """A real Milvus 2.3.5 standalone server (`.uri`), started once per session by the first test that asks
    (a few seconds; the binary is unpacked once into the cache). Skipped, with the reason, only where the
    binary cannot run (not Linux x86_64, or the `milvus` wheel not installed). Tests share it: give each
    test its own collection."""
    problem = standalone_problem()
    if problem:
        pytest.skip(f"no Milvus standalone server: {problem}")
    data_dir = tmp_path_factory.mktemp("milvus-standalone")
    with MilvusStandaloneServer(data_dir, log_path=data_dir / "milvus.log") as server:
        yield server


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `rci demo` trains and serves (SSCD visual encoder, MatchLite V+A+T, threshold at 80%
    precision on val, ONNX), trained once per session on a generated corpus: several CPU minutes.
    Tests that need scores that mean something use it (the demo test, the end-to-end AUC).
    RCI_TEST_TRAINED_MODELS=<dir> keeps them between runs (reused only while their inputs match)."""
    from rci.media.policy import media_policy
    from rci.cli.demo import prepare_models

    keep = os.environ.get("RCI_TEST_TRAINED_MODELS")  # a developer's reuse between runs; CI trains afresh
    model_dir = Path(keep) if keep else tmp_path_factory.mktemp("trained-models")
    prepare_models(model_dir, media_policy(Settings()), progress=False)  # retrains whatever is stale
    return model_dir


@pytest.fixture
def milvus_uri(tmp_path: Path) -> str:
    """A fresh Milvus Lite database file path (the file is created by the first MilvusClient)."""
    return str(tmp_path / "milvus.db")


@pytest.fixture
def rci_settings(kafka_broker: KafkaBroker, s3_server: S3Server, milvus_uri: str, tmp_path: Path) -> Settings:
    """Settings wired to the session's broker and S3 server, with this test's own five topics
    (created, `topic_partitions` partitions each) and its own S3 bucket. `object_store` stays
    `local`; use `rci_settings.model_copy(update={"object_store": "s3"})` for the S3 backend."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        data_dir=tmp_path / "rci",
        kafka_bootstrap=kafka_broker.bootstrap,
        kafka_auto_offset_reset="earliest",  # workers and read-backs start after the records are published
        **_own_names(suffix),
        milvus_uri=milvus_uri,
        milvus_collection=f"rci_videos_{suffix}",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id=s3_server.access_key,
        s3_secret_access_key=s3_server.secret_key,
        s3_region=s3_server.region,
        s3_bucket=f"rci-features-{suffix}",
        metrics_port=0,
    )
    ensure_topics(settings)
    s3_server.create_bucket(settings.s3_bucket)
    return settings


@pytest.fixture(autouse=True)
def _scheduling_policy_unchanged() -> Iterator[None]:
    """Fail the test that leaves the test process at another scheduling policy, and restore it.

    The session's later children (broker, servers, `rci worker`) inherit it: at real-time priority one
    busy child starves the Kafka broker and the suite stalls instead of failing (libsvtav1 does this when
    run as root; tests/media/mediafactory.py's `scheduling_kept` is the fix where a test encodes)."""
    before = (os.sched_getscheduler(0), os.sched_getparam(0))
    yield
    after = (os.sched_getscheduler(0), os.sched_getparam(0))
    if after != before:
        os.sched_setscheduler(0, *before)
        pytest.fail(f"the test changed this process's scheduling policy from {before} to {after} (restored)")


def _own_names(suffix: str) -> dict[str, str]:
    """Topic and group names private to one test."""
    return {
        "topic_published": f"video.published.{suffix}",
        "topic_scores": f"rci.scores.{suffix}",
        "topic_dlq": f"video.published.dlq.{suffix}",
        "topic_shadow": f"rci.shadow.{suffix}",
        "topic_reviews": f"rci.reviews.{suffix}",
        "worker_group": f"rci-worker-{suffix}",
        "shadow_group": f"rci-shadow-{suffix}",
    }


# --- the same scenarios on the local stack and on docker-compose ------------------------------------
ROOT = Path(__file__).resolve().parents[1]
COMPOSE_INFRA = ["kafka", "minio", "etcd", "milvus"]  # the rci containers are what tests run themselves


def docker_compose_problem(timeout_s: float = 10.0) -> str | None:
    """Why docker-compose cannot run here, or None when a Docker engine and compose v2 answer."""
    if shutil.which("docker") is None:
        return "docker CLI not installed"
    for command in (["docker", "info", "--format", "{{.ServerVersion}}"], ["docker", "compose", "version"]):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(command)}` timed out"
        if result.returncode != 0:
            reason = (result.stderr or result.stdout).strip().splitlines()
            return f"`{' '.join(command)}` failed: {reason[-1] if reason else result.returncode}"
    return None


@pytest.fixture(scope="session", params=["local", pytest.param("compose", marks=pytest.mark.compose)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackEndpoints]:
    """Endpoints of a running stack (see module docstring). Topics and buckets: `stack_settings`."""
    data_dir = tmp_path_factory.mktemp(f"stack-{request.param}")
    if request.param == "local":
        kafka: KafkaBroker = request.getfixturevalue("kafka_broker")
        s3: S3Server = request.getfixturevalue("s3_server")
        milvus: MilvusLiteServer = request.getfixturevalue("milvus_server")
        yield StackEndpoints(data_dir, kafka.bootstrap, s3.endpoint_url, s3.access_key, s3.secret_key,
                             milvus_uri=milvus.uri)  # fmt: skip
        return
    problem = docker_compose_problem()
    if problem:
        pytest.skip(f"no docker-compose stack: {problem}")
    from testcontainers.compose import DockerCompose

    with DockerCompose(ROOT, compose_file_name="docker-compose.yml", services=COMPOSE_INFRA, wait=True):
        # Host-side addresses published by docker-compose.yml (credentials are its defaults).
        yield StackEndpoints(data_dir, "127.0.0.1:29092", "http://127.0.0.1:9000", "minioadmin", "minioadmin",
                             milvus_uri="http://127.0.0.1:19530")  # fmt: skip


@pytest.fixture
def stack_settings(stack: StackEndpoints, tmp_path: Path) -> Settings:
    """Settings on `stack` with this test's own topics, Milvus collection and data dir."""
    suffix = uuid.uuid4().hex[:8]
    base = Settings(data_dir=tmp_path / "rci", milvus_collection=f"rci_videos_{suffix}", metrics_port=0,
                    **_own_names(suffix))  # fmt: skip
    endpoints = StackEndpoints(
        base.data_dir, stack.kafka_bootstrap, stack.s3_endpoint_url, stack.s3_access_key_id,
        stack.s3_secret_access_key, milvus_uri=stack.milvus_uri,
    )  # fmt: skip
    prepare_stack(endpoints, base, partitions=base.topic_partitions)
    return endpoints.settings(base)
