"""`rci index backfill`: bulk-index an existing catalogue without scoring it.

A platform that adopts the service already has videos: later uploads should be matched against
them, but scoring them (against each other) is not wanted. The catalogue is a list of
`video.published` events (a JSONL file, or a media folder as `rci publish` reads it: the CLI
builds the events); each one goes through the worker's features path and indexing code, the same
`rci.streams.reindex.Reindexer` that `rci index rebuild` uses: features extracted (allow-listed fetch,
decode, the frozen encoders) and cached under the current encoder version, the vectors upserted
into that version's Milvus collection by video_id. Nothing is written to any topic, and no score
memo is written, so a video published later on `video.published` is scored as usual.

Videos named in the `rci forget` record are skipped. Media that cannot be fetched or decoded is
counted and skipped. Every step is idempotent: a second run reads the cached features and leaves
the index as it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.inference.encoders.bundle import EncoderBundle
from rci.retrieval.milvus import collection_name
from rci.streams.components import open_candidate_index, open_feature_pipeline
from rci.streams.contracts import PublishedEvent
from rci.streams.forget import forgotten_ids
from rci.streams.reindex import DEFAULT_BATCH_SIZE, RebuildSummary, Reindexer

log = get_logger(__name__)


def backfill_index(
    settings: Settings,
    events: Sequence[PublishedEvent],
    *,
    source: str = "catalogue",
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[RebuildSummary], None] | None = None,
) -> RebuildSummary:
    """Index `events` (validated by their reader) into the current encoder version's collection."""
    return asyncio.run(_backfill(settings, list(events), source, batch_size, on_progress or (lambda _s: None)))


async def _backfill(settings: Settings, events: list[PublishedEvent], source: str, batch_size: int,
                    report: Callable[[RebuildSummary], None]) -> RebuildSummary:  # fmt: skip
    started = time.monotonic()
    forgotten = forgotten_ids(settings)
    kept = [e for e in events if e.video_id not in forgotten]
    summary = RebuildSummary(source, len(events), read=len(events) - len(kept), valid=len(kept),
                             skipped_forgotten=len(events) - len(kept))
    summary.valid_ids.update(e.video_id for e in kept)
    encoders = EncoderBundle.load(settings.resolved_model_dir, device=settings.device)
    reindexer = Reindexer(open_feature_pipeline(settings, encoders), open_candidate_index(settings, encoders), summary)
    summary.collection = collection_name(settings.milvus_collection, encoders.version)
    log.info("index.backfill_started", source=source, videos=len(kept), forgotten=summary.skipped_forgotten,
             collection=summary.collection)  # fmt: skip
    report(summary)
    try:
        for start in range(0, len(kept), batch_size):
            batch = kept[start : start + batch_size]
            await reindexer.add(batch)
            summary.read += len(batch)
            summary.seconds = time.monotonic() - started
            report(summary)
    finally:
        await reindexer.aclose()
    summary.seconds = time.monotonic() - started
    log.info("index.backfill_done", **summary.fields())
    return summary
