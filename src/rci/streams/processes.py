"""Run `rci worker` / `rci shadow` as child processes configured by the same settings.

Used by `rci demo`, the benchmarks and the crash / scale-out tests: the children are real
worker processes in one consumer group, exactly as a deployment runs them.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from rci.core.settings import Settings, env_name


def _die_with_parent() -> None:
    """Linux: SIGTERM the child when its parent dies, so a crashed test or demo leaves no orphans."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def settings_env(settings: Settings) -> dict[str, str]:
    """The RCI_* environment that reproduces `settings` in a child process."""
    env: dict[str, str] = {}
    for field in type(settings).model_fields:
        value = getattr(settings, field)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, dict):  # RCI_KAFKA_EXTRA: pydantic-settings reads JSON
            value = json.dumps(value)
        env[env_name(field)] = str(value)
    return env


class ChildProcess:
    """One `rci <command>` child with its own log file; stop() is SIGTERM, kill() is SIGKILL."""

    def __init__(self, command: str, settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None):
        self.command = command
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCI_")}
        env.update(settings_env(settings))
        env.update(extra_env or {})
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "rci", command],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 60.0, signum: signal.Signals = signal.SIGTERM) -> int:
        """SIGTERM (the worker drains its batch in flight; SIGINT does the same), then SIGKILL if it does not exit."""
        if self.alive():
            self.popen.send_signal(signum)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        """kill -9: no chance to drain or commit."""
        if self.alive():
            self.popen.kill()
            self.popen.wait(30)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
