"""The rendered tiny corpus: real files, decoded with PyAV, against what the manifest promises."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import jsonschema
import numpy as np
import pytest

from rci.streams.contracts import SCHEMA_DIR, parse_published
from rci.training.corpus.manifest import SPLITS, CorpusManifest, Subset

pytestmark = pytest.mark.slow  # renders a few dozen short clips (about 10-20 s on 2 cores)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _decode(path: Path) -> dict:
    """Every frame and sample: (video frame count, size, audio samples or None, container duration)."""
    with av.open(str(path)) as container:
        duration = container.duration / 1e6
        has_audio = bool(container.streams.audio)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    audio = None
    if has_audio:
        with av.open(str(path)) as container:
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return {"frames": frames, "audio": audio, "duration": duration}


def test_same_seed_gives_the_same_manifest_and_identical_media(tiny_corpus, tiny_corpus_again) -> None:
    a, b = tiny_corpus, tiny_corpus_again

    def relative(manifest: CorpusManifest) -> list[dict]:
        return [{**e.model_dump(), "media_uri": e.media_uri.removeprefix(manifest.root.as_uri())} for e in manifest.events]

    assert relative(a) == relative(b)
    assert (a.root / "pairs.jsonl").read_text() == (b.root / "pairs.jsonl").read_text()
    differing = [
        (e.video_id, a.videos[e.video_id].size_bytes, b.videos[e.video_id].size_bytes)
        for e in a.events
        if _sha256(a.media_path(e.video_id)) != _sha256(b.media_path(e.video_id))
    ]
    assert not differing, f"re-rendered media differ (video, bytes a, bytes b): {differing}"
    assert json.loads((a.root / "corpus.json").read_text()) == json.loads((b.root / "corpus.json").read_text())


def test_manifest_hashes_match_the_files(tiny_corpus) -> None:
    for video_id, record in tiny_corpus.videos.items():
        path = tiny_corpus.media_path(video_id)
        assert _sha256(path) == record.sha256 and path.stat().st_size == record.size_bytes
    assert {p.name for p in (tiny_corpus.root / "media").iterdir()} == {f"{v}.mp4" for v in tiny_corpus.videos}


def test_every_media_file_decodes_with_its_duration_and_audio(tiny_corpus) -> None:
    render = tiny_corpus.info["config"]["render"]
    for event in tiny_corpus.events:
        record = tiny_corpus.videos[event.video_id]
        decoded = _decode(tiny_corpus.media_path(event.video_id))
        assert abs(decoded["duration"] - event.duration_s) <= 0.5, event.video_id
        assert abs(len(decoded["frames"]) / render["fps"] - event.duration_s) <= 0.5, event.video_id
        assert decoded["frames"][0].shape == (render["height"], render["width"], 3)
        assert (decoded["audio"] is not None) == record.has_audio, event.video_id
        if record.has_audio:
            assert np.abs(decoded["audio"]).max() > 0.05, f"{event.video_id}: audio track is silent"


def test_events_follow_the_contract(tiny_corpus) -> None:
    schema = json.loads((SCHEMA_DIR / "video.published.schema.json").read_text())
    lines = (tiny_corpus.root / "videos.jsonl").read_text().splitlines()
    assert len(lines) == len(tiny_corpus.videos)
    for line in lines:
        jsonschema.validate(json.loads(line), schema)
        event = parse_published(line.encode(), key=json.loads(line)["video_id"].encode())
        assert event.media_uri.startswith("file:///") and Path(event.media_uri[7:]).is_file()
    published = [e.published_at for e in tiny_corpus.events]
    assert published == sorted(published), "videos.jsonl is in publish order"


def test_sources_come_before_their_pairs_and_reproductions(tiny_corpus) -> None:
    when = {e.video_id: e.published_at for e in tiny_corpus.events}
    for pair in tiny_corpus.pairs:
        assert when[pair.candidate_id] < when[pair.query_id]
    for video_id, record in tiny_corpus.videos.items():
        if record.derived_from:
            assert when[record.derived_from] < when[video_id]


def test_splits_are_disjoint_by_source(tiny_corpus) -> None:
    source_split = {}
    for record in tiny_corpus.videos.values():
        assert source_split.setdefault(record.source_id, record.split) == record.split
    for pair in tiny_corpus.pairs:
        assert tiny_corpus.videos[pair.query_id].split == tiny_corpus.videos[pair.candidate_id].split == pair.split
    assert set(source_split.values()) == set(SPLITS)


def test_manifest_reloads_as_written(tiny_corpus) -> None:
    loaded = CorpusManifest.load(tiny_corpus.root)
    assert loaded.events == tiny_corpus.events
    assert loaded.pairs == tiny_corpus.pairs
    assert loaded.videos == tiny_corpus.videos
    assert loaded.counts() == tiny_corpus.counts()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def test_shared_audio_is_really_shared_and_replaced_audio_really_differs(tiny_corpus) -> None:
    """The audio auxiliary label is true of the files: compare decoded samples, not recipes."""
    checked = 0
    for pair in tiny_corpus.pairs:
        if pair.audio_match is None or pair.subset not in (Subset.AUDIO_DEPENDENT, Subset.TEXT_DEPENDENT,
                                                            Subset.HARD_NEGATIVE_AUDIO):
            continue
        query = _decode(tiny_corpus.media_path(pair.query_id))["audio"]
        candidate = _decode(tiny_corpus.media_path(pair.candidate_id))["audio"]
        similarity = _correlation(query, candidate)
        assert (similarity > 0.9) if pair.audio_match else (similarity < 0.5), (pair.query_id, similarity)
        checked += 1
    assert checked >= 3


def test_hard_edits_keep_the_source_where_they_say(tiny_corpus, tmp_path: Path) -> None:
    """A duet shows the source's strip on its half and other motion on the other; a 9:16 re-crop
    stretched back is the source's strip; small picture-in-picture shrinks it."""
    from datetime import UTC, datetime

    from rci.training.corpus.render import RenderConfig, render_video
    from rci.training.corpus.specs import Derived, VideoSpec
    from rci.training.corpus.transforms import Crop, PictureInPicture, SplitScreen

    source = next(v for v in tiny_corpus.videos.values() if v.role == "source")
    base = _decode(tiny_corpus.media_path(source.video_id))["frames"]
    media_dir = tiny_corpus.media_path(source.video_id).parent

    def render(video_id: str, edit) -> list[np.ndarray]:
        spec = VideoSpec(video_id=video_id, source_id=source.source_id, role="copy", split="train", title="t",
                         sticker_text=None, creator_id="c", published_at=datetime.now(UTC),
                         origin=Derived(source.video_id, False, source.duration_s), edits=(edit,), style="test")
        rendered = render_video(spec, str(media_dir), RenderConfig())
        return _decode(Path(rendered.path))["frames"]

    def mean_error(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(float) - b.astype(float)).mean())

    def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.fromarray(img).resize((width, height), Image.BILINEAR))

    k = len(base) // 2
    src = base[k]
    h, w = src.shape[:2]
    duet = render("test-duet", SplitScreen(strip=0.5, x=0.0, right=True, background_seed=3))[k]
    strip = resize(src[:, : w // 2], w // 2, h)
    assert mean_error(duet[:, w // 2 :], strip) < 12 < mean_error(duet[:, : w // 2], strip)
    recrop = render("test-recrop", Crop(x=0.0, y=0.0, w=0.5625, h=1.0))[k]
    assert mean_error(recrop, resize(src[:, : int(w * 0.5625)], w, h)) < 12
    pip = render("test-pip", PictureInPicture(scale=0.35, x=0.0, y=0.0, background_seed=3))[k]
    box = pip[: int(h * 0.35) - 2, : int(w * 0.35) - 2]
    assert mean_error(box, resize(src, int(w * 0.35), int(h * 0.35))[: box.shape[0], : box.shape[1]]) < 12
