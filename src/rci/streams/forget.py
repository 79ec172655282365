"""`rci forget`: remove videos from what the service keeps about them, for takedowns and erasure requests.

What is removed, per video id, for every encoder and model version (not only the current ones):

* the index: every vector of the id in each Milvus collection of RCI_MILVUS_COLLECTION
  (`rci.retrieval.erase`), so no later video is matched against it;
* the feature store: `features/<enc>/<id>.<uri digest>.npz` (each content stored for the id), the
  layout before content keys `features/<enc>/<id>.npz`, the pointer `features/<enc>/latest/<id>.key`
  and the frames' contact sheets `features/<enc>/<id>.<uri digest>.frames.jpg` (`rci.features.cache`);
* the score memo: `scores/<model_version>/<id>.<uri digest>.json` (`components.ObjectStoreScoreMemo`),
  so a re-delivery or a replay of the old event is scored afresh instead of recalled.

Keys are matched exactly (`<id>.` + 16 hex digits), so forgetting `a` never touches `a.b`'s objects.

Each run appends one JSON line per video to `<data_dir>/forgotten.jsonl` (what was found and removed,
when, and the operator's reason) and logs one `catalogue.forgotten` line per video. An id the service
holds nothing of is reported "not found" and recorded too; forgetting is idempotent. The record is also
what `rci replay`, `rci index backfill` and `rci index rebuild` consult: events of a forgotten video are
skipped there, since `video.published` itself keeps them until its retention deletes them.

Not removed: the records on the topics (`video.published`, `rci.scores`, `rci.shadow`; Kafka deletes
them by retention), the shadow consumer's catalog of published events, and the media itself.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rci.core import rfc3339
from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.features.cache import FRAMES_SUFFIX, URI_DIGEST_HEX
from rci.retrieval.erase import erase_from_settings
from rci.storage.objects import ObjectStore, make_object_store

log = get_logger(__name__)

RECORD_FILE = "forgotten.jsonl"
_DIGEST = re.compile(rf"[0-9a-f]{{{URI_DIGEST_HEX}}}")


@dataclass
class Forgotten:
    """What `forget` removed for one video id (one line of the record file)."""

    video_id: str
    index_collections: list[str] = field(default_factory=list)  # Milvus collections that held its vectors
    feature_objects: list[str] = field(default_factory=list)
    score_objects: list[str] = field(default_factory=list)
    forgotten_at: str = ""
    reason: str = ""

    @property
    def found(self) -> bool:
        return bool(self.index_collections or self.feature_objects or self.score_objects)

    def to_json(self) -> str:
        return json.dumps({"video_id": self.video_id, "found": self.found, **{k: v for k, v in asdict(self).items()
                                                                               if k != "video_id"}})


def record_path(settings: Settings) -> Path:
    return settings.data_dir.absolute() / RECORD_FILE


def forgotten_ids(settings: Settings) -> set[str]:
    """Every id the record file names (replay and backfill skip their events)."""
    path = record_path(settings)
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ids.add(json.loads(line)["video_id"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line of a crashed run: the run's other lines still count
    return ids


def forget(settings: Settings, video_ids: Sequence[str], reason: str = "") -> list[Forgotten]:
    """Remove `video_ids` from the index, the feature store and the score memo; record and log it.
    One `Forgotten` per distinct id, in the order given. Infrastructure errors propagate (nothing is
    recorded for that run); since every step is idempotent, running it again is the retry."""
    ids = list(dict.fromkeys(video_ids))
    removed_from_index = erase_from_settings(settings, ids)
    results = asyncio.run(_forget_objects(settings, ids))
    now = rfc3339.now()
    for result in results:
        result.index_collections = sorted(c for c, found in removed_from_index.items() if result.video_id in found)
        result.forgotten_at, result.reason = now, reason
    path = record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        for result in results:
            out.write(result.to_json() + "\n")
    for result in results:
        log.info("catalogue.forgotten", video_id=result.video_id, found=result.found,
                 index_collections=result.index_collections, feature_objects=len(result.feature_objects),
                 score_objects=len(result.score_objects), reason=reason, record=str(path))  # fmt: skip
    return results


async def _forget_objects(settings: Settings, ids: list[str]) -> list[Forgotten]:
    store = make_object_store(settings)
    try:
        encoders = [p.removeprefix("features/").rstrip("/") for p in await store.list_keys("features/", "/") if p.endswith("/")]
        models = [p.removeprefix("scores/").rstrip("/") for p in await store.list_keys("scores/", "/") if p.endswith("/")]
        results = []
        for video_id in ids:
            features = [key for enc in encoders for key in await _feature_keys(store, enc, video_id)]
            scores = [key for mv in models for key in await _owned(store, f"scores/{mv}/{video_id}.", ".json")]
            for key in features + scores:
                await store.delete(key)
            results.append(Forgotten(video_id, feature_objects=features, score_objects=scores))
        return results
    finally:
        await store.close()


async def _feature_keys(store: ObjectStore, encoder_version: str, video_id: str) -> list[str]:
    folder = f"features/{encoder_version}"
    keys = await _owned(store, f"{folder}/{video_id}.", ".npz")
    keys += await _owned(store, f"{folder}/{video_id}.", FRAMES_SUFFIX)  # the frames the review page shows
    for extra in (f"{folder}/{video_id}.npz", f"{folder}/latest/{video_id}.key"):  # the legacy entry, the pointer
        if await store.exists(extra):
            keys.append(extra)
    return keys


async def _owned(store: ObjectStore, prefix: str, suffix: str) -> list[str]:
    """Keys `<prefix><16 hex><suffix>`: exactly this id's entries (another id may start like it)."""
    return [key for key in await store.list_keys(prefix)
            if key.endswith(suffix) and _DIGEST.fullmatch(key[len(prefix) : -len(suffix)])]
