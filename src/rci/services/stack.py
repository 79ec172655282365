"""The whole local stack: Kafka broker, S3 server, Milvus Lite server, topics and buckets.

Two ways to own it:
* `LocalStack` (tests, the demo): a context manager; the services are child processes on free
  ports and stop with it.
* `rci services up|down|status`: the same services detached, found again through pid files under
  `<data_dir>/services/`, with their `RCI_*` variables written to `<data_dir>/services.env`.

Milvus Lite runs as a gRPC server (rci.services.milvus_server) over `<data_dir>/milvus.db`, so the
several workers of one consumer group share it; a lone `rci worker` outside the stack may instead
open a Milvus Lite path itself (the settings' default). `milvus="server"` runs a real Milvus
standalone server over `<data_dir>/milvus-server/` instead (the `milvus` wheel's binary).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pydantic import SecretStr

from rci.core.logs import get_logger
from rci.services.kafka_broker import KafkaBroker
from rci.services.kafka_jars import cache_root_from_env, ensure_jars
from rci.services.milvus_server import MilvusLiteServer, MilvusStandaloneServer
from rci.services.ports import LOOPBACK, is_listening, preferred_or_free
from rci.services.process import PidRecord, stop_recorded
from rci.services.s3server import S3Server, ensure_bucket
from rci.core.settings import Settings, env_name
from rci.streams.kafka import ensure_topics

log = get_logger(__name__)

MEDIA_BUCKET = "rci-media"
FEATURE_BUCKET = "rci-features"
DEFAULT_KAFKA_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_S3_PORT = 9000
DEFAULT_MILVUS_PORT = 19530
MILVUS_KINDS = ("lite", "server")  # Milvus Lite over gRPC (default) or a real Milvus standalone server


@dataclass(frozen=True)
class StackEndpoints:
    """Where a running stack's services answer; the same shape for the local and the compose stack."""

    data_dir: Path
    kafka_bootstrap: str
    s3_endpoint_url: str
    s3_access_key_id: str
    s3_secret_access_key: str
    milvus_uri: str
    media_bucket: str = MEDIA_BUCKET
    feature_bucket: str = FEATURE_BUCKET

    def fields(self) -> dict[str, object]:
        """Settings fields (typed values) that point a process at this stack."""
        media_dir = (self.data_dir / "media").absolute()
        return {
            "data_dir": self.data_dir.absolute(),
            "kafka_bootstrap": self.kafka_bootstrap,
            # A dev stack's broker is fresh: a worker group started after the first events still reads
            # them (a real cluster's default is latest, RCI_KAFKA_AUTO_OFFSET_RESET).
            "kafka_auto_offset_reset": "earliest",
            "milvus_uri": self.milvus_uri,
            "object_store": "s3",
            "s3_endpoint_url": self.s3_endpoint_url,
            "s3_access_key_id": SecretStr(self.s3_access_key_id),
            "s3_secret_access_key": SecretStr(self.s3_secret_access_key),
            "s3_bucket": self.feature_bucket,
            "media_allowed_prefixes": (f"{media_dir.as_uri()}/", f"s3://{self.media_bucket}/"),
        }

    def settings(self, base: Settings, **overrides: object) -> Settings:
        """`base` (topic names, models, ...) pointed at this stack. `overrides` must be typed values."""
        return base.model_copy(update={**self.fields(), **overrides})

    def env(self) -> dict[str, str]:
        """The `RCI_*` variables for a process that should use this stack."""
        return {env_name(name): _env_value(value) for name, value in self.fields().items()}

    def write_env_file(self, path: Path) -> Path:
        """`export RCI_...=...` lines, for `source`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env().items()))
        return path


def _env_value(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def services_dir(data_dir: Path) -> Path:
    return data_dir.absolute() / "services"


def env_file(data_dir: Path) -> Path:
    return data_dir.absolute() / "services.env"


def prepare_stack(endpoints: StackEndpoints, settings: Settings, partitions: int) -> dict[str, str]:
    """Create what the service expects on a running stack: topics, buckets, local directories."""
    configured = endpoints.settings(settings)
    topics = ensure_topics(configured, partitions=partitions)
    for bucket in (endpoints.media_bucket, endpoints.feature_bucket):
        ensure_bucket(endpoints.s3_endpoint_url, endpoints.s3_access_key_id, endpoints.s3_secret_access_key, bucket)
    configured.media_dir.mkdir(parents=True, exist_ok=True)
    if "://" not in endpoints.milvus_uri:  # a Milvus Lite file: its folder must exist
        Path(endpoints.milvus_uri).parent.mkdir(parents=True, exist_ok=True)
    return topics


class LocalStack:
    """Kafka + S3 server + Milvus (Lite over gRPC, or `milvus="server"`: a Milvus standalone server) under
    `data_dir`; ports are free ones unless given.

    `settings` supplies topic names and partitions; `.settings()` returns it pointed at the stack.
    """

    def __init__(
        self,
        data_dir: Path,
        settings: Settings,
        kafka_port: int | None = None,
        controller_port: int | None = None,
        s3_port: int | None = None,
        milvus_port: int | None = None,
        partitions: int | None = None,
        milvus: str = "lite",
    ) -> None:
        if milvus not in MILVUS_KINDS:
            raise ValueError(f"milvus must be one of {MILVUS_KINDS}, got {milvus!r}")
        self.data_dir = data_dir.absolute()
        self.base_settings = settings
        self.partitions = partitions or self.base_settings.topic_partitions
        state = services_dir(self.data_dir)
        self.kafka = KafkaBroker(
            state / "kafka", port=kafka_port, controller_port=controller_port, libs=ensure_jars(cache_root_from_env())
        )
        self.s3 = S3Server(port=s3_port, log_path=state / "s3.log")
        self.milvus: MilvusLiteServer | MilvusStandaloneServer
        if milvus == "server":
            self.milvus = MilvusStandaloneServer(self.data_dir / "milvus-server", port=milvus_port, log_path=state / "milvus.log")
        else:
            self.milvus = MilvusLiteServer(self.data_dir / "milvus.db", port=milvus_port, log_path=state / "milvus.log")
        self.topics: dict[str, str] = {}

    @property
    def endpoints(self) -> StackEndpoints:
        return StackEndpoints(
            data_dir=self.data_dir,
            kafka_bootstrap=self.kafka.bootstrap,
            s3_endpoint_url=self.s3.endpoint_url,
            s3_access_key_id=self.s3.access_key,
            s3_secret_access_key=self.s3.secret_key,
            milvus_uri=self.milvus.uri,
        )

    def settings(self, **overrides: object) -> Settings:
        """The base settings (topic names, models, ...) pointed at this stack."""
        return self.endpoints.settings(self.base_settings, **overrides)

    def start(self, detached: bool = False) -> LocalStack:
        try:
            self.kafka.start(detached=detached)
            self.s3.start(detached=detached)
            self.milvus.start(detached=detached)
            self.topics = prepare_stack(self.endpoints, self.base_settings, self.partitions)
        except BaseException:
            self.stop()
            raise
        if detached:
            self.kafka.record().write(services_dir(self.data_dir) / "kafka.json")
            self.s3.record().write(services_dir(self.data_dir) / "s3.json")
            self.milvus.record().write(services_dir(self.data_dir) / "milvus.json")
            self.endpoints.write_env_file(env_file(self.data_dir))
        return self

    def stop(self) -> None:
        self.milvus.stop()
        self.s3.stop()
        self.kafka.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


# --- detached stacks (rci services up/down/status) -------------------------------------------------
SERVICE_NAMES = ("kafka", "s3", "milvus")


def detached_stack(
    data_dir: Path, settings: Settings, kafka_port: int | None, s3_port: int | None, milvus_port: int | None = None,
    milvus: str = "lite",
) -> LocalStack:
    """A LocalStack on the usual ports (9092/9093, 9000, 19530) unless those are taken or others are given."""
    return LocalStack(
        data_dir,
        settings,
        kafka_port=kafka_port or preferred_or_free(DEFAULT_KAFKA_PORT),
        controller_port=preferred_or_free(DEFAULT_CONTROLLER_PORT),
        s3_port=s3_port or preferred_or_free(DEFAULT_S3_PORT),
        milvus_port=milvus_port or preferred_or_free(DEFAULT_MILVUS_PORT),
        milvus=milvus,
    )


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    endpoint: str
    detail: str


def recorded(data_dir: Path) -> dict[str, PidRecord]:
    """Pid records of the detached services under `data_dir` (whether or not they still run)."""
    records = {}
    for name in SERVICE_NAMES:
        record = PidRecord.read(services_dir(data_dir) / f"{name}.json")
        if record is not None:
            records[name] = record
    return records


def stack_status(data_dir: Path) -> list[ServiceStatus]:
    records = recorded(data_dir)
    rows = []
    for name in SERVICE_NAMES:
        record = records.get(name)
        if record is None:
            rows.append(ServiceStatus(name, False, None, "-", "not started"))
            continue
        alive = record.is_alive()
        port = int(record.endpoint.rsplit(":", 1)[1])
        answering = alive and is_listening(port, LOOPBACK)
        detail = f"log: {record.log_path}" if answering else ("starting or stuck" if alive else "stopped")
        rows.append(ServiceStatus(name, answering, record.pid if alive else None, record.endpoint, detail))
    return rows


def stop_detached(data_dir: Path) -> dict[str, bool]:
    """Stop the services `rci services up` started; returns name -> whether it was running."""
    stopped = {}
    for name, record in recorded(data_dir).items():
        stopped[name] = stop_recorded(record, timeout_s=20.0)
        (services_dir(data_dir) / f"{name}.json").unlink(missing_ok=True)
        log.info("service.down", service=name, was_running=stopped[name])
    return stopped
