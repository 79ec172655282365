"""`rci publish` and `rci tail`: put `video.published` events on the broker, watch `rci.scores`.

Both speak only the topic contracts (rci.streams.contracts), like any outside producer or downstream
consumer would.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import typer
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rci.cli.context import settings_from_env
from rci.core import rfc3339
from rci.core.errors import RCIError
from rci.core.settings import Settings
from rci.streams.contracts import PublishedEvent, ScoreRecord
from rci.streams.kafka import BrokerUnavailable, KafkaClientError, cluster_metadata, make_consumer, publish_events

console = Console(stderr=True)  # stdout stays clean for --json and for pipes

MEDIA_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".ts", ".flv", ".wav", ".mp3", ".m4a", ".flac", ".ogg"})  # fmt: skip
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9._:-]+")


class EventSourceError(RCIError):
    """The events to publish cannot be read or do not follow the contract (nothing was sent)."""


# --- event sources -------------------------------------------------------------------------------
def video_id_from_stem(stem: str) -> str:
    """A contract-valid video_id (1-128 of [A-Za-z0-9._:-]) from a file name stem."""
    cleaned = _NOT_ID_CHARS.sub("-", stem).strip("-")[:128]
    return cleaned or "video"


def events_from_jsonl(path: Path) -> list[PublishedEvent]:
    """One event per non-blank line; every line is validated before anything is sent."""
    events, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(PublishedEvent.model_validate_json(line))
        except ValidationError as exc:
            problems.append(f"{path.name}:{number}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
    if problems:
        raise EventSourceError(f"{len(problems)} invalid event(s), nothing sent:\n" + "\n".join(problems[:20]))
    return events


def events_from_media_dir(folder: Path) -> list[PublishedEvent]:
    """One event per media file (sorted by name): id and title from the stem, published now."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    if not files:
        raise EventSourceError(f"no media files ({', '.join(sorted(MEDIA_SUFFIXES))}) in {folder}")
    by_id: dict[str, Path] = {}
    for path in files:
        video_id = video_id_from_stem(path.stem)
        if video_id in by_id:
            raise EventSourceError(f"{path.name} and {by_id[video_id].name} would both be video_id {video_id!r}")
        by_id[video_id] = path
    now = rfc3339.now()
    return [
        PublishedEvent(
            schema_version=1, video_id=video_id, media_uri=path.absolute().as_uri(), title=path.stem, published_at=now
        )
        for video_id, path in by_id.items()
    ]


def load_events(source: Path) -> list[PublishedEvent]:
    return events_from_media_dir(source) if source.is_dir() else events_from_jsonl(source)


def _outside_allowed(settings: Settings, events: list[PublishedEvent]) -> list[str]:
    prefixes = settings.resolved_media_prefixes
    return [e.video_id for e in events if not e.media_uri.startswith(prefixes)]


# --- rci publish ---------------------------------------------------------------------------------
def publish(
    source: Path = typer.Argument(..., exists=True, help="A JSONL file of events, or a folder of media files."),
) -> None:
    """Publish `video.published` events (validated against the contract first, keyed by video_id)."""
    settings = settings_from_env()
    try:
        events = load_events(source)
    except (EventSourceError, OSError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    outside = _outside_allowed(settings, events)
    if outside:
        console.print(f"[yellow]{len(outside)} event(s) point outside RCI_MEDIA_ALLOWED_PREFIXES; the worker will "
                      f"dead-letter them: {', '.join(outside[:5])}[/]")
    try:
        cluster_metadata(settings, timeout_s=10)
    except KafkaClientError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc

    with Progress(TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:  # fmt: skip
        task = progress.add_task("publish", total=len(events))
        report = publish_events(settings, events, on_delivery=lambda _ok: progress.advance(task))
    console.print(f"delivered {report.delivered}/{len(events)} events to {settings.topic_published}")
    if report.failed or report.unacknowledged:
        for video_id, error in report.failed[:10]:
            console.print(f"[red]failed {video_id}: {error}[/]")
        if report.unacknowledged:
            console.print(f"[red]{report.unacknowledged} event(s) not acknowledged before the timeout[/]")
        raise typer.Exit(1)


# --- rci tail ------------------------------------------------------------------------------------
def _assign(consumer: object, topic: str, from_beginning: bool, settings: Settings) -> None:
    metadata = cluster_metadata(settings, timeout_s=10)
    if topic not in metadata.topics:
        raise KafkaClientError(f"topic {topic} does not exist")
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(topic, p, start) for p in sorted(metadata.topics[topic].partitions)])


def _records(settings: Settings, topic: str, from_beginning: bool, limit: int, timeout_s: float) -> Iterator[bytes]:
    """Values of `topic` until `limit` records (0 = no limit) or `timeout_s` seconds (0 = forever)."""
    # A throwaway group, never committed: tail is a read-only observer of the topic.
    consumer = make_consumer(settings, f"rci-tail-{uuid.uuid4().hex[:12]}")
    try:
        _assign(consumer, topic, from_beginning, settings)
        deadline = time.monotonic() + timeout_s if timeout_s else None
        seen = 0
        while (not limit or seen < limit) and (deadline is None or time.monotonic() < deadline):
            message = consumer.poll(0.25)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaClientError(f"consuming {topic}: {message.error().str()}")
            seen += 1
            yield message.value() or b""
    finally:
        consumer.close()


def _score_table(rows: deque[ScoreRecord], total: int, bad: int) -> Table:
    table = Table(title=f"rci.scores: {total} records" + (f", {bad} not matching the contract" if bad else ""))
    for column, justify in (("video_id", "left"), ("candidate", "left"), ("score", "right"), ("deboost", "center"),
                            ("latency", "right")):  # fmt: skip
        table.add_column(column, justify=justify)
    for record in rows:
        table.add_row(
            record.video_id,
            record.candidate_id or "-",
            f"{record.score:.3f}",
            "[red]yes[/]" if record.deboost else "no",
            f"{record.latency_ms / 1000:.2f} s",
        )
    return table


def tail(
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the oldest record, not the end."),
    max_records: int = typer.Option(0, "--max", min=0, help="Stop after N records (0: no limit); exit 1 if fewer came."),
    timeout: float = typer.Option(0.0, "--timeout", min=0, help="Stop after this many seconds (0: run until Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="Print each record's raw JSON value on its own line."),
    rows: int = typer.Option(20, help="Rows kept in the live table."),
) -> None:
    """Follow `rci.scores`: a live table of video, candidate, score, deboost and latency."""
    settings = settings_from_env()
    recent: deque[ScoreRecord] = deque(maxlen=rows)
    total = bad = 0
    try:
        records = _records(settings, settings.topic_scores, from_beginning, max_records, timeout)
        if as_json:
            for value in records:
                total += 1
                print(value.decode("utf-8", "replace"), flush=True)
        else:
            with Live(_score_table(recent, 0, 0), console=Console(), refresh_per_second=4) as live:
                for value in records:
                    total += 1
                    try:
                        recent.append(ScoreRecord.model_validate_json(value))
                    except ValidationError:
                        bad += 1
                    live.update(_score_table(recent, total, bad))
    except (BrokerUnavailable, KafkaClientError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        pass
    if max_records and total < max_records:
        console.print(f"[yellow]{total} of {max_records} records before the timeout[/]")
        raise typer.Exit(1)
