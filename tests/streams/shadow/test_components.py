"""The shadow's Kafka writer: the worker's acknowledged write path, keyed by video_id."""

from __future__ import annotations

import pytest

from rci.streams.contracts import ShadowRecord
from rci.streams.shadow.components import KafkaShadowWriter
from rci.streams.sink import AcknowledgedWriter, SinkError


class AckingProducer:
    """Acknowledges every record on flush, or fails the ones whose key is in `refused`."""

    def __init__(self, refused: set[bytes] = frozenset()) -> None:
        self.refused = refused
        self.pending: list[tuple] = []
        self.written: list[tuple[str, bytes | None, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: object) -> None:
        self.pending.append((topic, key, value, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for topic, key, value, on_delivery in self.pending:
            on_delivery("broker refused" if key in self.refused else None, None)
            self.written.append((topic, key, value))
        self.pending.clear()
        return 0


def record(video_id: str) -> ShadowRecord:
    return ShadowRecord(video_id=video_id, candidate_id="a", student_score=0.6, teacher_score=0.4, agree=True,
                        student_model_version="s", teacher_model_version="t", scored_at="2026-11-22T10:00:02.000Z")  # fmt: skip


async def test_shadow_records_are_keyed_by_video_id_on_the_shadow_topic() -> None:
    producer = AckingProducer()
    await KafkaShadowWriter(AcknowledgedWriter(producer), "rci.shadow").write([record("b"), record("c")])
    assert producer.written == [("rci.shadow", b"b", record("b").to_json_bytes()),
                                ("rci.shadow", b"c", record("c").to_json_bytes())]  # fmt: skip


async def test_an_unacknowledged_shadow_record_fails_the_write_as_transient() -> None:
    writer = KafkaShadowWriter(AcknowledgedWriter(AckingProducer(refused={b"c"})), "rci.shadow")
    with pytest.raises(SinkError, match="1 failed"):
        await writer.write([record("b"), record("c")])


def test_an_installed_feature_teacher_is_the_one_served(tmp_path) -> None:
    import torch

    from rci.core.settings import Settings
    from rci.inference.matchlmf.loader import save_matchlmf
    from rci.inference.matchlmf.model import MatchLMF
    from rci.inference.model_dir import matchlmf_checkpoint
    from rci.streams.shadow.components import load_installed_teacher
    from tests.inference.matchlmf.matchlmf_inputs import CONFIG

    torch.manual_seed(0)
    meta = save_matchlmf(matchlmf_checkpoint(tmp_path), MatchLMF(CONFIG), {"threshold": 0.3, "encoder_version": "enc-9"})
    teacher = load_installed_teacher(Settings(model_dir=tmp_path, device="cpu"))
    assert (teacher.inputs, teacher.model_version, teacher.encoder_version) == ("features", meta["model_version"], "enc-9")
