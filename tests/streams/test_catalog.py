"""The published catalog on the real broker: latest valid event per video, resumable from SQLite."""

from __future__ import annotations

import json

import pytest

from rci.core.settings import Settings
from rci.streams.catalog import PublishedCatalog, catalog_path
from tests.streams.worker_harness import encode, produce, published_event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_catalog_keeps_the_latest_valid_event_and_resumes_from_its_offsets(rci_settings: Settings):
    settings: Settings = rci_settings
    media = settings.media_dir / "x.mp4"
    events = [published_event(f"v{i}", media, i) for i in range(20)]
    retitled = published_event("v3", media, 3, title="second upload")
    produce(settings, [encode(e) for e in events] + [
        (b"bad", b"{not json"),
        (b"v5", json.dumps({**events[5], "title": "x" * 1001}).encode()),  # invalid: must not replace v5
        encode(retitled),
    ])  # fmt: skip

    catalog = PublishedCatalog.open(settings)
    try:
        assert catalog.catch_up(timeout_s=60) == 23
        assert len(catalog) == 20
        found = catalog.get(["v3", "v5", "v19", "never"])
        assert set(found) == {"v3", "v5", "v19"}
        assert found["v3"].title == "second upload"
        assert found["v5"].title == events[5]["title"]
        assert found["v19"].media_uri == media.as_uri()
        assert catalog.catch_up(timeout_s=10) == 0  # already at the end
    finally:
        catalog.close()

    produce(settings, [encode(published_event("late", media, 99))])
    reopened = PublishedCatalog.open(settings)
    try:
        assert reopened.catch_up(timeout_s=60) == 1  # only what came after the stored offsets
        assert set(reopened.get(["late", "v0"])) == {"late", "v0"}
    finally:
        reopened.close()
    assert catalog_path(settings).is_file()
