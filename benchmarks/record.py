"""Append a benchmark's figures, with the machine they were measured on, to benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

RESULTS_FILE = Path(__file__).parent / "RESULTS.md"


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{os.cpu_count()} x {cpu}", f"Python {platform.python_version()}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}")
        else:
            parts.append("no GPU")
    except ImportError:
        pass
    return ", ".join(parts)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def record(title: str, body: str, command: str | None = None, path: Path = RESULTS_FILE) -> str:
    """Print and append one results section; returns the markdown written."""
    command = command or command_line(module_of(sys.argv[0]), None)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"\n## {title}\n\n"
        f"- when: {when}\n- machine: {machine_description()}\n- command: `{command}`\n\n{body}\n"
    )
    print(section)
    if not path.exists():
        path.write_text("# Benchmark results\n\nEach section is appended by the benchmark that produced it.\n")
    with path.open("a") as fh:
        fh.write(section)
    return section


def module_of(script: str) -> str:
    """`benchmarks.load` for `/any/checkout/benchmarks/load.py` (or for `-m benchmarks.load`): no machine paths."""
    path = Path(script)
    if path.suffix != ".py":
        return script
    parts = path.with_suffix("").parts
    start = max((i for i, part in enumerate(parts) if part == "benchmarks"), default=len(parts) - 1)
    return ".".join(parts[start:])


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """How to rerun a benchmark: `python -m <module>` and its arguments (default: this process's), quoted."""
    given = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m " + module, *map(shlex.quote, given)])


def publish(title: str, body: str, *, dry_run: bool, command: str | None = None, path: Path = RESULTS_FILE) -> None:
    """A benchmark's last step: append its section to RESULTS.md (or `path`), or with `dry_run` (--no-record)
    only print it."""
    if dry_run:
        print(body)
    else:
        record(title, body, command=command, path=path)
