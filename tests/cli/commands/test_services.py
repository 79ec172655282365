"""`rci services up|status|down` as a user runs them: real detached processes, non-default ports."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rci.services.ports import free_port, is_listening
from rci.services.process import PidRecord

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def rci(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCI_") or k == "RCI_CACHE_DIR"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "rci"), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _sourced(env_file: Path) -> dict[str, str]:
    values = {}
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = shlex.split(value)[0] if value else ""
    return values


def test_up_status_down(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    kafka_port, s3_port, milvus_port = free_port(), free_port(), free_port()
    up = rci("services", "up", "--data-dir", str(data_dir), "--kafka-port", str(kafka_port), "--s3-port", str(s3_port),
             "--milvus-port", str(milvus_port))  # fmt: skip
    records = [PidRecord.read(data_dir / "services" / f"{name}.json") for name in ("kafka", "s3", "milvus")]
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        env = _sourced(data_dir / "services.env")
        assert env["RCI_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{kafka_port}"
        assert env["RCI_S3_ENDPOINT_URL"] == f"http://127.0.0.1:{s3_port}"
        assert env["RCI_MILVUS_URI"] == f"http://127.0.0.1:{milvus_port}"
        assert env["RCI_DATA_DIR"] == str(data_dir.absolute())
        assert {"RCI_S3_ACCESS_KEY_ID", "RCI_S3_SECRET_ACCESS_KEY", "RCI_OBJECT_STORE"} <= env.keys()
        assert all(r is not None and r.is_alive() for r in records)

        metadata = subprocess.run(["kcat", "-b", env["RCI_KAFKA_BOOTSTRAP"], "-L", "-J"], capture_output=True,
                                  text=True, timeout=30, check=True)  # fmt: skip
        topics = {t["topic"]: len(t["partitions"]) for t in json.loads(metadata.stdout)["topics"]}
        assert topics["video.published"] == topics["rci.scores"] == 6

        status = rci("services", "status", "--data-dir", str(data_dir))
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("running") == 3 and "milvus" in status.stdout

        again = rci("services", "up", "--data-dir", str(data_dir))
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        down = rci("services", "down", "--data-dir", str(data_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(r.is_alive() for r in records if r)
    assert not any(is_listening(port) for port in (kafka_port, s3_port, milvus_port))
    assert rci("services", "status", "--data-dir", str(data_dir)).returncode == 1


def test_up_with_a_milvus_server(tmp_path: Path) -> None:
    """`--milvus server`: a real Milvus standalone server instead of Milvus Lite, found and stopped like the others."""
    from rci.services.milvus_server import standalone_problem

    problem = standalone_problem()
    if problem:
        pytest.skip(f"no Milvus standalone server: {problem}")
    data_dir = tmp_path / "state"
    milvus_port = free_port()
    up = rci("services", "up", "--data-dir", str(data_dir), "--kafka-port", str(free_port()), "--s3-port",
             str(free_port()), "--milvus-port", str(milvus_port), "--milvus", "server")  # fmt: skip
    record = PidRecord.read(data_dir / "services" / "milvus.json")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert _sourced(data_dir / "services.env")["RCI_MILVUS_URI"] == f"http://127.0.0.1:{milvus_port}"
        assert record is not None and record.is_alive() and record.argv[-2:] == ("run", "standalone")
        from pymilvus import MilvusClient

        client = MilvusClient(uri=f"http://127.0.0.1:{milvus_port}", timeout=30)
        try:
            assert client.get_server_version().startswith("v2.3")  # a Milvus server, not Milvus Lite
        finally:
            client.close()
        assert (data_dir / "milvus-server" / "configs" / "milvus.yaml").is_file()
    finally:
        down = rci("services", "down", "--data-dir", str(data_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert record is None or not record.is_alive()
    assert not is_listening(milvus_port)
