"""A real Apache Kafka 4.x broker (KRaft, broker and controller in one JVM) started from Maven jars.

No Docker: the jars come from `kafka_jars`, the JVM is a plain child process (or a detached one
for `rci services up`). Everything binds to 127.0.0.1, never `localhost`, which may resolve to IPv6.
An optional SASL_PLAINTEXT listener (PLAIN mechanism) and an optional SSL listener (PEM key and CA,
client certificates required by default), and with it an optional SASL_SSL listener (SCRAM-SHA-512 users
written into the metadata log when the storage is formatted; OAUTHBEARER too, with Kafka's unsecured JWS
validator, on request), let tests check authenticated and encrypted clients.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from rci.services.kafka_jars import cache_root_from_env, ensure_jars
from rci.services.ports import LOOPBACK, free_port, is_listening
from rci.services.process import ManagedProcess, PidRecord, ServiceError

# A dev/test broker holds little and shares a small machine with the model work: a small heap, the
# serial GC and the C1 JIT only. Measured on 2 busy cores: ready in ~13-18 s instead of ~22-32 s with
# G1 and the full tiered JIT. A production broker is not started from here (see docker-compose.yml).
DEFAULT_JVM_OPTS = (
    "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:CICompilerCount=1",
    "-Djava.awt.headless=true",
)  # fmt: skip

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


@dataclass(frozen=True)
class SaslUsers:
    """PLAIN users the SASL listener accepts; `admin` is the broker's own identity on that listener."""

    users: dict[str, str]
    admin: str = "admin"

    def jaas(self) -> str:
        accounts = " ".join(f'user_{name}="{password}"' for name, password in self.users.items())
        return (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{self.admin}" password="{self.users[self.admin]}" {accounts};'
        )


SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class BrokerTls:
    """The SSL listener's files, PEM: `keystore` holds the broker's unencrypted private key (PKCS#8)
    followed by its certificate chain; `truststore` the CA(s) client certificates are checked against."""

    keystore: Path
    truststore: Path
    client_auth: str = "required"  # required | requested | none

    def properties(self, listener: str = "ssl", client_auth: str | None = None) -> dict[str, str]:
        prefix = f"listener.name.{listener}."
        return {
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.location": str(self.keystore),
            f"{prefix}ssl.truststore.type": "PEM",
            f"{prefix}ssl.truststore.location": str(self.truststore),
            f"{prefix}ssl.client.auth": client_auth or self.client_auth,
        }


