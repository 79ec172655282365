"""`rci services up|down|status`: the local Kafka broker, S3 server and Milvus (Lite, or a standalone server), detached.

Imports of the service code happen inside the commands: `rci --help` must stay quick.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rci.cli.context import settings_from_env

app = typer.Typer(
    help="Local Kafka broker (KRaft, from Maven jars), S3 server and Milvus Lite server (or, with --milvus server, "
    "a Milvus standalone server), as plain processes (no Docker).",
    no_args_is_help=True,
)
console = Console()


class MilvusKind(StrEnum):
    """Which Milvus `up` starts (rci.services.stack.MILVUS_KINDS)."""

    lite = "lite"
    server = "server"


DATA_DIR_OPTION = typer.Option(None, "--data-dir", help="Where state, logs and pid files live (default: RCI_DATA_DIR).")


@app.command()
def up(
    data_dir: Path | None = DATA_DIR_OPTION,
    kafka_port: int | None = typer.Option(None, min=1, max=65535, help="Broker port (default 9092, or a free one if taken)."),
    s3_port: int | None = typer.Option(None, min=1, max=65535, help="S3 server port (default 9000, or a free one if taken)."),
    milvus_port: int | None = typer.Option(None, min=1, max=65535, help="Milvus gRPC port (default 19530, or a free one if taken)."),
    milvus: MilvusKind = typer.Option(
        "lite", "--milvus",
        help="lite: Milvus Lite over gRPC (<data-dir>/milvus.db); server: a real Milvus 2.3.5 standalone server "
             "(<data-dir>/milvus-server/, from the `milvus` wheel of the dev extra; Linux x86_64).",
    ),
) -> None:
    """Start Kafka, the S3 server and Milvus; create the topics and buckets; write <data-dir>/services.env."""
    from rci.services.process import ServiceError
    from rci.services.stack import SERVICE_NAMES, detached_stack, recorded, stop_detached

    settings = settings_from_env()
    data_dir = (data_dir or settings.data_dir).absolute()
    running = {name: record for name, record in recorded(data_dir).items() if record.is_alive()}
    if running and len(running) == len(recorded(data_dir)) == len(SERVICE_NAMES):
        console.print(f"already running (see [bold]rci services status --data-dir {data_dir}[/])")
        _print_env(data_dir)
        return
    stop_detached(data_dir)  # part of a stack (one service died): start all afresh
    stack = detached_stack(data_dir, settings, kafka_port, s3_port, milvus_port, milvus=milvus.value)
    name = "a Milvus server" if milvus is MilvusKind.server else "Milvus Lite"
    try:
        with console.status(f"starting Kafka, the S3 server and {name}; creating topics and buckets..."):
            stack.start(detached=True)
    except ServiceError as exc:
        console.print(f"[red]could not start the stack:[/] {exc}")
        raise typer.Exit(1) from exc
    for topic, state in stack.topics.items():
        console.print(f"topic {topic}: {state} ({stack.partitions} partitions)")
    _print_env(data_dir)


@app.command()
def down(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Stop the services `rci services up` started under this data dir (data is kept)."""
    from rci.services.stack import stop_detached

    data_dir = (data_dir or settings_from_env().data_dir).absolute()
    stopped = stop_detached(data_dir)
    if not stopped:
        console.print(f"nothing recorded under {data_dir}")
    for name, was_running in stopped.items():
        console.print(f"{name}: {'stopped' if was_running else 'was not running'}")


@app.command()
def status(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Show each service: running or not, pid, endpoint. Exit 1 unless all of them run."""
    from rci.services.stack import stack_status

    data_dir = (data_dir or settings_from_env().data_dir).absolute()
    rows = stack_status(data_dir)
    table = Table(title=f"rci services ({data_dir})")
    for column in ("service", "state", "pid", "endpoint", "detail"):
        table.add_column(column)
    for row in rows:
        state = "[green]running[/]" if row.running else "[red]down[/]"
        table.add_row(row.name, state, str(row.pid or "-"), row.endpoint, row.detail)
    console.print(table)
    if not all(row.running for row in rows):
        raise typer.Exit(1)


def _print_env(data_dir: Path) -> None:
    from rci.services.stack import env_file

    path = env_file(data_dir)
    if not path.exists():
        return
    console.print(path.read_text().rstrip(), highlight=False, markup=False, soft_wrap=True)
    console.print(f"[bold]source {path}[/] to point rci commands at these services")
