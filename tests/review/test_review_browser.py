"""The review page in headless Chromium (Debian's chromium and chromedriver, driven by Selenium), on what a
real worker scored: an original and a copy trimmed from its second 2, through the real broker, the demo's
trained models and the local feature store. The list shows both videos; the copy's page shows its decision,
the matched segments, both videos' frames side by side (the same pictures, two seconds apart) and the visual
and audio heat maps, whose peaks lie on the trim offset; a verdict with the
token lands on rci.reviews, one with a wrong token is refused, and a replay then scores the copy again
without deboosting it (the overturned verdict is remembered). Screenshots go to RCI_REVIEW_SCREENSHOTS
(docs/figures when the README's pictures are refreshed by hand), else to the test's folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rci.core.settings import Settings
from rci.services.ports import free_port
from rci.streams.contracts import ReviewVerdict
from rci.streams.processes import ChildProcess, settings_env
from rci.streams.readback import read_until
from tests.media.mediafactory import ffmpeg_cli
from tests.streams.worker_harness import encode, produce, published_event, read_outputs

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TOKEN = "browser-review-token"
TRIM_S = 2


def original_and_trimmed_copy(folder: Path) -> tuple[Path, Path]:
    from rci.training.corpus.generate import make_corpus

    corpus = make_corpus(folder / "corpus", n_sources=1, seed=24, reproductions_per_source=0, hard_negatives=False,
                         unrelated_per_source=0, min_duration_s=8.0, max_duration_s=8.0, workers=1, progress=False)  # fmt: skip
    [event] = corpus.events
    original = folder / "original.mp4"
    shutil.copyfile(corpus.root / "media" / Path(event.media_uri).name, original)
    copy = folder / "trimmed.mp4"
    subprocess.run([ffmpeg_cli(), "-v", "error", "-y", "-ss", str(TRIM_S), "-i", str(original), "-t", "5",
                    "-c:v", "libx264", "-crf", "24", "-c:a", "aac", str(copy)], check=True)  # fmt: skip
    return original, copy


def chromium(user_data: Path):  # noqa: ANN201 - selenium's WebDriver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={user_data}", "--window-size=1280,1100"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def frame_difference(base: str, video_second: int, candidate_second: int) -> float:
    """Mean absolute pixel difference of the copy's frame and the original's frame the page set beside it."""
    import io

    import numpy as np
    from PIL import Image

    def pixels(side: str, second: int) -> np.ndarray:
        with urllib.request.urlopen(f"{base}/videos/trimmed/frames/{side}/{second}.jpg", timeout=10) as reply:
            return np.asarray(Image.open(io.BytesIO(reply.read())), dtype=np.float32)

    return float(np.abs(pixels("video", video_second) - pixels("candidate", candidate_second)).mean())


def wait_for(condition, timeout_s: float = 60.0, what: str = "") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver (scripts/bootstrap.sh)")
@pytest.mark.timeout(900)
def test_a_moderator_reviews_a_deboosted_trimmed_copy_in_chromium(
    rci_settings: Settings, trained_model_dir: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    settings = rci_settings.model_copy(update={"model_dir": trained_model_dir})
    original, copy = original_and_trimmed_copy(settings.media_dir)
    worker = ChildProcess("worker", settings, tmp_path / "worker.log")
    try:  # the original is indexed before its copy is published, as rci demo does
        produce(settings, [encode(published_event("original", original, 0, title="sunset over the harbour"))])
        read_outputs(settings, expected_total=1, timeout_s=400)
        produce(settings, [encode(published_event("trimmed", copy, 60, title="harbour sunset (best part)"))])
        out = read_outputs(settings, expected_total=2, timeout_s=400)
    finally:
        assert worker.stop() == 0, worker.log_tail()
    scored = {s.video_id: s for s in out.scores}
    assert scored["trimmed"].deboost and scored["trimmed"].candidate_id == "original", scored["trimmed"]

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCI_")} | settings_env(settings)
    env |= {"RCI_REVIEW_PORT": str(port), "RCI_REVIEW_TOKEN": TOKEN}
    log = (tmp_path / "review.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "rci", "review"], env=env, stdout=log, stderr=subprocess.STDOUT)
    shots = Path(os.environ.get("RCI_REVIEW_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    browser = chromium(tmp_path / "chromium")
    base = f"http://127.0.0.1:{port}"
    try:
        def listed() -> list[str]:
            try:
                browser.get(base + "/")
            except Exception:  # noqa: BLE001 - not listening yet
                return []
            return [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#scores .score-row td:first-child a")]

        wait_for(lambda: sorted(listed()) == ["original", "trimmed"], 120, "both videos on the list")
        browser.save_screenshot(str(shots / "review-list.png"))

        browser.get(base + "/videos/trimmed")
        assert "deboosted" in browser.find_element(By.ID, "video").text
        heat_map = browser.find_element(By.ID, "visual-map")
        wait_for(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", heat_map),
                 60, "the heat map image")  # fmt: skip
        assert browser.find_elements(By.CSS_SELECTOR, "#query-timeline span"), "no matched segment drawn"
        images = browser.find_elements(By.CSS_SELECTOR, "#frames img, #audio-map")
        wait_for(lambda: all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
                             for i in images), 60, "both videos' frames and the audio map")  # fmt: skip
        second = lambda image: int(image.get_attribute("id").rsplit("-", 1)[1])  # noqa: E731 - frame-<side>-<second>
        pairs = list(zip(map(second, browser.find_elements(By.CSS_SELECTOR, "#frames-video img")),
                         map(second, browser.find_elements(By.CSS_SELECTOR, "#frames-candidate img")), strict=True))  # fmt: skip
        assert len(pairs) >= 2 and all(c - q == TRIM_S for q, c in pairs), pairs  # the copy's second q is the original's q + 2
        for q, c in pairs:  # side by side, the same picture
            assert frame_difference(base, q, c) < 12, (q, c)
        browser.set_window_size(1280, 1500)  # the whole page, maps included
        browser.save_screenshot(str(shots / "review-detail.png"))

        for modality in ("visual", "audio"):  # both maps peak on the trim: the copy's second i is the original's i + 2
            with urllib.request.urlopen(f"{base}/videos/trimmed/{modality}.json", timeout=30) as reply:
                similarity = json.loads(reply.read())["similarity"]
            offsets = sorted(max(range(len(row)), key=row.__getitem__) - i for i, row in enumerate(similarity))
            assert offsets[len(offsets) // 2] == TRIM_S, (modality, offsets, similarity)

        def post_verdict(token: str) -> None:
            browser.get(base + "/videos/trimmed")
            browser.find_element(By.CSS_SELECTOR, "input[name=verdict][value=overturn]").click()
            browser.find_element(By.NAME, "reason").send_keys("licensed re-upload by the original's author")
            browser.find_element(By.NAME, "reviewer").send_keys("moderator-1")
            browser.find_element(By.NAME, "token").send_keys(token)
            browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()

        post_verdict("not-the-token")
        wait_for(lambda: "a verdict needs the review token" in browser.page_source, 30, "the refusal")
        post_verdict(TOKEN)
        wait_for(lambda: "verdict 'overturn' recorded" in browser.page_source, 30, "the verdict's confirmation")
        [(_, key, value)] = read_until(settings, [settings.topic_reviews], lambda r: len(r) >= 1, timeout_s=30)
        verdict = ReviewVerdict.model_validate_json(value)
        assert (key, verdict.candidate_id, verdict.verdict, verdict.deboost) == (b"trimmed", "original", "overturn", True)
    finally:
        browser.quit()
        server.terminate()
        server.wait(30)
        log.close()

    # the overturn is remembered: a replay of the topic scores the copy again, but does not deboost it
    replay = subprocess.run([sys.executable, "-m", "rci", "replay", "--since", "2000-01-01T00:00:00Z"], env=env,
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    again = [s for s in read_outputs(settings, expected_total=4, timeout_s=60).scores if s.video_id == "trimmed"]
    assert [s.deboost for s in again] == [True, False], again
    assert again[-1].score == again[0].score and again[-1].evidence.model_extra == {"review": "overturned"}
