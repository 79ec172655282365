"""`rci publish` and `rci tail`: put `video.published` events on the broker, watch the output topics.

Both speak only the topic contracts (rci.streams.contracts), like any outside producer or downstream
consumer would.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rci.cli.context import settings_from_env
from rci.core import rfc3339
from rci.core.errors import RCIError
from rci.core.settings import Settings
from rci.streams.contracts import DeadLetterRecord, PublishedEvent, ScoreRecord, ShadowRecord
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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise EventSourceError(
            f"{path.name}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "an events file is JSON Lines in UTF-8, nothing sent"
        ) from exc
    events, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(PublishedEvent.model_validate_json(line))
        except ValidationError as exc:
            problems.append(f"{path.name}:{number}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
    if problems:
        raise EventSourceError(f"{len(problems)} invalid event(s), nothing sent:\n" + "\n".join(problems[:20]))
    return events


class PublishOrder(StrEnum):
    """The order a media folder is published in (and the order of its increasing `published_at`)."""

    MTIME = "mtime"  # oldest file first: originals before the copies made from them
    NAME = "name"  # by file name


def events_from_media_dir(folder: Path, order: PublishOrder = PublishOrder.MTIME) -> list[PublishedEvent]:
    """One event per media file, in `order`: id and title from the stem, `published_at` increasing.

    Retrieval compares a video only with videos published earlier, so the events get distinct,
    increasing times one millisecond apart, ending now: with the default order a copy made after
    its original is published after it. Ties (same modification time) go by name.
    """
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES]
    if not files:
        raise EventSourceError(f"no media files ({', '.join(sorted(MEDIA_SUFFIXES))}) in {folder}")
    if order == PublishOrder.MTIME:
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    else:
        files.sort(key=lambda p: p.name)
    by_id: dict[str, Path] = {}
    for path in files:
        video_id = video_id_from_stem(path.stem)
        if video_id in by_id:
            raise EventSourceError(f"{path.name} and {by_id[video_id].name} would both be video_id {video_id!r}")
        by_id[video_id] = path
    start = rfc3339.parse(rfc3339.now()) - timedelta(milliseconds=len(by_id) - 1)
    return [
        PublishedEvent(
            schema_version=1, video_id=video_id, media_uri=path.absolute().as_uri(), title=path.stem,
            published_at=rfc3339.format(start + timedelta(milliseconds=i)),
        )
        for i, (video_id, path) in enumerate(by_id.items())
    ]


def load_events(source: Path, order: PublishOrder = PublishOrder.MTIME) -> list[PublishedEvent]:
    return events_from_media_dir(source, order) if source.is_dir() else events_from_jsonl(source)


def _outside_allowed(settings: Settings, events: list[PublishedEvent]) -> list[str]:
    prefixes = settings.resolved_media_prefixes
    return [e.video_id for e in events if not e.media_uri.startswith(prefixes)]


# --- rci publish ---------------------------------------------------------------------------------
def publish(
    source: Path = typer.Argument(..., exists=True, help="A JSONL file of events, or a folder of media files."),
    order: PublishOrder = typer.Option(
        PublishOrder.MTIME, "--order",
        help="A folder's publication order, and so of its increasing published_at: mtime (oldest file first) "
        "or name. Retrieval compares a video only with earlier ones. A JSONL file is sent as written.",
    ),
) -> None:
    """Publish `video.published` events (validated against the contract first, keyed by video_id).

    A folder of media becomes one event per file, published in `--order` with increasing
    `published_at`, so originals come before the copies made from them.
    """
    settings = settings_from_env()
    try:
        events = load_events(source, order)
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


class TailTopic(StrEnum):
    """The output topics `rci tail` can follow (their names come from RCI_TOPIC_*)."""

    SCORES = "scores"
    DLQ = "dlq"
    SHADOW = "shadow"


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _dead_letter_video(record: DeadLetterRecord) -> str:
    """The rejected record's video_id when its original value still names one, else `-`."""
    try:
        value = json.loads(record.original_bytes())
    except (ValueError, TypeError):  # not base64, not UTF-8, not JSON: exactly why it was rejected
        return "-"
    video_id = value.get("video_id") if isinstance(value, dict) else None
    return _short(video_id, 40) if isinstance(video_id, str) and video_id else "-"


