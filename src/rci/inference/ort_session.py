"""One way to open an ONNX Runtime session: CUDA execution provider when asked for and present, else CPU.

ONNX Runtime falls back to the CPU, with one line on stderr, when its CUDA provider cannot load the CUDA
libraries it links. The `gpu` extra installs them as NVIDIA's wheels, which `onnxruntime.preload_dlls` loads
before the first session; a session asked for `cuda` that still lands on the CPU is a configuration error
naming what is missing, never a silent slowdown.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

import onnxruntime as ort
import torch

from rci.core.errors import ConfigError, ModelError
from rci.core.logs import get_logger

Device = Literal["auto", "cpu", "cuda"]
GPU_EXTRA_HINT = "install the gpu extra: pip install 'matchlm2lite-rci[gpu]' (README: Running on GPUs)"
DRIVER_LIBRARIES = frozenset({"libcuda.so.1"})  # the NVIDIA driver's, installed on the host, never by pip
log = get_logger(__name__)


def resolve_device(device: Device | str) -> Literal["cpu", "cuda"]:
    """`auto` = CUDA when torch sees a device; asking for `cuda` without one is a configuration error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("RCI_DEVICE=cuda but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, not {device!r}")
    return device  # type: ignore[return-value]


def open_session(
    model: str | Path | bytes, device: Device | str = "auto", intra_op_threads: int = 0, inter_op_threads: int = 0
) -> ort.InferenceSession:
    """An InferenceSession with full graph optimisation; intra-op threads 0 = the cores this process owns
    (`owned_cores`: ONNX Runtime's own default counts the machine's cores, which oversubscribes a worker
    confined by CPU affinity or a container's CPU quota)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads or owned_cores()
    options.inter_op_num_threads = inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    wants_cuda = resolve_device(device) == "cuda"
    providers = ["CPUExecutionProvider"]
    if wants_cuda:
        _preload_cuda_libraries()
        providers.insert(0, "CUDAExecutionProvider")
    name = "<bytes>" if isinstance(model, bytes) else str(model)
    try:
        session = ort.InferenceSession(model if isinstance(model, bytes) else name, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load ONNX model {name}: {exc}") from exc
    if wants_cuda and session_device(session) != "cuda":
        _cuda_fell_back(device, name)
    return session


def owned_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (`<quota> <period>`,
    rounded up) where one is set."""
    cores = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return cores


def _cuda_fell_back(device: Device | str, model_name: str) -> None:
    """A CUDA device is there but the session runs on the CPU: an error if CUDA was demanded, else a warning."""
    missing = missing_cuda_libraries()
    why = f"missing libraries: {', '.join(missing)}" if missing else "see ONNX Runtime's message above"
    if device == "cuda":
        raise ConfigError(f"RCI_DEVICE=cuda but ONNX Runtime cannot use CUDA for {model_name} ({why}); {GPU_EXTRA_HINT}")
    log.warning("cuda device present but onnx runtime runs on cpu", model=model_name, reason=why, hint=GPU_EXTRA_HINT)


@functools.cache
def _preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries from NVIDIA's wheels once per process (the gpu extra installs them)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # preload_dlls reports with print()
        ort.preload_dlls()
    if printed.getvalue().strip():
        log.info("onnx runtime cuda preload", output=printed.getvalue().strip())


def nvidia_library_dirs() -> list[Path]:
    """Where NVIDIA's CUDA wheels put their shared libraries (`nvidia/<pkg>/lib`, `nvidia/cu13/lib`)."""
    return sorted({lib.parent for root in map(Path, sys.path) for lib in root.glob("nvidia/*/lib/lib*.so*")})


def missing_cuda_libraries() -> list[str]:
    """Libraries ONNX Runtime's CUDA provider links that neither the system nor NVIDIA's wheels provide.

    The driver's own (`libcuda.so.1`) is left out: it comes with the GPU host, never from pip.
    """
    provider = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if not provider.exists():  # the CPU-only onnxruntime wheel
        return [provider.name]
    try:
        linked = subprocess.run(["ldd", str(provider)], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"cannot list the libraries of {provider}: {exc}") from exc
    not_found = set(re.findall(r"^\s*(\S+) => not found", linked, re.M)) - DRIVER_LIBRARIES
    from_wheels = {lib.name for folder in nvidia_library_dirs() for lib in folder.iterdir()}
    return sorted(not_found - from_wheels)


def session_device(session: ort.InferenceSession) -> Literal["cpu", "cuda"]:
    """Where the session really runs (CUDA may be asked for and missing from the installed runtime)."""
    return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
