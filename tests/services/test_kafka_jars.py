"""Kafka jar cache: resolved once, then reused without Maven; clear errors when Maven is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rci.services.kafka_jars import KAFKA_VERSION, cache_root_from_env, ensure_jars, jar_dir
from rci.services.process import ServiceError


def test_cache_root_follows_rci_cache_dir(tmp_path: Path) -> None:
    assert cache_root_from_env({"RCI_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_root_from_env({}) == Path.home() / ".cache" / "rci"


def test_complete_cache_is_reused_without_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = jar_dir(tmp_path)
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").write_bytes(b"")
    (libs / ".complete").write_text("kafka_2.13.jar\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    assert ensure_jars(tmp_path) == libs


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    with pytest.raises(ServiceError, match="mvn"):
        ensure_jars(tmp_path)


def test_bootstrap_entry_point_reports_the_jars() -> None:
    # The real cache (scripts/bootstrap.sh fills it): idempotent, so this is quick after the first run.
    result = subprocess.run([sys.executable, "-m", "rci.services.kafka_jars"], capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"Kafka {KAFKA_VERSION}:" in result.stdout and "jars in" in result.stdout
