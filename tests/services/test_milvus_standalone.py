"""The real Milvus standalone server (the `milvus` wheel's binary) as a local service: config, start, stop, restart."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np
import pytest

from rci.retrieval.milvus import MilvusVectorStore
from rci.retrieval.store import VideoRecord, from_epoch_ms
from rci.retrieval.synthetic import FrameSequences
from rci.retrieval.vectors import VectorSpec, index_vectors
from rci.services.milvus_server import (
    MilvusStandaloneServer,
    render_standalone_config,
    standalone_package_dir,
    standalone_problem,
)
from rci.services.ports import is_listening
from rci.services.process import ServiceError


def _template() -> str:
    try:
        return (standalone_package_dir() / "data" / "config.yaml.template").read_text()
    except ServiceError as exc:
        pytest.skip(str(exc))


def test_config_fills_every_placeholder_and_pins_components_to_loopback() -> None:
    template = _template()
    ports = {key: 40000 + i for i, key in enumerate(sorted(set(re.findall(r"\{\{\s*(\w+_port)", template))))}
    text = render_standalone_config(template, {**ports, "etcd_data_dir": "/d/etcd", "local_storage_dir": "/d",
                                               "rocksmq_data_dir": "/d/mq", "system_log_path": ""})  # fmt: skip
    assert "{{" not in text and "}}" not in text
    assert f"port: {ports['proxy_port']}" in text
    assert "authorizationEnabled: false" in text  # a default taken from the template
    ips = re.findall(r"(?m)^\s+ip:(.*)$", text)
    assert ips and all(ip.strip() == "127.0.0.1" for ip in ips)


def test_config_names_a_missing_value() -> None:
    with pytest.raises(ServiceError, match="etcd_data_dir"):
        render_standalone_config("dir: {{ etcd_data_dir }}", {})


def test_a_server_without_the_wheel_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ServiceError, match=r"pip install milvus==2\.3\.5"):
        MilvusStandaloneServer(tmp_path / "m", cache_root=tmp_path / "cache").start()


@pytest.mark.integration
@pytest.mark.slow
def test_server_stops_and_restarts_on_its_data(tmp_path: Path) -> None:
    """Rows survive a stop; the restart waits for the previous run's etcd sessions to expire (~25 s)."""
    problem = standalone_problem()
    if problem:
        pytest.skip(f"no Milvus standalone server: {problem}")
    collection = f"rci_test_{uuid.uuid4().hex[:8]}"
    frames, spec = FrameSequences(seed=5).videos(5, frames=(4, 8)), VectorSpec()
    server = MilvusStandaloneServer(tmp_path / "milvus")
    with server:
        with MilvusVectorStore(server.uri, collection=collection) as store:
            store.upsert([VideoRecord(f"v{i}", index_vectors(f, np.ones(len(f), bool), spec), from_epoch_ms(1000 * i))
                          for i, f in enumerate(frames)])  # fmt: skip
        pid = server.pid
    assert not is_listening(server.port) and not Path(f"/proc/{pid}").exists()
    with MilvusStandaloneServer(tmp_path / "milvus") as again:
        with MilvusVectorStore(again.uri, collection=collection) as store:
            assert store.count() == 5
