"""Append a benchmark's figures, with the machine they were measured on, to benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import platform
import shlex
import sys
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
    command = command or "python -m " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])
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
