"""How fast one video's review page loads, images included, cold cache, with 10k scores on the topic.

    .venv/bin/python -m benchmarks.bench_review --help

A local Kafka broker (from the jars) holds `--scores` score records (and their publish events); `--pages`
of them are pairs whose features (frame embeddings, audio fingerprints) and frame sheets are in the local
feature store, so their pages carry 8 frames and the visual and audio heat maps. `rci review` runs as a
process; headless Chromium (Debian's chromium and chromedriver) with its HTTP cache disabled loads each of
those pages once (`--rounds` more times on request: Chromium's in-memory image cache keeps a page's images
across navigations even with the HTTP cache disabled, so a second load of a page is not cold; the recorded
figures load each page once), and the browser's own Navigation Timing gives the time to the load event (HTML, the
frames cut from the sheets and both heat maps, rendered on request). Also measured: what storing a video's
frame sheet costs the worker (rci.media.thumbnails, 32 frames of 224x224). Figures go to
benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.record import markdown_table, record
from rci.core.settings import Settings
from rci.features.cache import NO_URI, FeatureCache
from rci.inference.features import VideoFeatures
from rci.media.fingerprint import HOP_S
from rci.media.synth import synthetic_picture
from rci.media.thumbnails import contact_sheet
from rci.services.kafka_broker import KafkaBroker
from rci.services.kafka_jars import cache_root_from_env, ensure_jars
from rci.services.ports import free_port
from rci.storage.objects import make_object_store
from rci.streams.contracts import PublishedEvent, ScoreRecord
from rci.streams.kafka import ensure_topics, make_producer, produce_with_backpressure
from rci.streams.processes import settings_env

ENCODERS = "enc-bench"
MODEL_VERSION = f"matchlite-bench+enc.{ENCODERS}"
P95_GOAL_MS = 300.0
IMAGES_PER_PAGE = 8 + 2  # 4 pairs of frames along the matched segment, the visual and the audio map


def _features(video_id: str, frames: np.ndarray, fingerprint: np.ndarray) -> VideoFeatures:
    return VideoFeatures(video_id=video_id, encoder_version=ENCODERS, visual=frames.astype(np.float32),
                         visual_mask=np.ones(len(frames), bool), audio=np.zeros(8, np.float32), has_audio=True,
                         text=np.zeros((1, 8), np.float32), text_mask=np.zeros(1, bool), duration_s=float(len(frames)),
                         audio_fingerprint=fingerprint)  # fmt: skip


def pictures(count: int, seed: int) -> np.ndarray:
    """[count, 224, 224, 3] uint8: the generated pictures of rci.media.synth with camera-like noise on them
    (flat blocks alone would flatter JPEG)."""
    rng = np.random.default_rng(seed)
    frames = np.stack([synthetic_picture(second, 224, 224, seed) for second in range(count)]).astype(np.float32)
    return np.clip(frames + rng.normal(0, 12, size=frames.shape), 0, 255).astype(np.uint8)


def sheet_cost(frames: int = 32, repeats: int = 20) -> tuple[float, int]:
    """(ms, bytes) of one video's frame sheet, as the worker makes it."""
    shots = pictures(frames, seed=7)
    mask = np.ones(frames, bool)
    contact_sheet(shots, mask)  # imports and first-use costs are paid once per worker, not per video
    start = time.perf_counter()
    for _ in range(repeats):
        sheet = contact_sheet(shots, mask)
    return 1000 * (time.perf_counter() - start) / repeats, len(sheet or b"")


def _score(video_id: str, candidate_id: str, value: float, i: int) -> ScoreRecord:
    return ScoreRecord(video_id=video_id, candidate_id=candidate_id, retrieval_similarity=0.9, score=value,
                       deboost=value >= 0.5, threshold=0.5, model_version=MODEL_VERSION, modalities=["visual"],
                       evidence={"matched_segments": [[0.0, 10.0, 5.0, 15.0]]}, published_at="2026-12-01T10:00:00Z",
                       scored_at=f"2026-12-01T10:{(i // 60) % 60:02d}:{i % 60:02d}Z", latency_ms=800.0)  # fmt: skip


def fill(settings: Settings, scores: int, pages: int, frames: int = 30) -> list[str]:
    """`scores` score records on the topic, the first `pages` with features in the store; -> those ids."""
    rng = np.random.default_rng(0)
    cache = FeatureCache(make_object_store(settings))
    measured = [f"page-{i:03d}" for i in range(pages)]

    trim = int(round(5 / HOP_S))  # the copy starts 5 s into its source

    async def put_features() -> None:
        for n, vid in enumerate(measured):
            original = rng.normal(size=(frames, 512))
            printed = rng.integers(0, 2**32, size=int(frames / HOP_S), dtype=np.uint32)
            await cache.put(_features(f"{vid}-source", original, printed))
            await cache.put(_features(vid, original[5:25] + 0.1 * rng.normal(size=(20, 512)),
                                      printed[trim : trim + int(20 / HOP_S)]))  # fmt: skip
            shots = pictures(frames, seed=n)
            for video_id, sheet in ((f"{vid}-source", contact_sheet(shots, np.ones(frames, bool))),
                                    (vid, contact_sheet(shots[5:25], np.ones(20, bool)))):  # fmt: skip
                await cache.put_frames(video_id, ENCODERS, NO_URI, sheet)

    asyncio.run(put_features())
    producer = make_producer(settings)
    for i in range(scores):
        vid = measured[i] if i < pages else f"filler-{i:05d}"
        record = _score(vid, f"{vid}-source", float(rng.uniform()), i)
        produce_with_backpressure(producer, settings.topic_scores, record.to_json_bytes(), vid.encode())
        event = PublishedEvent(schema_version=1, video_id=vid, media_uri=f"s3://media/{vid}.mp4", title=f"video {vid}",
                               duration_s=20.0, published_at="2026-12-01T10:00:00Z")  # fmt: skip
        produce_with_backpressure(producer, settings.topic_published, event.to_json_bytes(), vid.encode())
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("records not acknowledged")
    return measured