# One view per topic: the contract model, the columns and how a record fills them.
_VIEWS: dict[TailTopic, tuple[type[BaseModel], tuple[tuple[str, str], ...], Callable[[Any], tuple[str, ...]]]] = {
    TailTopic.SCORES: (
        ScoreRecord,
        (("video_id", "left"), ("candidate", "left"), ("score", "right"), ("deboost", "center"), ("latency", "right")),
        lambda r: (r.video_id, r.candidate_id or "-", f"{r.score:.3f}", "[red]yes[/]" if r.deboost else "no",
                   f"{r.latency_ms / 1000:.2f} s"),
    ),
    TailTopic.DLQ: (
        DeadLetterRecord,
        (("video_id", "left"), ("error", "left"), ("detail", "left"), ("from", "left"), ("failed_at", "left")),
        lambda r: (escape(_dead_letter_video(r)), f"[red]{r.error}[/]", escape(_short(r.detail)),
                   escape(f"{r.topic}[{r.partition}]@{r.offset}"), r.failed_at),
    ),
    TailTopic.SHADOW: (
        ShadowRecord,
        (("video_id", "left"), ("candidate", "left"), ("student", "right"), ("teacher", "right"), ("agree", "center")),
        lambda r: (r.video_id, r.candidate_id or "-", f"{r.student_score:.3f}", f"{r.teacher_score:.3f}",
                   "yes" if r.agree else "[red]no[/]"),
    ),
}


def _table(topic: TailTopic, name: str, rows: deque[BaseModel], total: int, bad: int) -> Table:
    _, columns, cells = _VIEWS[topic]
    table = Table(title=f"{name}: {total} records" + (f", {bad} not matching the contract" if bad else ""))
    for column, justify in columns:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for record in rows:
        table.add_row(*cells(record))
    return table


def _topic_name(settings: Settings, topic: TailTopic) -> str:
    return {TailTopic.SCORES: settings.topic_scores, TailTopic.DLQ: settings.topic_dlq,
            TailTopic.SHADOW: settings.topic_shadow}[topic]  # fmt: skip


def tail(
    topic: TailTopic = typer.Option(TailTopic.SCORES, "--topic",
                                    help="scores (rci.scores), dlq (video.published.dlq) or shadow (rci.shadow)."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the oldest record, not the end."),
    max_records: int = typer.Option(0, "--max", min=0, help="Stop after N records (0: no limit); exit 1 if fewer came."),
    timeout: float = typer.Option(0.0, "--timeout", min=0, help="Stop after this many seconds (0: run until Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="Print each record's raw JSON value on its own line."),
    rows: int = typer.Option(20, "--rows", min=1, max=10_000, help="Rows kept in the live table."),
) -> None:
    """Follow an output topic as a live table: scores (video, candidate, score, deboost, latency), the
    dead-letter topic (video, error code, detail, where the record came from) or the shadow scores."""
    settings = settings_from_env()
    name = _topic_name(settings, topic)
    model = _VIEWS[topic][0]
    recent: deque[BaseModel] = deque(maxlen=rows)
    total = bad = 0
    try:
        records = _records(settings, name, from_beginning, max_records, timeout)
        if as_json:
            for value in records:
                total += 1
                print(value.decode("utf-8", "replace"), flush=True)
        else:
            with Live(_table(topic, name, recent, 0, 0), console=Console(), refresh_per_second=4) as live:
                for value in records:
                    total += 1
                    try:
                        recent.append(model.model_validate_json(value))
                    except ValidationError:
                        bad += 1
                    live.update(_table(topic, name, recent, total, bad))
    except (BrokerUnavailable, KafkaClientError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        pass
    if max_records and total < max_records:
        console.print(f"[yellow]{total} of {max_records} records before the timeout[/]")
        raise typer.Exit(1)
