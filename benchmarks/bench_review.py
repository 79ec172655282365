"""How fast one video's review page loads, images included, cold cache, with 10k scores on the topic.

    .venv/bin/python -m benchmarks.bench_review --help

A local Kafka broker (from the jars) holds `--scores` score records (and their publish events); `--pages`
of them are pairs whose frame embeddings are in the local feature store, so their pages carry the visual
heat map. `rci review` runs as a process; headless Chromium (Debian's chromium and chromedriver) with its
cache disabled loads each of those pages `--rounds` times, and the browser's own Navigation Timing gives
the time to the load event (HTML and the heat map PNG, rendered on request). Figures go to
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
from rci.features.cache import FeatureCache
from rci.inference.features import VideoFeatures
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


def _features(video_id: str, frames: np.ndarray) -> VideoFeatures:
    return VideoFeatures(video_id=video_id, encoder_version=ENCODERS, visual=frames.astype(np.float32),
                         visual_mask=np.ones(len(frames), bool), audio=np.zeros(8, np.float32), has_audio=False,
                         text=np.zeros((1, 8), np.float32), text_mask=np.zeros(1, bool), duration_s=float(len(frames)))  # fmt: skip


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

    async def put_features() -> None:
        for vid in measured:
            original = rng.normal(size=(frames, 512))
            await cache.put(_features(f"{vid}-source", original))
            await cache.put(_features(vid, original[5:25] + 0.1 * rng.normal(size=(20, 512))))

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
    """Load-event times (ms) of each page, `rounds` times, cache disabled."""
    browser = chromium(profile)
    try:
        browser.get(base + "/")  # the browser itself warmed up, not the pages
        times = []
        for _ in range(rounds):
            for vid in pages:
                browser.get(f"{base}/videos/{vid}")
                ms = browser.execute_script("const [n] = performance.getEntriesByType('navigation'); return n.loadEventEnd;")
                image_ok = browser.execute_script("const i = document.getElementById('visual-map'); return i && i.naturalWidth > 0;")
                if not image_ok:
                    raise RuntimeError(f"{vid}: the heat map did not load")
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
    parser.add_argument("--pages", type=int, default=20, help="detail pages measured (each with a heat map)")
    parser.add_argument("--rounds", type=int, default=3, help="loads of each page")
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
            pages = fill(settings, args.scores, args.pages)
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
    p50, p95 = np.percentile(times, [50, 95])
    rows = [["scores on the topic", args.scores], ["detail pages x loads", f"{args.pages} x {args.rounds}"],
            ["load event, p50 (ms)", round(float(p50), 1)], ["load event, p95 (ms)", round(float(p95), 1)],
            ["load event, max (ms)", round(max(times), 1)], [f"p95 under {P95_GOAL_MS:.0f} ms", bool(p95 < P95_GOAL_MS)],
            ["time to list every score after start (s)", round(caught_up_s, 1)],
            ["records produced in (s)", round(filled_s, 1)]]  # fmt: skip
    body = ("A detail page with its visual heat map (rendered on request), cold cache (Chromium's cache disabled), "
            "time to the load event from the browser's Navigation Timing.\n\n" + markdown_table(["figure", "value"], rows))  # fmt: skip
    if args.no_record:
        print(body)
    else:
        record("Review page: detail view load time (benchmarks.bench_review)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