def chromium(profile: Path):  # noqa: ANN201 - selenium's WebDriver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1280,1100"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return driver


def measure(base: str, pages: list[str], rounds: int, profile: Path) -> list[float]:
    """Load-event times (ms) of each page but the first, `rounds` times, HTTP cache disabled (the first round
    is cold). The first page warms the browser's image decoders and the server's threads up, unmeasured."""
    browser = chromium(profile)
    try:
        browser.get(base + "/")
        warm_up, pages = pages[0], pages[1:]
        browser.get(f"{base}/videos/{warm_up}")
        times = []
        for _ in range(rounds):
            for vid in pages:
                browser.get(f"{base}/videos/{vid}")
                ms = browser.execute_script("const [n] = performance.getEntriesByType('navigation'); return n.loadEventEnd;")
                images = browser.execute_script(
                    "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length;")
                if images != IMAGES_PER_PAGE:
                    raise RuntimeError(f"{vid}: {images} of {IMAGES_PER_PAGE} images loaded")
                times.append(float(ms))
        return times
    finally:
        browser.quit()


def wait_listed(base: str, scores: int, timeout_s: float = 300.0) -> float:
    """Seconds until the review page lists every score (it reads the topic from its start)."""
    import re
    import urllib.request

    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            with urllib.request.urlopen(base + "/", timeout=10) as page:
                if (m := re.search(r">all \((\d+)\)<", page.read().decode())) and int(m.group(1)) >= scores:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the review page did not list {scores} scores in {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_review", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores", type=int, default=10_000, help="score records on rci.scores")
    parser.add_argument("--pages", type=int, default=60, help="detail pages measured (each with 8 frames and 2 heat maps)")
    parser.add_argument("--rounds", type=int, default=1, help="loads of each page (after the first, its images are warm)")
    parser.add_argument("--no-record", action="store_true", help="print, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="rci-bench-review-") as tmp:
        root = Path(tmp)
        broker = KafkaBroker(root / "kafka", libs=ensure_jars(cache_root_from_env()))
        broker.start()
        server = None
        try:
            settings = Settings(data_dir=root / "rci", kafka_bootstrap=broker.bootstrap, topic_partitions=6,
                                review_port=free_port())  # fmt: skip
            ensure_topics(settings)
            t0 = time.monotonic()
            pages = fill(settings, args.scores, args.pages + 1)  # + the warm-up page
            filled_s = time.monotonic() - t0
            env = {k: v for k, v in os.environ.items() if not k.startswith("RCI_")} | settings_env(settings)
            server = subprocess.Popen([sys.executable, "-m", "rci", "review"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)  # fmt: skip
            base = f"http://127.0.0.1:{settings.review_port}"
            caught_up_s = wait_listed(base, args.scores)
            times = measure(base, pages, args.rounds, root / "chromium")
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)
            broker.stop()
    sheet_ms, sheet_bytes = sheet_cost()
    p50, p95 = np.percentile(times, [50, 95])
    rows = [["scores on the topic", args.scores], ["detail pages x loads", f"{args.pages} x {args.rounds}"],
            ["load event, p50 (ms)", round(float(p50), 1)], ["load event, p95 (ms)", round(float(p95), 1)],
            ["load event, max (ms)", round(max(times), 1)], [f"p95 under {P95_GOAL_MS:.0f} ms", bool(p95 < P95_GOAL_MS)],
            ["time to list every score after start (s)", round(caught_up_s, 1)],
            ["records produced in (s)", round(filled_s, 1)],
            ["worker: one video's frame sheet, 32 frames (ms)", round(sheet_ms, 1)],
            ["worker: one video's frame sheet (kB)", round(sheet_bytes / 1000, 1)]]  # fmt: skip
    body = ("A detail page with 8 frames cut from the videos' sheets and the visual and audio heat maps (rendered "
            "on request), cold cache (Chromium's cache disabled), time to the load event from the browser's "
            "Navigation Timing. The sheet's cost is the worker's, per video, on generated pictures with noise "
            "(one core).\n\n" + markdown_table(["figure", "value"], rows))  # fmt: skip
    if args.no_record:
        print(body)
    else:
        record("Review page: detail view load time (benchmarks.bench_review)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
