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
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import tempfile
from pathlib import Path
from types import FrameType

from rci.services.ports import LOOPBACK, free_port
from rci.services.process import ManagedProcess, ServiceProcess

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
