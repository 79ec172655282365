"""ONNX Runtime sessions on CUDA hosts without a GPU here: what the `gpu` extra installs, and that a CUDA session
which lands on the CPU is an error when CUDA was demanded and a warning when it was merely preferred."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from rci.core.errors import ConfigError
from rci.inference import ort_session
from rci.inference.ort_session import missing_cuda_libraries, open_session, session_device


@pytest.fixture
def identity_model(tmp_path: Path) -> Path:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "identity", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])  # fmt: skip
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


def test_every_library_the_cuda_provider_links_is_installed_but_the_drivers() -> None:
    """The lock installs the gpu extra: cuRAND, cuBLAS, the CUDA runtime come from NVIDIA's wheels."""
    assert missing_cuda_libraries() == []


def test_without_nvidias_wheels_the_missing_libraries_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort_session, "nvidia_library_dirs", list)
    missing = missing_cuda_libraries()
    assert "libcublas.so.13" in missing and "libcurand.so.10" in missing
    assert "libcuda.so.1" not in missing  # the driver's


def _pretend_torch_sees_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Torch says CUDA; ONNX Runtime's CUDA provider then fails here for want of a driver, as on a host whose
    CUDA libraries are missing."""
    monkeypatch.setattr(ort_session, "resolve_device", lambda device: "cpu" if device == "cpu" else "cuda")


def test_cuda_demanded_but_unusable_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, identity_model: Path) -> None:
    _pretend_torch_sees_a_gpu(monkeypatch)
    with pytest.raises(ConfigError, match=r"RCI_DEVICE=cuda but ONNX Runtime cannot use CUDA .*gpu extra"):
        open_session(identity_model, "cuda")


def test_cuda_preferred_but_unusable_runs_on_the_cpu_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, identity_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _pretend_torch_sees_a_gpu(monkeypatch)
    session = open_session(identity_model, "auto")
    assert session_device(session) == "cpu"
    logged = capsys.readouterr()
    assert "cuda device present but onnx runtime runs on cpu" in logged.out + logged.err


def test_sessions_use_the_cores_the_process_owns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, identity_model: Path
) -> None:
    monkeypatch.setattr(ort_session.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3, 4, 5})
    cpu_max = tmp_path / "cpu.max"
    assert ort_session.owned_cores(tmp_path / "absent") == 6  # no cgroup v2 file: the affinity
    cpu_max.write_text("max 100000\n")
    assert ort_session.owned_cores(cpu_max) == 6  # no quota
    cpu_max.write_text("250000 100000\n")
    assert ort_session.owned_cores(cpu_max) == 3  # 2.5 cores of quota, rounded up
    cpu_max.write_text("50000 100000\n")
    assert ort_session.owned_cores(cpu_max) == 1
    seen: list[int] = []
    real = ort_session.ort.InferenceSession
    monkeypatch.setattr(ort_session, "owned_cores", lambda: 2)
    monkeypatch.setattr(ort_session.ort, "InferenceSession",
                        lambda model, sess_options, providers: seen.append(sess_options.intra_op_num_threads)
                        or real(model, sess_options=sess_options, providers=providers))  # fmt: skip
    open_session(identity_model, "cpu")
    open_session(identity_model, "cpu", intra_op_threads=5)
    assert seen == [2, 5]  # by default the owned cores; an explicit count wins
