"""The shadow runner's concrete parts (as `rci.streams.components` holds the worker's):

* `CatalogLookup`: published events from `rci.streams.catalog`, catching up once on a miss;
* `KafkaShadowWriter`: `rci.shadow` records through the worker's acknowledged write path (`rci.streams.sink`);
* `load_installed_teacher`: the teacher of the model directory: the feature-level MatchLMF where one is
  installed (it reads the features the worker stored), else MatchLM (it reads the media, through
  `rci.media.reader.MediaReader`, as the worker's features path reads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rci.core.settings import Settings
from rci.core.threads import OwnThread
from rci.streams.catalog import PublishedCatalog
from rci.streams.contracts import PublishedEvent, ShadowRecord
from rci.streams.sink import AcknowledgedWriter

if TYPE_CHECKING:  # the teachers' modules import torch: loaded when the teacher is
    from rci.inference.matchlm.teacher import MatchLMTeacher
    from rci.inference.matchlmf.teacher import MatchLMFTeacher


class CatalogLookup:
    """`VideoLookup` on the published catalog: read, and on a miss catch up with the topic once.

    A scored video was published before its score was written, so after one catch-up a video
    still missing is truly unknown (e.g. past the topic's retention before the catalog saw it).
    """

    def __init__(self, catalog: PublishedCatalog) -> None:
        self._catalog = catalog
        self._thread = OwnThread("catalog")

    async def events(self, video_ids: set[str]) -> dict[str, PublishedEvent]:
        found = await self._thread.run(self._catalog.get, video_ids)
        if len(found) < len(video_ids):
            await self._thread.run(self._catalog.catch_up)
            found = await self._thread.run(self._catalog.get, video_ids)
        return found

    async def catch_up(self) -> int:
        return await self._thread.run(self._catalog.catch_up)

    def close(self) -> None:
        self._thread.close()
        self._catalog.close()


class KafkaShadowWriter:
    """`rci.shadow` records keyed by video_id, acknowledged before `write` returns (SinkError otherwise)."""

    def __init__(self, writer: AcknowledgedWriter, topic: str) -> None:
        self._writer = writer
        self._topic = topic

    async def write(self, records: Sequence[ShadowRecord]) -> None:
        await self._writer.write([(self._topic, r.video_id.encode("utf-8"), r.to_json_bytes()) for r in records])


def load_installed_teacher(settings: Settings) -> MatchLMTeacher | MatchLMFTeacher:
    """MatchLMF from `<model_dir>/matchlmf/model.pt` when installed, else MatchLM from `<model_dir>/matchlm/`,
    on the configured device (ModelError when neither is there)."""
    from rci.inference.encoders.base import pick_device
    from rci.inference.model_dir import matchlm_dir, matchlmf_checkpoint

    device = pick_device(settings.device)
    feature_teacher = matchlmf_checkpoint(settings.resolved_model_dir)
    if feature_teacher.exists():
        from rci.inference.matchlmf.loader import load_matchlmf_teacher

        return load_matchlmf_teacher(feature_teacher, device=device)
    from rci.inference.matchlm.loader import load_matchlm

    return load_matchlm(matchlm_dir(settings.resolved_model_dir), device=device)
