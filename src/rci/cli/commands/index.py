"""`rci index rebuild`: re-encode and re-index the published videos after the encoders changed.

The worker's Milvus collection is named by encoder version, so new encoders in RCI_MODEL_DIR start
an empty index; this replays `video.published` into it (the logic: `rci.streams.reindex`).
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rci.cli.context import settings_from_env

app = typer.Typer(help="The Milvus index of published videos (one collection per encoder version).",
                  no_args_is_help=True)  # fmt: skip


@app.command("rebuild")
def rebuild(
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Records read, and videos encoded, per batch."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read and validate the topic only: count, encode nothing, write nothing."),
) -> None:
    """Replay video.published (earliest -> its end at start) into the current encoders' collection.

    Each valid event goes through the features path (cached features of these encoders are reused) and is upserted by video_id as the worker indexes it, so a second run gives the same index.

    Invalid records and media that can no longer be fetched are counted and skipped.

    A Milvus Lite path (the default) is locked by one process: stop the worker holding it, or use the served Milvus (`rci services up`).
    """
    settings = settings_from_env()
    from rci.core.errors import RCIError
    from rci.streams.reindex import rebuild_index

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as bar:  # fmt: skip
        task = bar.add_task("dry run" if dry_run else "re-index", total=None, status="")

        def on_progress(s) -> None:
            status = f"{s.indexed} indexed, {s.skipped_invalid} invalid, {s.skipped_media} media gone"
            bar.update(task, total=s.records, completed=s.read, status=status)

        try:
            summary = rebuild_index(settings, batch_size=batch_size, dry_run=dry_run, on_progress=on_progress)
        except RCIError as exc:
            bar.stop()
            typer.secho(f"index rebuild failed: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from exc
    table = Table(title=f"{summary.topic} -> {summary.collection or 'nothing (dry run)'}")
    rows = {"records read": summary.read, "distinct valid videos": summary.videos}
    if not dry_run:
        rows |= {"videos indexed": summary.indexed, "skipped: media gone": summary.skipped_media,
                 "skipped: no frames": summary.skipped_no_visual}  # fmt: skip
    rows |= {"skipped: invalid records": summary.skipped_invalid, "seconds": f"{summary.seconds:.1f}"}
    for name in rows:
        table.add_column(name, justify="right")
    table.add_row(*(str(v) for v in rows.values()))
    Console().print(table)
    if summary.unreplayable:
        typer.secho(f"{summary.unreplayable} earlier records were deleted by the topic's retention: "
                    "their videos are not in the rebuilt index", fg=typer.colors.YELLOW, err=True)  # fmt: skip
