"""Records in flight when a worker process died, counted across restarts (issue 15: durable attempts).

The in-memory poison isolation (`rci.streams.isolation`) catches a record whose processing raises. A
record that kills the process itself (a decoder crash, an out-of-memory kill) leaves no exception to
catch: it is re-delivered to the restarted worker, kills it again, and the partition never moves on.

So before each batch the worker writes, per partition, which offsets it is about to process
(`inflight/<group>/<topic>/<partition>.json` in the object store beside the score memo) and clears the
marker once the batch is written and indexed (best effort: the next batch of the partition replaces
it). A marker still there when a batch is next taken names the records that were in flight when the
last owner of the partition stopped without finishing: each such record has crashed one more time. The worker then processes every suspect on its own, so an
innocent neighbour is scored and the culprit alone is marked again; a record that was in flight at
`max_crashes` deaths is dead-lettered as `internal_error` without being processed again.

Costs one read and two writes of a small object per partition per batch. A stop that exits without
finishing its batch on purpose (the drain timeout, exit 75) counts like a crash.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from rci.storage.errors import ObjectNotFound
from rci.storage.objects import ObjectStore
from rci.streams.pipeline import InputRecord

Partition = tuple[str, int]  # (topic, partition)


class CrashLedger:
    def __init__(self, store: ObjectStore, group: str) -> None:
        self._store = store
        self._group = group

    def key(self, partition: Partition) -> str:
        topic, number = partition
        return f"inflight/{self._group}/{topic}/{number}.json"

    async def crashes(self, records: Sequence[InputRecord]) -> list[int]:
        """Per record, in order: how many times a process died while it was being processed."""
        markers = {p: await self._read(p) for p in _partitions(records)}
        counts = []
        for record in records:
            processing, waiting = markers[(record.topic, record.partition)]
            if record.offset in processing:
                counts.append(processing[record.offset] + 1)
            else:
                counts.append(waiting.get(record.offset, 0))
        return counts

    async def begin(self, processing: Sequence[tuple[InputRecord, int]],
                    waiting: Sequence[tuple[InputRecord, int]] = ()) -> None:
        """Mark `processing` in flight with their crash counts so far, and note `waiting` (taken, not yet
        processed: a death now is not theirs) with theirs; replaces the marker of each partition involved."""
        markers: dict[Partition, dict[str, dict[str, int]]] = defaultdict(lambda: {"processing": {}, "waiting": {}})
        for part, items in (("processing", processing), ("waiting", waiting)):
            for record, count in items:
                markers[(record.topic, record.partition)][part][str(record.offset)] = count
        for partition, marker in sorted(markers.items()):
            await self._store.put(self.key(partition), json.dumps(marker).encode())

    async def end(self, records: Sequence[InputRecord]) -> None:
        """The records are written: nothing of these partitions is in flight any more."""
        for partition in _partitions(records):
            await self._store.delete(self.key(partition))

    async def _read(self, partition: Partition) -> tuple[dict[int, int], dict[int, int]]:
        try:
            data = json.loads(await self._store.get(self.key(partition)))
            return _offsets(data, "processing"), _offsets(data, "waiting")
        except (ObjectNotFound, ValueError, TypeError, AttributeError):  # none, or torn or foreign: nothing known
            return {}, {}


def _offsets(marker: dict, part: str) -> dict[int, int]:
    return {int(offset): int(count) for offset, count in marker.get(part, {}).items()}


def _partitions(records: Sequence[InputRecord]) -> list[Partition]:
    return sorted({(r.topic, r.partition) for r in records})
