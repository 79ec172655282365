"""The topic JSON Schemas ship in the wheel and are found through importlib.resources; the wheel
carries the Apache-2.0 licence as an SPDX expression with its LICENSE file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from rci.streams.contracts import CONTRACTS, json_schemas

REPO = Path(__file__).resolve().parents[2]
SCHEMA_NAMES = sorted(f"{topic}.schema.json" for topic in CONTRACTS)


def test_schemas_are_package_resources() -> None:
    folder = resources.files("rci.streams") / "schemas"
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".json")) == SCHEMA_NAMES
    generated = json_schemas()
    for topic in CONTRACTS:
        assert json.loads((folder / f"{topic}.schema.json").read_text(encoding="utf-8")) == generated[topic]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (the build writes build/ and egg-info next to its input)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    build = "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))"
    run = subprocess.run([sys.executable, "-c", build, str(out)], cwd=source, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return out / run.stdout.strip().splitlines()[-1]


def test_the_wheel_ships_the_schemas_and_the_license(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("rci/streams/schemas/")) == SCHEMA_NAMES
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata.splitlines()


def test_importlib_resources_finds_the_schemas_in_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    probe = (
        "import json, rci; from importlib import resources; "
        "folder = resources.files('rci.streams') / 'schemas'; "
        "print(json.dumps({'rci': rci.__file__, 'schemas': sorted(p.name for p in folder.iterdir())}))"
    )
    run = subprocess.run([sys.executable, "-c", probe], env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout)
    assert found["rci"].startswith(str(tmp_path / "site")), "the probe must import the wheel's rci, not the checkout's"
    assert found["schemas"] == SCHEMA_NAMES
