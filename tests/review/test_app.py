"""The review page's web app over HTTP (aiohttp's test server, the verdict sink faked at the Kafka boundary):
what each page shows, escaping, the token, bad requests. tests/review/test_review_e2e.py runs it for real."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from rci.core.errors import TransientError
from rci.core.settings import Settings
from rci.review.app import make_app, timeline
from rci.inference.features import VideoFeatures
from rci.review.index import ReviewIndex
from rci.media.fingerprint import HOP_S
from rci.media.thumbnails import contact_sheet
from rci.inference.features import real_frame_similarity as visual_similarity
from rci.review.maps import aligned_seconds, audio_similarity
from rci.streams.contracts import ReviewVerdict
from tests.review.conftest import dead_letter, event, score, shadow

TOKEN = "s3cret-token"


class Sink:
    def __init__(self) -> None:
        self.sent: list[ReviewVerdict] = []
        self.fail = False

    async def __call__(self, record: ReviewVerdict) -> None:
        if self.fail:
            raise TransientError("broker down")
        self.sent.append(record)


@pytest.fixture
def index() -> ReviewIndex:
    index = ReviewIndex()
    index.add_event(event("orig", title="an original"))
    index.add_event(event("copy", title="<script>alert(1)</script> copy", sticker_text="wait & see"))
    index.add_score(score("orig", 0.01, candidate_id=None, evidence={"matched_segments": []}))
    copy = score("copy", 0.93)
    index.add_score(copy)
    index.add_shadow(shadow(copy, teacher=0.2, agree=False))
    index.add_dead_letter("bad key", dead_letter(3))
    return index


def features_of(video_id: str, rows: np.ndarray, fingerprint: np.ndarray) -> VideoFeatures:
    return VideoFeatures(video_id=video_id, encoder_version="e1", visual=rows.astype(np.float32),
                         visual_mask=np.ones(len(rows), bool), audio=np.zeros(4, np.float32), has_audio=True,
                         text=np.zeros((1, 4), np.float32), text_mask=np.zeros(1, bool), duration_s=float(len(rows)),
                         audio_fingerprint=fingerprint)  # fmt: skip


RNG = np.random.default_rng(0)
ORIGINAL = RNG.normal(size=(10, 16))
PRINT = RNG.integers(0, 2**32, size=int(10 / HOP_S), dtype=np.uint32)  # 10 s of sub-fingerprints
TRIM = int(round(3 / HOP_S))  # the copy starts 3 s into the original
COPY_PRINT = PRINT[TRIM : TRIM + int(6 / HOP_S)] ^ (1 << RNG.integers(0, 32, size=int(6 / HOP_S))).astype(np.uint32)
STORE = {  # the feature store: "copy" is seconds 3-8 of "orig", slightly changed
    ("orig", "e1"): features_of("orig", ORIGINAL, PRINT),
    ("copy", "e1"): features_of("copy", ORIGINAL[3:9] + 0.1 * RNG.normal(size=(6, 16)), COPY_PRINT),
}
COLOURS = {"orig": 10, "copy": 200}  # each second's frame is a flat grey: base + 4 x second


def sheet(video_id: str, seconds: int) -> bytes:
    shades = COLOURS[video_id] + 4 * np.arange(seconds, dtype=np.uint8)
    frames = np.broadcast_to(shades[:, None, None, None], (seconds, 224, 224, 3)).astype(np.uint8)
    return contact_sheet(frames, np.ones(seconds, bool))


SHEETS = {("orig", "e1"): sheet("orig", 10), ("copy", "e1"): sheet("copy", 6)}


async def from_store(video_id: str, encoder_version: str) -> VideoFeatures | None:
    return STORE.get((video_id, encoder_version))


async def frames_from_store(video_id: str, encoder_version: str) -> bytes | None:
    return SHEETS.get((video_id, encoder_version))


async def client_for(index: ReviewIndex, sink: Sink, token: str | None = TOKEN) -> TestClient:
    settings = Settings(review_token=SecretStr(token) if token else None)
    client = TestClient(TestServer(make_app(settings, index, sink, ready=lambda: True, features=from_store,
                                             frames=frames_from_store)))
    await client.start_server()
    return client


@pytest.fixture
async def client(index: ReviewIndex) -> AsyncIterator[tuple[TestClient, Sink]]:
    sink = Sink()
    client = await client_for(index, sink)
    yield client, sink
    await client.close()


async def test_the_list_shows_every_scored_video_and_filters(client) -> None:
    http, _ = client
    page = await http.get("/")
    html = await page.text()
    assert page.status == 200 and page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert re.findall(r'<a href="/videos/([^"]+)">', html) == ["copy", "orig"]
    disagree = await (await http.get("/?view=disagree")).text()
    assert re.findall(r'<a href="/videos/([^"]+)">', disagree) == ["copy"]
    dlq = await (await http.get("/?view=dlq")).text()
    assert "invalid_json" in dlq and "bad key" in dlq
    assert (await http.get("/?view=everything")).status == 400
    assert (await http.get("/?page=x")).status == 400


async def test_a_videos_page_shows_its_evidence_escaped(client) -> None:
    http, _ = client
    page = await http.get("/videos/copy")
    html = await page.text()
    assert page.status == 200
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; copy" in html
    assert "wait &amp; see" in html and "an original" in html  # both titles, side by side
    assert "0.2000 (matchlm-test): disagrees" in html
    # the 2-6 s of an 8 s query and the 0-4 s of an 8 s candidate, as bars
    assert 'style="left: 25.0%; width: 50.0%"' in html and 'style="left: 0.0%; width: 50.0%"' in html
    assert (await http.get("/videos/nobody")).status == 404
    assert (await http.get("/videos/..%2Fetc")).status == 404


async def test_a_verdict_needs_the_token_and_lands_on_the_sink(client) -> None:
    http, sink = client
    form = {"verdict": "overturn", "reason": "a parody, not a copy", "reviewer": "mod-1"}
    refused = await http.post("/videos/copy/verdict", data=form | {"token": "wrong"})
    assert refused.status == 403 and sink.sent == []
    assert (await http.post("/videos/copy/verdict", data=form)).status == 403
    ok = await http.post("/videos/copy/verdict", data=form | {"token": TOKEN}, allow_redirects=False)
    assert ok.status == 303 and ok.headers["Location"].startswith("/videos/copy?")
    [sent] = sink.sent
    assert (sent.video_id, sent.candidate_id, sent.verdict, sent.score, sent.deboost) == ("copy", "orig", "overturn", 0.93, True)
    assert "a parody, not a copy" in await (await http.get("/videos/copy")).text()
    by_header = await http.post("/videos/copy/verdict", data=form | {"verdict": "confirm"},
                                headers={"Authorization": f"Bearer {TOKEN}"}, allow_redirects=False)  # fmt: skip
    assert by_header.status == 303 and sink.sent[-1].verdict == "confirm"


async def test_a_bad_verdict_or_a_down_broker_is_refused_with_a_reason(client) -> None:
    http, sink = client
    bad = await http.post("/videos/copy/verdict", data={"verdict": "maybe", "reason": "", "reviewer": "m", "token": TOKEN})
    assert bad.status == 400 and "verdict" in await bad.text() and sink.sent == []
    sink.fail = True
    down = await http.post("/videos/copy/verdict", data={"verdict": "confirm", "reason": "r", "reviewer": "m", "token": TOKEN})
    assert down.status == 503 and "try again" in await down.text()


async def test_without_a_token_the_page_is_read_only(index: ReviewIndex) -> None:
    sink = Sink()
    http = await client_for(index, sink, token=None)
    try:
        assert "Read-only" in await (await http.get("/videos/copy")).text()
        form = {"verdict": "confirm", "reason": "r", "reviewer": "m", "token": ""}
        assert (await http.post("/videos/copy/verdict", data=form)).status == 403 and sink.sent == []
    finally:
        await http.close()


def test_timeline_clips_segments_to_the_known_durations() -> None:
    bars = timeline(score("x", 0.9, evidence={"matched_segments": [[2.0, 12.0, 1.0, 3.0]]}), 8.0, None)
    assert bars.query == [(25.0, 75.0)] and bars.candidate == [(33.33, 66.67)]  # no duration: the segments' end


def test_the_visual_map_of_a_trimmed_copy_peaks_on_its_offset() -> None:
    matrix = visual_similarity(STORE[("copy", "e1")], STORE[("orig", "e1")])
    assert matrix.shape == (6, 10)
    assert list(matrix.argmax(axis=1)) == [3, 4, 5, 6, 7, 8]  # copy second i is original second i + 3


async def test_the_heat_map_is_served_from_the_feature_store_only(client, index: ReviewIndex) -> None:
    http, _ = client
    png = await http.get("/videos/copy/visual.png")
    assert png.status == 200 and png.content_type == "image/png" and (await png.read()).startswith(b"\x89PNG")
    assert '<img id="visual-map" src="/videos/copy/visual.png"' in await (await http.get("/videos/copy")).text()
    numbers = await (await http.get("/videos/copy/visual.json")).json()
    assert [max(range(10), key=row.__getitem__) for row in numbers["similarity"]] == [3, 4, 5, 6, 7, 8]
    assert (await http.get("/videos/orig/visual.png")).status == 404  # no candidate
    index.add_score(score("gone", 0.9))  # scored, but its features left the store
    assert (await http.get("/videos/gone/visual.png")).status == 404


def test_the_audio_map_of_a_trimmed_copy_peaks_on_its_offset() -> None:
    matrix = audio_similarity(STORE[("copy", "e1")], STORE[("orig", "e1")])
    assert matrix.shape == (6, 10)
    assert list(matrix.argmax(axis=1)) == [3, 4, 5, 6, 7, 8]
    assert matrix.max() > 0.8 and np.median(matrix) < 0.3  # the copied stretch stands out of chance


def test_frames_are_paired_along_the_matched_segments() -> None:
    assert aligned_seconds([[2.0, 6.0, 0.0, 4.0]]) == [(2, 0), (3, 1), (4, 2), (5, 3)]
    assert aligned_seconds([[0.0, 8.0, 0.0, 4.0]], per_segment=2) == [(0, 0), (4, 2)]  # a copy played 2x faster
    assert len(aligned_seconds([[0.0, 8.0, 0.0, 8.0]] * 3, per_segment=8, limit=5)) == 5


def shade(jpeg: bytes) -> float:
    from PIL import Image

    return float(np.asarray(Image.open(io.BytesIO(jpeg))).mean())


async def test_both_videos_frames_are_cut_from_their_sheets(client) -> None:
    http, _ = client
    html = await (await http.get("/videos/copy")).text()
    shown = re.findall(r'src="/videos/copy/frames/(video|candidate)/(\d+)\.jpg"', html)
    # the copy's 2-6 s matched the original's 0-4 s: each row shows one second of each
    assert shown == [("video", "2"), ("video", "3"), ("video", "4"), ("video", "5"),  # one row per video, the
                     ("candidate", "0"), ("candidate", "1"), ("candidate", "2"), ("candidate", "3")]  # pairs aligned  # fmt: skip
    for side, video_id, second in (("video", "copy", 4), ("candidate", "orig", 9)):
        jpeg = await http.get(f"/videos/copy/frames/{side}/{second}.jpg")
        assert jpeg.status == 200 and jpeg.content_type == "image/jpeg"
        assert abs(shade(await jpeg.read()) - (COLOURS[video_id] + 4 * second)) < 2
    assert (await http.get("/videos/copy/frames/video/6.jpg")).status == 404  # the copy has 6 frames
    assert (await http.get("/videos/copy/frames/other/1.jpg")).status == 404
    assert (await http.get("/videos/orig/frames/candidate/1.jpg")).status == 404  # no candidate


async def test_the_audio_heat_map_is_served(client) -> None:
    http, _ = client
    png = await http.get("/videos/copy/audio.png")
    assert png.status == 200 and (await png.read()).startswith(b"\x89PNG")
    numbers = await (await http.get("/videos/copy/audio.json")).json()
    assert [max(range(10), key=row.__getitem__) for row in numbers["similarity"]] == [3, 4, 5, 6, 7, 8]
    assert (await http.get("/videos/copy/smell.png")).status == 404
