"""Faults on the real stack, the part of benchmarks/faults.py that fits in a test.

The outage proxy on its own (broker-free), then one run of `benchmarks.faults.run_faults` on a
stack of its own (the broker is restarted, so not the session's): a kill -9, a SIGTERM and a SIGINT of
the worker, a broker restart, the object store and Milvus each unreachable for 10 s, while valid and
hostile records are produced. Afterwards every valid event has exactly one distinct score value, none
is on the DLQ, every hostile record has its code, the outputs grew again after every fault, no partition
with records waiting stalled over a minute after an outage, and the worker is alive. The full runs are
`python -m benchmarks.faults` (five kills, 300 events) and `--chaos` (20 minutes, 5% poison).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from benchmarks.faults import STALL_LIMIT_S, FaultPlan, PartitionWatch, chaos_plan, open_stack, run_faults
from benchmarks.outage import TcpProxy


def _echo_server() -> socket.socket:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server


def _echo(conn: socket.socket) -> None:
    try:
        while data := conn.recv(1024):
            conn.sendall(data)
    except OSError:  # reset by the proxy's cut
        pass
    finally:
        conn.close()


def _round_trip(address: str) -> bytes:
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"ping")
        return conn.recv(4)


def test_outage_proxy_resets_refuses_and_comes_back_on_the_same_port():
    server = _echo_server()
    proxy = TcpProxy(*server.getsockname()).start()
    try:
        assert _round_trip(proxy.address) == b"ping"
        host, port = proxy.address.split(":")
        open_conn = socket.create_connection((host, int(port)), timeout=5)
        open_conn.sendall(b"ping")
        assert open_conn.recv(4) == b"ping"  # proxied end to end before the cut
        proxy.cut()
        with pytest.raises(ConnectionRefusedError):
            _round_trip(proxy.address)
        with pytest.raises(ConnectionResetError):  # the connection that was open is reset, not left hanging
            open_conn.recv(1)
        open_conn.close()
        proxy.restore()
        assert _round_trip(proxy.address) == b"ping"
    finally:
        proxy.stop()
        server.close()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_worker_survives_a_kill_a_broker_restart_and_store_and_milvus_outages(untrained_model_dir: Path, tmp_path: Path):
    plan = FaultPlan(events=16, hostile=16, references=4, rate=4.0, kills=1, broker_restarts=1, broker_down_s=10.0,
                     store_outage_s=10.0, milvus_outage_s=10.0, seed=1, settle_timeout_s=300.0, sigterms=1,
                     sigints=1)  # fmt: skip
    fs = open_stack(tmp_path, untrained_model_dir)
    try:
        result = run_faults(fs, plan, tmp_path)
    finally:
        fs.stop()
    v = result.verdict
    assert result.faults.count("kill -9") == 1 and result.faults.count("broker started") == 1
    assert result.faults.count("SIGTERM") == 1 and result.faults.count("SIGINT") == 1
    assert result.faults.count("object store reachable") == 1 and result.faults.count("Milvus reachable") == 1
    assert not v.lost and not v.inconsistent and not v.valid_on_dlq, (v.summary(), result.worker_log[-4000:])
    assert v.ok, (v.summary(), v.hostile_wrong_code)
    assert len(result.recovery_s) == plan.fault_count, result.recovery_s  # outputs grew again after each fault
    assert result.worker_alive_at_end and not result.unexpected_exits
    assert len(result.partition_stall_s) == plan.fault_count, result.partition_stall_s  # one per fault's end
    assert result.outage_stall_s <= STALL_LIMIT_S, result.partition_stall_s


def test_chaos_plan_mixes_5_percent_poison_and_every_kind_of_fault() -> None:
    plan = chaos_plan(minutes=20, rate=1.5)
    assert plan.events + plan.hostile == 1800 and plan.hostile == 90
    assert set(plan.faults) == {"kill", "sigterm", "sigint", "broker", "store", "milvus"}
    assert 12 <= plan.fault_count <= 24  # about one a minute


def _watch(samples: list[tuple[float, dict[int, tuple[int, int]]]]) -> PartitionWatch:
    watch = PartitionWatch.__new__(PartitionWatch)  # its samples only: no broker
    watch.samples = samples
    return watch


def test_a_partition_stall_counts_from_the_faults_end_until_its_commit_moves() -> None:
    watch = _watch([(10.0, {0: (5, 9), 1: (7, 7)}), (40.0, {0: (5, 12), 1: (7, 9)}), (75.0, {0: (8, 12), 1: (7, 9)})])
    assert watch.stall_after(8.0) == 67.0  # partition 0 waited from 8 s to 75 s; partition 1 had nothing waiting at 10 s
    assert watch.stall_after(40.0) == 35.0  # then partition 1 waits too, and never moves: until the last sample
    assert watch.stall_after(80.0) == 0.0
    assert watch.recovered(8.0) and not _watch(watch.samples[:2]).recovered(8.0)
    assert not watch.recovered(40.0)  # partition 1 still waits
    assert _watch([(10.0, {0: (5, 9), 1: (7, 7)}), (20.0, {0: (6, 9), 1: (7, 8)})]).recovered(8.0)
