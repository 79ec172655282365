"""Catalogue operations: `rci replay`, `rci index backfill`, `rci forget`.

The logic lives in `rci.streams.replay`, `rci.streams.backfill` and `rci.streams.forget`; these
commands parse options, show progress and print what was done.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rci.cli.commands.stream import EventSourceError, PublishOrder, load_events
from rci.cli.context import settings_from_env
from rci.core.errors import RCIError

console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console)  # fmt: skip


def _print_row(title: str, rows: dict[str, object]) -> None:
    table = Table(title=title)
    for name in rows:
        table.add_column(name, justify="right")
    table.add_row(*(str(v) for v in rows.values()))
    Console().print(table)


def _fail(what: str, exc: Exception) -> typer.Exit:
    typer.secho(f"{what} failed: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def replay(
    since: str = typer.Option(None, "--since", metavar="TIME",
                              help="Replay every partition from its first record received at or after TIME (RFC 3339, e.g. 2026-12-01T00:00:00Z; the records' Kafka timestamps)."),
    offsets: str = typer.Option(None, "--offsets", metavar="PARTITION:OFFSET[,..]",
                                help="Replay only these partitions, each from its offset."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Records per scoring batch (default RCI_BATCH_MAX_SIZE)."),
) -> None:  # fmt: skip
    """Re-score a window of video.published into rci.scores with the models in RCI_MODEL_DIR.

    The window ends at the topic's end when the replay starts. Scoring is the worker's own path; under an unchanged model_version the score memo gives the first scores again (identical records), under a new one new scores are written. Invalid records are counted, not dead-lettered again; videos named by `rci forget` are skipped.

    A Milvus Lite path (the default) is locked by one process: stop the worker holding it, or use the served Milvus (`rci services up`).
    """
    settings = settings_from_env()
    from rci.streams.replay import ReplayWindowError, parse_offsets, replay_scores

    with _progress() as bar:
        task = bar.add_task("replay", total=None, status="")

        def on_progress(s) -> None:
            bar.update(task, total=s.records, completed=s.read,
                       status=f"{s.scored} scored, {s.skipped_invalid} invalid, {s.skipped_forgotten} forgotten")  # fmt: skip

        try:
            starts = parse_offsets(offsets) if offsets is not None else None
            summary = replay_scores(settings, since=since, offsets=starts, batch_size=batch_size, on_progress=on_progress)
        except ReplayWindowError as exc:
            bar.stop()
            typer.secho(f"replay: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
        except RCIError as exc:
            bar.stop()
            raise _fail("replay", exc) from exc
    windows = ", ".join(f"{w.partition}:{w.low}-{w.high}" for w in summary.windows if w.high > w.low) or "empty"
    _print_row(f"{summary.topic} [{windows}] -> {settings.topic_scores} ({summary.model_version})", {
        "records read": summary.read, "scores written": summary.scored, "videos": len(summary.scored_ids),
        "skipped: invalid": summary.skipped_invalid, "skipped: forgotten": summary.skipped_forgotten,
        "seconds": f"{summary.seconds:.1f}",
    })  # fmt: skip
    if summary.unreplayable:
        typer.secho(f"{summary.unreplayable} asked records were already deleted by the topic's retention",
                    fg=typer.colors.YELLOW, err=True)  # fmt: skip


def backfill(
    source: Path = typer.Argument(..., exists=True, help="A JSONL file of video.published events, or a folder of media files (as `rci publish` reads it)."),
    order: PublishOrder = typer.Option(PublishOrder.MTIME, "--order", help="A folder's published_at order: by modification time (oldest first) or by name."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Videos encoded per batch."),
) -> None:  # fmt: skip
    """Index an existing catalogue without scoring it: features extracted and cached, vectors upserted into the current encoders' collection, nothing written to rci.scores.

    Later uploads are then matched against the catalogue. Media that cannot be fetched is counted and skipped; videos named by `rci forget` are skipped. A second run changes nothing.
    """
    settings = settings_from_env()
    from rci.streams.backfill import backfill_index

    try:
        events = load_events(source, order)
    except EventSourceError as exc:
        typer.secho(f"index backfill: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    with _progress() as bar:
        task = bar.add_task("backfill", total=len(events), status="")

        def on_progress(s) -> None:
            bar.update(task, completed=s.read, status=f"{s.indexed} indexed, {s.skipped_media} media rejected")

        try:
            summary = backfill_index(settings, events, source=str(source), batch_size=batch_size, on_progress=on_progress)
        except RCIError as exc:
            bar.stop()
            raise _fail("index backfill", exc) from exc
    _print_row(f"{source} -> {summary.collection}", {
        "videos": len(events), "indexed": summary.indexed, "skipped: media rejected": summary.skipped_media,
        "skipped: no frames": summary.skipped_no_visual, "skipped: forgotten": summary.skipped_forgotten,
        "seconds": f"{summary.seconds:.1f}",
    })  # fmt: skip


def forget(
    video_ids: list[str] = typer.Argument(..., metavar="VIDEO_ID...", help="The videos to remove."),
    reason: str = typer.Option("", "--reason", help="Why (a takedown or request reference): kept in the record."),
) -> None:
    """Remove videos from the index (every encoder version's collection), the feature store and the score memo.

    For takedowns and erasure requests. Appends one JSON line per video to <RCI_DATA_DIR>/forgotten.jsonl and logs it; `rci replay`, `rci index backfill` and `rci index rebuild` skip the videos named there. An id with nothing stored is reported "not found" (exit 0). Topic records, the shadow catalog and the media are not touched.

    A Milvus Lite path (the default) is locked by one process: stop the worker holding it, or use the served Milvus.
    """
    settings = settings_from_env()
    from rci.streams.forget import forget as forget_videos
    from rci.streams.forget import record_path

    try:
        results = forget_videos(settings, video_ids, reason=reason)
    except RCIError as exc:
        raise _fail("forget", exc) from exc
    for r in results:
        if r.found:
            typer.echo(f"{r.video_id}: forgotten (index: {', '.join(r.index_collections) or 'not indexed'}; "
                       f"{len(r.feature_objects)} feature objects, {len(r.score_objects)} memoised scores)")  # fmt: skip
        else:
            typer.echo(f"{r.video_id}: not found")
    typer.echo(f"recorded in {record_path(settings)}")
