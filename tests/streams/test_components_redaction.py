"""The worker's start-up log line never shows the Milvus URI's password (issue 15)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from structlog.testing import capture_logs

from rci.core.settings import Settings
from rci.streams import components


async def test_serving_parts_log_redacts_the_milvus_password(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # Everything heavy is stubbed: only the log line is under test.
    encoders = SimpleNamespace(version="enc", feature_spec=lambda max_frames: None)
    scorer = SimpleNamespace(model_version="m", threshold=0.5, config=None)
    monkeypatch.setattr(components, "EncoderBundle", SimpleNamespace(load=lambda *a, **k: encoders))
    monkeypatch.setattr(components, "load_matchlite", lambda settings: scorer)
    monkeypatch.setattr(components, "check_model_fits", lambda *a: None)
    monkeypatch.setattr(components, "open_feature_pipeline", lambda *a, **k: SimpleNamespace(cache=None))
    monkeypatch.setattr(components, "open_candidate_index", lambda *a, **k: None)
    settings = Settings(data_dir=tmp_path, milvus_uri="http://root:hunter2-milvus@milvus.internal:19530")
    with capture_logs() as logs:
        parts = await components.open_serving_parts(settings)
    parts.executor.shutdown(wait=False)
    ready = [entry for entry in logs if entry["event"] == "serving parts ready"]
    assert ready and ready[0]["milvus"] == "http://root:***@milvus.internal:19530"
    assert "hunter2" not in repr(logs)
