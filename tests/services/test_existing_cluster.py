"""The README's "An existing Kafka cluster" section, driven as written against a local broker with TLS and
SASL listeners (tests/services/conftest.py): the `rci` commands are taken from the README itself, run as
child processes with SCRAM-SHA-512 over TLS and RCI_KAFKA_EXTRA, on the demo's trained models, a served
Milvus and the local object store. Only what a one-broker test cluster forces is changed: the topics'
shape (one partition, one replica) and the paths (our media folder, our replay time)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rci.core import rfc3339
from rci.core.settings import Settings
from rci.inference.checkpoint import load_checkpoint
from rci.inference.model_dir import matchlite_checkpoint, publish_matchlite
from rci.services.kafka_broker import KafkaBroker
from rci.services.ports import free_port
from rci.streams.contracts import ScoreRecord
from rci.streams.processes import ChildProcess, settings_env
from rci.streams.readback import read_until
from tests.media.mediafactory import ffmpeg_cli
from tests.services.conftest import SCRAM_USERS
from tests.streams.worker_harness import encode, produce, published_event, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SECTION = "### An existing Kafka cluster"


def readme_commands() -> list[list[str]]:
    """The `rci ...` lines of the section's bash blocks, comments dropped, as argument lists."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) + len(SECTION):]
    section = section[: re.search(r"\n#{2,3} ", section).start()]  # up to the next heading
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("rci ")]


def adapted(command: list[str], replacements: dict[str, str]) -> list[str]:
    """`command` with the values of the options in `replacements` (and `{path}`, a positional) changed."""
    out = list(command)
    for i, word in enumerate(out):
        if word in replacements and i + 1 < len(out):
            out[i + 1] = replacements[word]
    return [replacements.get("{path}", w) if w.startswith("./") else w for w in out]


def cluster_settings(broker: KafkaBroker, pki: Path, milvus_uri: str, models: Path, tmp_path: Path) -> Settings:
    """What an operator exports for the team's cluster: SASL_SSL + SCRAM-SHA-512, the CA, RCI_KAFKA_EXTRA,
    and the default RCI_KAFKA_AUTO_OFFSET_RESET (latest)."""
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap=broker.scram_bootstrap, kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="rci", kafka_sasl_password=SCRAM_USERS.users["rci"],
        kafka_ssl_cafile=pki / "ca.pem",
        kafka_extra={"client.id": "rci-worker", "session.timeout.ms": 30000},
        topic_published=f"video.published.{suffix}", topic_scores=f"rci.scores.{suffix}",
        topic_dlq=f"video.published.dlq.{suffix}", topic_shadow=f"rci.shadow.{suffix}", topic_reviews=f"rci.reviews.{suffix}",
        worker_group=f"rci-worker-{suffix}", milvus_uri=milvus_uri, milvus_collection=f"rci_videos_{suffix}",
        data_dir=tmp_path / "rci", model_dir=models, media_allowed_prefixes=((tmp_path / "my-videos").as_uri() + "/",),
        metrics_port=free_port(),
    )  # fmt: skip


