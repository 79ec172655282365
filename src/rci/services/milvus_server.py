"""Milvus Lite served over gRPC, so several worker processes share one vector store.

An embedded Milvus Lite database (a local path as `RCI_MILVUS_URI`) is locked by the one process
that opens it: right for a single `rci worker`, wrong for a consumer group of several. The local
stack therefore runs Milvus Lite's own gRPC server (`milvus_lite.adapter.grpc.server`) as a
service, and the workers connect to `http://127.0.0.1:<port>` exactly as they would to a Milvus
standalone server (docker-compose).

The server runs with one request thread: Milvus Lite's engine is single-writer per collection,
so concurrent upserts from several workers are serialised here rather than interleaved.

Run directly: `python -m rci.services.milvus_server --data-dir DIR --port PORT`; SIGTERM closes
the database cleanly (Milvus Lite only handles Ctrl-C itself).

`MilvusStandaloneServer` is the other local option: a real Milvus server (2.3.5 standalone: embedded
etcd, RocksMQ, local storage), the binary the `milvus` wheel ships (the dev extra installs it; Linux
x86_64). It speaks the same protocol as the docker-compose Milvus, VARCHARs counted in bytes, HNSW
built by knowhere, so the tests can check what only a server does without Docker
(`rci services up --milvus server`, the `milvus_standalone` test fixture).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import lzma
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Self

from rci.services.kafka_jars import cache_root_from_env
from rci.services.ports import LOOPBACK, free_port, is_listening
from rci.services.process import ManagedProcess, ServiceError, ServiceProcess

REQUEST_THREADS = 1


class MilvusLiteServer(ServiceProcess):
    """`python -m rci.services.milvus_server` on host:port over `data_dir`. Context manager or start()/stop()."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = LOOPBACK, log_path: Path | None = None) -> None:
        self.data_dir = data_dir.absolute()
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"rci-milvus-{self.port}.log"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._process = ManagedProcess(
            "milvus",
            [sys.executable, "-m", "rci.services.milvus_server", "--data-dir", str(self.data_dir),
             "--host", self.host, "--port", str(self.port)],
            self.log_path,
        )  # fmt: skip

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.uri

    def answers(self) -> bool:
        """True once the gRPC port accepts connections (the server binds only after opening the database)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False


# --- a real Milvus standalone server, from the `milvus` wheel -----------------------------------------
STANDALONE_PACKAGE = "milvus"  # PyPI `milvus`: Milvus 2.3.5 standalone binaries, lzma-packed, + `milvus-server`
STANDALONE_VERSION = "2.3.5"  # the pin in pyproject's dev extra; names the cache folder when the wheel is absent
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*(?:\(\w+\))?\s*(?::([^}]*))?\}\}")  # {{ key(type): default }}
_ANY_IP = re.compile(r"(?m)^(\s+)ip:[ \t]*(#.*)?$")  # `ip:` left empty: "the first unicastable address"


def standalone_package_dir() -> Path:
    """Where the `milvus` wheel is installed; ServiceError naming the fix when it is not."""
    spec = importlib.util.find_spec(STANDALONE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(
            f"the Milvus standalone server comes with the `{STANDALONE_PACKAGE}` wheel: "
            f"pip install {STANDALONE_PACKAGE}=={STANDALONE_VERSION} (scripts/bootstrap.sh installs it with the dev extra)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def standalone_bin_dir(cache_root: Path) -> Path:
    """`<cache>/milvus-server-<version>/bin`: the unpacked binary and the shared libraries it loads."""
    try:
        version = importlib.metadata.version(STANDALONE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = STANDALONE_VERSION
    return cache_root / f"milvus-server-{version}" / "bin"


def ensure_standalone_binary(bin_dir: Path) -> Path:
    """Unpack the wheel's `data/bin/*.lzma` (about 250 MB unpacked, some seconds) into `bin_dir` once.

    Unpacked beside it and renamed into place, so concurrent test sessions never see (or overwrite
    under a running server) a half-written library; the wheel's own `milvus-server` unpacks into
    every data directory instead.
    """
    exe = bin_dir / "milvus"
    if exe.is_file():
        return exe
    packed = sorted((standalone_package_dir() / "data" / "bin").glob("*.lzma"))
    if not packed:
        raise ServiceError(f"no packed Milvus binaries in the `{STANDALONE_PACKAGE}` wheel ({standalone_package_dir()})")
    bin_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bin-", dir=bin_dir.parent))
    try:
        for source in packed:
            target = staging / source.name.removesuffix(".lzma")
            with lzma.open(source) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            target.chmod(0o755)
        try:
            staging.rename(bin_dir)
        except OSError:
            if not exe.is_file():  # not another process that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return exe


def standalone_problem(cache_root: Path | None = None) -> str | None:
    """Why the Milvus standalone binary cannot run on this machine, or None when it can."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"the `{STANDALONE_PACKAGE}` wheel ships Linux x86_64 binaries; this is {sys.platform} {platform.machine()}"
    bin_dir = standalone_bin_dir(cache_root or cache_root_from_env())
    try:
        exe = ensure_standalone_binary(bin_dir)
        result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30,
                                env={"LD_LIBRARY_PATH": str(bin_dir), "PATH": "/usr/bin:/bin"})  # fmt: skip
    except (ServiceError, OSError, subprocess.TimeoutExpired) as exc:
        return f"the Milvus standalone binary cannot run here: {exc}"
    if "Usage" not in result.stdout + result.stderr:  # it prints its usage and exits 0 when it loads
        return f"{exe} did not start (exit {result.returncode}): {(result.stderr or result.stdout).strip()[-500:]}"
    return None


