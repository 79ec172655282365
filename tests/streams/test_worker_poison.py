"""A poison record on the real broker: a contract-valid event whose scoring raises something unexpected
is dead-lettered as internal_error while a real `rci worker` scores the rest of its batch and stays up.

The unexpected exception is provoked as an operator could meet it: the event's stored score memo
(rci.streams.components.ObjectStoreScoreMemo, read back for every event before scoring) is corrupt,
so reading it raises pydantic's ValidationError, which no code turns into a dead letter. Before
poison isolation the worker exited 70 on that batch, and again on every re-delivery."""

from __future__ import annotations

from pathlib import Path

import pytest

from rci.core.errors import RejectCode
from rci.core.settings import Settings
from rci.storage.objects import LocalObjectStore
from rci.streams.components import ObjectStoreScoreMemo
from rci.streams.processes import ChildProcess
from tests.streams.worker_harness import encode, produce, published_event, read_outputs, write_media_library

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def test_a_poison_event_is_dead_lettered_as_internal_error_and_its_batch_is_scored(worker_settings: Settings,
                                                                                   tmp_path: Path):
    settings = worker_settings.model_copy(update={"batch_max_size": 16, "poison_max_attempts": 2})
    media = write_media_library(settings.media_dir, 4)
    worker = ChildProcess("worker", settings, tmp_path / "worker.log")
    try:
        produce(settings, [encode(published_event("warm", media[0], 0))])
        warm = read_outputs(settings, expected_total=1, timeout_s=400)
        assert warm.scored_ids == {"warm": 1}, worker.log_tail()
        model_version = warm.scores[0].model_version

        poison = published_event("poison", media[1], 30)
        memo = LocalObjectStore(settings.resolved_object_store_dir).path_for(
            ObjectStoreScoreMemo.key("poison", model_version, poison["media_uri"]))
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_bytes(b'{"schema_version": 1, "video_id": "poison", "score": "not a number"}')
        valid = [published_event(f"ok{i:02d}", media[i % len(media)], 10 + i) for i in range(10)]
        produce(settings, [encode(e) for e in valid[:5] + [poison] + valid[5:]])  # mid-batch

        out = read_outputs(settings, expected_total=1 + len(valid) + 1, timeout_s=400)
        assert worker.alive(), worker.log_tail()
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()

    assert set(out.scored_ids) == {"warm"} | {e["video_id"] for e in valid}, worker.log_tail()
    assert len(out.dead_letters) == 1
    key, letter = out.dead_letters[0]
    assert key == b"poison" and letter.error == RejectCode.INTERNAL_ERROR
    assert letter.detail.startswith("failed 2 times on its own: pydantic_core._pydantic_core.ValidationError: "), \
        letter.detail
    assert "poison record isolated" in worker.log_path.read_text(errors="replace")