def random_cluster_id() -> str:
    """A cluster id as Kafka's StorageTool makes one (16 random bytes, base64url, no padding), without a JVM."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return text


class KafkaBroker:
    """One KRaft broker+controller. `bootstrap` is the PLAINTEXT address; `sasl_bootstrap` the SASL one."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        sasl: SaslUsers | None = None,
        sasl_port: int | None = None,
        tls: BrokerTls | None = None,
        tls_port: int | None = None,
        scram: SaslUsers | None = None,
        scram_port: int | None = None,
        unsecured_oauthbearer: bool = False,
        libs: Path | None = None,
        jvm_opts: tuple[str, ...] = DEFAULT_JVM_OPTS,
        num_partitions: int = 4,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.sasl = sasl
        self.sasl_port = (sasl_port or free_port()) if sasl else None
        self.tls = tls
        self.tls_port = (tls_port or free_port()) if tls else None
        if scram and not tls:
            raise ValueError("the SCRAM listener is SASL_SSL: it needs `tls`")
        self.scram = scram
        if unsecured_oauthbearer and not scram:
            raise ValueError("OAUTHBEARER is offered on the SASL_SSL listener: it needs `scram`")
        self.unsecured_oauthbearer = unsecured_oauthbearer
        self.scram_port = (scram_port or free_port()) if scram else None
        self.libs = libs
        self.jvm_opts = jvm_opts
        self.num_partitions = num_partitions
        self.log_path = self.data_dir / "broker.log"
        self._process: ManagedProcess | None = None

    # --- addresses ---------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"{LOOPBACK}:{self.sasl_port}" if self.sasl_port else None

    @property
    def tls_bootstrap(self) -> str | None:
        return f"{LOOPBACK}:{self.tls_port}" if self.tls_port else None

    @property
    def scram_bootstrap(self) -> str | None:
        """The SASL_SSL listener (SCRAM-SHA-512, the broker certificate of `tls`, no client certificate)."""
        return f"{LOOPBACK}:{self.scram_port}" if self.scram_port else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # --- files -------------------------------------------------------------------------------
    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    def server_properties(self) -> str:
        listeners = [f"PLAINTEXT://{self.bootstrap}", f"CONTROLLER://{LOOPBACK}:{self.controller_port}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        if self.sasl:
            listeners.append(f"SASL_PLAINTEXT://{self.sasl_bootstrap}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        if self.tls:
            listeners.append(f"SSL://{self.tls_bootstrap}")
            protocols.append("SSL:SSL")
        if self.scram:
            listeners.append(f"SASL_SSL://{self.scram_bootstrap}")
            protocols.append("SASL_SSL:SASL_SSL")
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{self.controller_port}",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(listeners),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.log_dirs),
            "num.partitions": str(self.num_partitions),
            # one node: every internal topic has a single replica
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.sasl:
            lines["sasl.enabled.mechanisms"] = "PLAIN"
            lines["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = self.sasl.jaas()
        if self.tls:
            lines.update(self.tls.properties())
        if self.scram:
            lines.update(self.tls.properties("sasl_ssl", client_auth="none"))
            lines["listener.name.sasl_ssl.sasl.enabled.mechanisms"] = SCRAM_MECHANISM
            lines[f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        if self.unsecured_oauthbearer:
            # Kafka's unsecured JWS validator (tests only): an unsigned token with `sub` and `exp` is accepted
            lines["listener.name.sasl_ssl.sasl.enabled.mechanisms"] += ",OAUTHBEARER"
            lines["listener.name.sasl_ssl.oauthbearer.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
            )
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    def _java(self, main_class: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise ServiceError("java (17+) is needed to run the Kafka broker; install a JRE (apt-get install default-jre-headless)")
        libs = self.libs or ensure_jars(cache_root_from_env())
        return [
            java, *self.jvm_opts,
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp", f"{libs}/*",  # the JVM expands the wildcard itself; no shell involved
            main_class, *args,
        ]  # fmt: skip

    def _format_storage(self) -> None:
        """Format the KRaft log dir once; a formatted one is reused (topics and offsets survive restarts)."""
        if (self.log_dirs / "meta.properties").exists():
            return
        command = self._java(
            "kafka.tools.StorageTool", "format", "--standalone",
            "-t", random_cluster_id(), "-c", str(self.properties_path),
            *(arg for name, password in (self.scram.users.items() if self.scram else ())
              for arg in ("--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]")),
        )  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    # --- life cycle ----------------------------------------------------------------------------
    def start(self, detached: bool = False, timeout_s: float = 90.0) -> KafkaBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(self.server_properties())
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2)
        self._format_storage()
        self._process = ManagedProcess("kafka", self._java("kafka.Kafka", str(self.properties_path)), self.log_path)
        self._process.start(detached=detached)
        self._process.wait_ready(self.answers_metadata, timeout_s, interval_s=0.5)
        return self

    def stop(self) -> None:
        """SIGTERM (controlled shutdown), SIGKILL after 20 s."""
        if self._process:
            self._process.stop(timeout_s=20.0)

    def answers_metadata(self) -> bool:
        """True once the broker lists itself in a metadata response (it is registered and unfenced)."""
        if not is_listening(self.port):
            return False
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            return len(admin.list_topics(timeout=2).brokers) > 0
        except Exception:  # KafkaException while the broker is still starting
            return False

    def record(self) -> PidRecord:
        if self._process is None:
            raise ServiceError("kafka was never started")
        return self._process.record(self.bootstrap, controller_port=self.controller_port, data_dir=str(self.data_dir))

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
