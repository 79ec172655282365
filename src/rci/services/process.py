"""A service process: started with its output in a log file, probed until ready, stopped politely.

Two ownership modes, because the same services run under two masters:

* attached (tests, the demo): the process is our child and dies with `stop()`;
* detached (`rci services up`): the process gets its own session so it outlives the command,
  and a pid file lets `rci services down` (another process) stop it later.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from rci.core.errors import RCIError
from rci.core.logs import get_logger

log = get_logger(__name__)


class ServiceError(RCIError):
    """A local service could not be started, did not become ready, or could not be stopped."""


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a service log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds: enough to find the process again and to check it is still ours."""

    name: str
    pid: int
    argv: tuple[str, ...]
    endpoint: str
    log_path: str
    extra: dict = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.__dict__, "argv": list(self.argv)}, indent=2))

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        try:
            raw = json.loads(path.read_text())
            return cls(**{**raw, "argv": tuple(raw["argv"])})
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def is_alive(self) -> bool:
        """The pid runs and is still the command we started (pids get reused)."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return [c.decode(errors="replace") for c in cmdline if c] == list(self.argv)


class ManagedProcess:
    """One service process (see module docstring for attached vs detached)."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = tuple(argv)
        self.log_path = log_path
        self.env = env
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, detached: bool = False) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                start_new_session=detached,  # own session: Ctrl-C in the shell does not reach it
            )
        log.info("service.started", service=self.name, pid=self._proc.pid, log=str(self.log_path))

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> None:
        """Poll `probe` until it returns True; fail fast (with the log tail) if the process dies."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                code = self._proc.returncode if self._proc else None
                raise ServiceError(f"{self.name} exited with {code} while starting:\n{log_tail(self.log_path)}")
            if probe():
                return
            time.sleep(interval_s)
        self.stop()
        raise ServiceError(f"{self.name} not ready after {timeout_s:.0f}s:\n{log_tail(self.log_path)}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL. Idempotent."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("service.kill", service=self.name, pid=self._proc.pid)
            self._proc.kill()
            self._proc.wait(5)
        log.info("service.stopped", service=self.name, pid=self._proc.pid)

    def record(self, endpoint: str, **extra: object) -> PidRecord:
        if self._proc is None:
            raise ServiceError(f"{self.name} was never started")
        return PidRecord(self.name, self._proc.pid, self.argv, endpoint, str(self.log_path), dict(extra))


def stop_recorded(record: PidRecord, timeout_s: float = 15.0) -> bool:
    """Stop a detached service found through its pid file. False when it was not running."""
    if not record.is_alive():
        return False
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not record.is_alive():
            return True
        time.sleep(0.2)
    os.kill(record.pid, signal.SIGKILL)
    return True


class ServiceProcess:
    """A service that is one child process, ready when `answers()` says so. Subclasses set
    `self._process` and define `endpoint` and `answers`. Context manager or start()/stop()."""

    _process: ManagedProcess
    start_timeout_s = 60.0

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self, detached: bool = False, timeout_s: float | None = None) -> Self:
        self._process.start(detached=detached)
        self._process.wait_ready(self.answers, timeout_s or self.start_timeout_s)
        return self

    def stop(self) -> None:
        self._process.stop()

    def record(self) -> PidRecord:
        return self._process.record(self.endpoint)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