def render_standalone_config(template: str, values: Mapping[str, object]) -> str:
    """The wheel's `config.yaml.template` with its `{{ key(type): default }}` placeholders filled.

    Every component is also pinned to 127.0.0.1: left empty, each one registers "the first unicastable
    address" and the others dial that, which breaks when the machine's address is firewalled or changes.
    """

    def fill(match: re.Match[str]) -> str:
        key, default = match.group(1), match.group(2)
        if key in values:
            value = values[key]
            return ("true" if value else "false") if isinstance(value, bool) else str(value)
        if default is None:
            raise ServiceError(f"milvus config template: no value for {key!r}")
        return default.strip()

    return _ANY_IP.sub(rf"\g<1>ip: {LOOPBACK}", _PLACEHOLDER.sub(fill, template))


class MilvusStandaloneServer(ServiceProcess):
    """A real Milvus standalone server over `data_dir`, its gRPC proxy on host:port (`.uri`).

    Every other port it opens (embedded etcd client and peer, the coordinators and nodes, metrics
    and /healthz) is a free one chosen at start, so several servers (test sessions of several
    people on one machine) run side by side; the wheel's own `milvus-server` would take etcd's
    2379/2380 and fail the second one. Data (etcd, RocksMQ, segments) persists in `data_dir` across
    restarts. Context manager or start()/stop().
    """

    start_timeout_s = 120.0
    # SIGTERM, then SIGKILL after this: 2.3.5 usually exits within a second, but its shutdown can also
    # hang (a coordinator stopping while the nodes still call it); it recovers from its own logs.
    stop_timeout_s = 5.0

    def __init__(self, data_dir: Path, port: int | None = None, log_path: Path | None = None,
                 cache_root: Path | None = None) -> None:  # fmt: skip
        self.data_dir = data_dir.absolute()
        self.host = LOOPBACK
        self.port = port or free_port(self.host)
        self.metrics_port = free_port(self.host)
        self.log_path = log_path or self.data_dir / "milvus.log"
        self.bin_dir = standalone_bin_dir(cache_root or cache_root_from_env())
        self.config_dir = self.data_dir / "configs"
        env = {
            "LD_LIBRARY_PATH": str(self.bin_dir),
            "DEPLOY_MODE": "STANDALONE",
            "MILVUSCONF": f"{self.config_dir}/",  # milvus.yaml and glog.conf
            "ETCD_CONFIG_PATH": str(self.config_dir / "etcd.yaml"),  # the embedded etcd's own ports
            "METRICS_PORT": str(self.metrics_port),  # /healthz and /metrics
            "MILVUS_RUN_DIR": str(self.data_dir / "run"),
            # SIGTERM: the query node waits this long for its segments to move to another node, and
            # there is none: without it a standalone server hangs on SIGTERM until SIGKILL.
            "QUERYNODE_GRACEFULSTOPTIMEOUT": "1",
            # Its components' etcd sessions outlive a stop (2.3.5 exits before revoking them), and a
            # restart on the same data dir waits until they expire: 10 s instead of 30 s (~50 s restart).
            "COMMON_SESSION_TTL": "10",
        }
        self._process = ManagedProcess("milvus", [str(self.bin_dir / "milvus"), "run", "standalone"], self.log_path, env)

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.uri

    def answers(self) -> bool:
        """True once /healthz says OK (every component registered) and the proxy accepts connections."""
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.metrics_port}/healthz", timeout=2.0) as response:
                healthy = b"OK" in response.read()
        except OSError:
            return False
        return healthy and is_listening(self.port, self.host)

    def start(self, detached: bool = False, timeout_s: float | None = None) -> Self:
        ensure_standalone_binary(self.bin_dir)
        self._write_config()
        return super().start(detached=detached, timeout_s=timeout_s)

    def stop(self) -> None:
        self._process.stop(timeout_s=self.stop_timeout_s)

    def _write_config(self) -> None:
        package = standalone_package_dir()
        template = (package / "data" / "config.yaml.template").read_text()
        storage = self.data_dir / "data"
        values: dict[str, object] = {key: free_port(self.host) for key in _placeholders(template) if key.endswith("_port")}
        values |= {
            "proxy_port": self.port,
            "etcd_data_dir": storage / "etcd.data",
            "etcd_log_path": "stdout",  # everything into one log, `log_path`
            "system_log_path": "",  # no rotated log files beside it
            "local_storage_dir": storage,
            "rocksmq_data_dir": storage / "rocksmq",
        }
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "milvus.yaml").write_text(render_standalone_config(template, values))
        shutil.copy(package / "data" / "glog.conf", self.config_dir / "glog.conf")
        etcd, peer = values["etcd_port"], free_port(self.host)
        (self.config_dir / "etcd.yaml").write_text(
            "name: rci\n"
            f"listen-client-urls: http://{LOOPBACK}:{etcd}\nadvertise-client-urls: http://{LOOPBACK}:{etcd}\n"
            f"listen-peer-urls: http://{LOOPBACK}:{peer}\ninitial-advertise-peer-urls: http://{LOOPBACK}:{peer}\n"
            f"initial-cluster: rci=http://{LOOPBACK}:{peer}\n"
        )


def _placeholders(template: str) -> set[str]:
    return {match.group(1) for match in _PLACEHOLDER.finditer(template)}


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # Milvus Lite's server closes its database on KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a Milvus Lite database over gRPC.")
    parser.add_argument("--data-dir", required=True, type=Path, help="Milvus Lite data directory.")
    parser.add_argument("--host", default=LOOPBACK, help="Bind address (default: loopback).")
    parser.add_argument("--port", type=int, required=True, help="gRPC port.")
    args = parser.parse_args(argv)
    from milvus_lite.adapter.grpc.server import run_server

    signal.signal(signal.SIGTERM, _interrupt)
    run_server(str(args.data_dir), host=args.host, port=args.port, max_workers=REQUEST_THREADS)


if __name__ == "__main__":
    main()
