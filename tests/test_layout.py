"""The shape of the house: one installed package, layers that import only downward, no copies.

docs/architecture.md explains the layers; pyproject.toml's [tool.importlinter] states them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def test_layers_import_only_downward_and_form_no_cycle() -> None:
    """import-linter reads the import graph statically (no module is imported, so no torch start-up)."""
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)  # grimp finds `rci` on sys.path; the contracts live in pyproject.toml
    try:
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
    finally:
        os.chdir(cwd)


def test_no_six_line_copies_in_the_package_or_benchmarks() -> None:
    """pylint's duplicate-code check, six-line blocks, tests excluded (they may repeat set-up on purpose)."""
    from pylint.lint import Run

    run = Run(
        ["--disable=all", "--enable=duplicate-code", "--min-similarity-lines=6", "--score=n",
         str(SRC / "rci"), str(ROOT / "benchmarks")],
        exit=False,
    )
    assert run.linter.msg_status == 0, "pylint found duplicated blocks (printed above)"


def cli_modules() -> list[str]:
    package = SRC / "rci" / "cli"
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.slow
@pytest.mark.parametrize("module", cli_modules())
def test_every_cli_module_imports_on_its_own(module: str) -> None:
    """A command module must not depend on the CLI having been loaded first (no partial-init cycle)."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ----------------------------------------------------------------------------------------------
# a non-editable install into a fresh virtual environment


def uv() -> str:
    for candidate in (Path(sys.executable).parent / "uv", Path.home() / ".local/bin/uv"):
        if candidate.exists():
            return str(candidate)
    found = subprocess.run(["bash", "-c", "command -v uv"], capture_output=True, text=True).stdout.strip()
    if not found:
        pytest.fail("uv not found: scripts/bootstrap.sh installs it")
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install .` (not editable) of this repository; the dependencies are borrowed
    from the development venv through a path entry (no .pth files of that venv run, so its editable
    `rci` stays invisible)."""
    work = tmp_path_factory.mktemp("install")
    wheel_dir = work / "wheel"
    env = {**os.environ, "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache/rci/uv"))}
    subprocess.run([uv(), "build", "--wheel", "--out-dir", str(wheel_dir), str(ROOT)], check=True, env=env,
                   capture_output=True, timeout=600)
    venv = work / "venv"
    subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env, timeout=120)
    [wheel] = wheel_dir.glob("*.whl")
    subprocess.run([uv(), "pip", "install", "-q", "--no-deps", "--python", str(venv / "bin/python"), str(wheel)],
                   check=True, env=env, timeout=300)
    site = subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "dev_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    (work / "wheel.txt").write_text(str(wheel))
    return venv


def run_python(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin/python"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_the_wheel_holds_one_import_package_and_its_schemas(installed: Path) -> None:
    wheel = Path((installed.parent / "wheel.txt").read_text())
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"rci"}
    assert "rci/streams/schemas/video.published.schema.json" in names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


@pytest.mark.slow
def test_only_rci_imports_after_a_plain_install(installed: Path, tmp_path: Path) -> None:
    done = run_python(installed, tmp_path, "-c", "import rci, rci.streams; print(rci.__file__)")
    assert done.returncode == 0, done.stderr
    assert "site-packages" in done.stdout and str(SRC) not in done.stdout
    for generic in ("streams", "media", "training", "inference", "storage", "retrieval", "benchmarks"):
        done = run_python(installed, tmp_path, "-c", f"import {generic}")
        assert "ModuleNotFoundError" in done.stderr, f"`import {generic}` should fail: {done.stderr[-500:]}"


@pytest.mark.slow
def test_python_m_rci_works_from_the_repository_root_and_beside_lookalike_folders(
    installed: Path, tmp_path: Path
) -> None:
    for name in ("streams", "training"):  # folders that once shadowed the project's own packages
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('a lookalike folder was imported')\n")
    for cwd in (ROOT, tmp_path):
        done = run_python(installed, cwd, "-m", "rci", "--help")
        assert done.returncode == 0, f"from {cwd}: {done.stderr[-2000:]}"
        assert "worker" in done.stdout
