"""`rci review` as a process on the real broker: it reads what the topics hold, a verdict posted with the
token lands on rci.reviews, one without it is refused. (A headless-browser test is still to come.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from rci.core.settings import Settings
from rci.services.ports import free_port
from rci.streams.contracts import ReviewVerdict
from rci.streams.processes import settings_env
from rci.streams.readback import read_until
from tests.review.conftest import dead_letter, event, score
from tests.streams.worker_harness import produce

pytestmark = pytest.mark.integration
TOKEN = "review-token-1"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def _post(url: str, form: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object) -> None:
        return None


@pytest.mark.timeout(300)
def test_rci_review_shows_the_topics_and_writes_verdicts(rci_settings: Settings, tmp_path: Path) -> None:
    settings = rci_settings
    copy = score("copy-1", 0.91, candidate_id="orig-1")
    produce(settings, [(b"orig-1", event("orig-1", title="original").to_json_bytes()),
                       (b"copy-1", event("copy-1", title="the copy").to_json_bytes())])  # fmt: skip
    records = [(s.video_id.encode(), s.to_json_bytes()) for s in (score("orig-1", 0.0, candidate_id=None), copy)]
    produce(settings.model_copy(update={"topic_published": settings.topic_scores}), records)
    produce(settings.model_copy(update={"topic_published": settings.topic_dlq}), [(b"junk", dead_letter(5).to_json_bytes())])

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCI_")} | settings_env(settings)
    env |= {"RCI_REVIEW_PORT": str(port), "RCI_REVIEW_TOKEN": TOKEN}
    log = (tmp_path / "review.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "rci", "review"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        html = ""
        while "copy-1" not in html or "orig-1" not in html:
            assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "review.log").read_text()
            time.sleep(0.5)
            html = _get(f"{base}/")[1] if _get(f"{base}/healthz")[0] == 200 else ""
        assert "invalid_json" in _get(f"{base}/?view=dlq")[1]
        status, detail = _get(f"{base}/videos/copy-1")
        assert status == 200 and "the copy" in detail and "original" in detail

        form = {"verdict": "overturn", "reason": "a parody", "reviewer": "mod-7"}
        assert _post(f"{base}/videos/copy-1/verdict", form) == 403
        assert _post(f"{base}/videos/copy-1/verdict", form | {"token": TOKEN}) == 303
        got = read_until(settings, [settings.topic_reviews], lambda r: len(r) >= 1, timeout_s=30)
        [(topic, key, value)] = got
        verdict = ReviewVerdict.model_validate_json(value)
        assert (key, verdict.candidate_id, verdict.verdict, verdict.reviewer) == (b"copy-1", "orig-1", "overturn", "mod-7")

        # the verdicts as training labels: an overturned deboost is a negative pair
        out = tmp_path / "labels.jsonl"
        exported = subprocess.run([sys.executable, "-m", "rci", "reviews", "export", str(out)], env=env,
                                  capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        [row] = [json.loads(line) for line in out.read_text().splitlines()]
        assert (row["query_id"], row["candidate_id"], row["label"]) == ("copy-1", "orig-1", 0)
    finally:
        server.terminate()
        assert server.wait(30) == 0, (tmp_path / "review.log").read_text()
        log.close()