def rci(command: list[str], settings: Settings, timeout_s: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCI_")} | settings_env(settings)
    env.setdefault("HF_HUB_OFFLINE", "1")
    done = subprocess.run([sys.executable, "-m", "rci", *command[1:]], env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)  # fmt: skip
    assert done.returncode == 0, f"{shlex.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def original_and_copy(folder: Path) -> tuple[Path, Path]:
    """A generated original (pictures, music, speech, title) and, made later, its edited re-upload:
    cropped 10%, brightened, re-encoded. File times give `rci publish` their order."""
    from rci.training.corpus.generate import make_corpus

    corpus = make_corpus(folder.parent / "corpus", n_sources=1, seed=11, reproductions_per_source=0,
                         hard_negatives=False, unrelated_per_source=0, min_duration_s=6.0, max_duration_s=8.0,
                         workers=1, progress=False)  # fmt: skip
    [event] = corpus.events
    original = folder / "sunset-original.mp4"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(corpus.root / "media" / Path(event.media_uri).name, original)
    copy = folder / "sunset-repost.mp4"
    subprocess.run([ffmpeg_cli(), "-v", "error", "-y", "-i", str(original),
                    "-vf", "crop=iw*0.9:ih*0.9,scale=trunc(iw/2)*2:trunc(ih/2)*2,eq=brightness=0.04",
                    "-c:v", "libx264", "-crf", "26", "-c:a", "aac", "-b:a", "96k", str(copy)], check=True)  # fmt: skip
    os.utime(original, (time.time() - 60, time.time() - 60))
    return original, copy


def scores(settings: Settings, count: int, timeout_s: float) -> list[ScoreRecord]:
    got = read_until(settings, [settings.topic_scores], lambda r: len(r) >= count, timeout_s=timeout_s)
    return [ScoreRecord.model_validate_json(value) for _, _, value in got]


def with_new_model_version(models: Path, into: Path) -> Path:
    """A model update as a team ships one: the same serving stack under a new MatchLite model_version."""
    shutil.copytree(models, into)
    model, meta = load_checkpoint(matchlite_checkpoint(into))
    publish_matchlite(into, model, meta | {"model_version": f"{meta['model_version']}-update-1"})
    return into


@pytest.mark.timeout(1200)
def test_the_readme_existing_cluster_section_end_to_end(
    tls_broker: KafkaBroker, pki: Path, milvus_server, trained_model_dir: Path, tmp_path: Path
) -> None:
    settings = cluster_settings(tls_broker, pki, milvus_server.uri, trained_model_dir, tmp_path)
    commands = readme_commands()
    assert [c[:3] for c in commands] == [["rci", "topics", "create"], ["rci", "topics", "create"], ["rci", "topics", "describe"],
                                         ["rci", "worker"], ["rci", "publish", "./my-videos"], ["rci", "replay", "--since"]]  # fmt: skip
    dry_run, create, describe, worker_cmd, publish, replay = commands
    one_broker = {"--partitions": "1", "--replication-factor": "1"}

    # topics: a dry run creates nothing; create, then again (idempotent); describe shows the shape
    assert "dry run" in rci(dry_run, settings)
    for _ in range(2):
        rci(adapted(create, one_broker), settings)
    shape = json.loads(rci([*describe, "--json"], settings))
    assert shape[settings.topic_published]["partitions"] == 1
    assert shape[settings.topic_published]["config"]["retention.ms"] == "604800000"
    assert shape[settings.topic_dlq]["config"]["max.message.bytes"] == str(2 * 1024 * 1024)

    # history already on the topic: a new group starts at its end (RCI_KAFKA_AUTO_OFFSET_RESET=latest)
    folder = tmp_path / "my-videos"
    original, copy = original_and_copy(folder)
    produce(settings, [encode(published_event("history-0", original, second=0))])

    worker = ChildProcess(worker_cmd[1], settings, tmp_path / "worker.log")
    try:
        assert wait_for_status(settings.metrics_port, 200, timeout_s=300) == 200, worker.log_tail()
        time.sleep(3)  # past the group's reset to the end of the partition
        since = rfc3339.now()
        rci(adapted(publish, {"{path}": str(folder)}), settings)
        first = scores(settings, 2, timeout_s=300)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    by_id = {s.video_id: s for s in first}
    assert set(by_id) == {"sunset-original", "sunset-repost"}, worker.log_tail()  # history-0 never scored
    assert not by_id["sunset-original"].deboost
    repost = by_id["sunset-repost"]
    print(f"copy: score {repost.score:.3f} at threshold {repost.threshold:.3f}, retrieval {repost.retrieval_similarity:.3f}")
    assert (repost.candidate_id, repost.deboost) == ("sunset-original", True), repost

    # a model update: the window re-scored under the new model_version, the copy still deboosted
    updated = settings.model_copy(update={"model_dir": with_new_model_version(trained_model_dir, tmp_path / "models-v2")})
    rci(adapted(replay, {"--since": since}), updated)
    rescored = [s for s in scores(settings, 4, timeout_s=120) if s.model_version != repost.model_version]
    assert sorted(s.video_id for s in rescored) == ["sunset-original", "sunset-repost"]
    [again] = [s for s in rescored if s.video_id == "sunset-repost"]
    assert (again.candidate_id, again.deboost) == ("sunset-original", True)
    assert again.model_version == repost.model_version.replace("+", "-update-1+", 1)  # MatchLite's + the encoders'
