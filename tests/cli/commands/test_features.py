"""`rci encoders build` and `rci features extract`, in process through typer's CliRunner.

The media are real files the tests write (H.264 + AAC MP4s from `rci.media.synth`), the encoders are
the small configuration built by `rci encoders build --size small` into a temporary model
directory, and the feature cache is the local object store under a temporary RCI_DATA_DIR (or a
folder given with `--out`). Settings reach the commands only through RCI_* variables.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rci.inference.features import VideoFeatures
from rci.media.synth import write_test_video
from rci.cli.main import app

SUMMARY_COLUMNS = ("videos", "encoded", "already cached", "rejected")


@pytest.fixture(autouse=True)
def _clean_rci_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only what each test passes may configure the commands (no RCI_* from the caller's shell).
    for name in list(os.environ):
        if name.startswith("RCI_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small encoders (random visual/audio, bundled MiniLM text), built once by the CLI."""
    root = tmp_path_factory.mktemp("models")
    env = {"RCI_MODEL_DIR": str(root), "RCI_DATA_DIR": str(root / "unused"), "RCI_DEVICE": "cpu"}
    result = CliRunner().invoke(app, ["encoders", "build", "--size", "small"], env=env)
    assert result.exit_code == 0, result.output
    for modality in ("visual", "audio", "text"):
        assert (root / "encoders" / modality / "encoder.json").is_file()
    assert "visual:sscd@224+whole-" in result.output and "fingerprint:chromaprint" in result.output
    return root


def _env(data_dir: Path, model_dir: Path) -> dict[str, str]:
    return {
        "RCI_DATA_DIR": str(data_dir),
        "RCI_MODEL_DIR": str(model_dir),
        "RCI_DEVICE": "cpu",
        "RCI_MEDIA_MAX_FRAMES": "8",
        "RCI_LOG_FORMAT": "json",
        "COLUMNS": "200",  # the summary table must not be squeezed
    }


def _extract(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(app, ["features", "extract", *args], env=env)


def _summary(output: str) -> dict[str, int]:
    """The counts row of the summary table printed at the end."""
    rows = [line for line in output.splitlines() if re.fullmatch(r"[│|┃\s\d]+", line) and re.search(r"\d", line)]
    assert rows, f"no summary row in:\n{output}"
    values = [int(v) for v in re.findall(r"\d+", rows[-1])]
    return dict(zip(SUMMARY_COLUMNS, values, strict=True))


def _bundle_version(output: str) -> str:
    match = re.search(r"features (enc-[0-9a-f]{12})", output)
    assert match, output
    return match.group(1)


def _rejections(output: str) -> dict[str, str]:
    """video_id -> reject code, from the JSON log lines on stderr."""
    codes = {}
    for line in output.splitlines():
        if line.startswith("{") and '"media rejected"' in line:
            record = json.loads(line)
            codes[record["video_id"]] = record["code"]
    return codes


def _features(root: Path, version: str, video_id: str) -> VideoFeatures:
    """The features last stored for the id: its `latest` pointer names the content-keyed object."""
    key = (root / "features" / version / "latest" / f"{video_id}.key").read_text().strip()
    return VideoFeatures.from_bytes((root / key).read_bytes())


def test_extract_media_folder_fills_the_cache_once_and_counts_bad_files(model_dir: Path, tmp_path: Path) -> None:
    media = tmp_path / "uploads"
    media.mkdir()
    write_test_video(media / "clip_a.mp4", duration_s=3.0, seed=1)
    write_test_video(media / "clip_b.mp4", duration_s=2.0, seed=2, with_audio=False)
    (media / "broken.mp4").write_bytes(b"this is not a video")
    env = _env(tmp_path / "rci", model_dir)

    first = _extract([str(media), "--batch-size", "2"], env)
    assert first.exit_code == 1, first.output  # a rejected file makes the run fail...
    assert _summary(first.stdout) == {"videos": 3, "encoded": 2, "already cached": 0, "rejected": 1}
    assert _rejections(first.stderr) == {"broken": "media_undecodable"}

    # ...but the good files are in the feature cache: the local object store under RCI_DATA_DIR.
    version = _bundle_version(first.stdout)
    store = tmp_path / "rci" / "objects"
    stored = sorted(p.name for p in (store / "features" / version).iterdir() if p.is_file())
    assert [name.split(".")[0] for name in stored] == ["clip_a", "clip_b"]  # <id>.<digest of the URI>.npz
    assert all(re.fullmatch(r"clip_[ab]\.[0-9a-f]{16}\.npz", name) for name in stored), stored
    assert sorted(p.name for p in (store / "features" / version / "latest").iterdir()) == ["clip_a.key", "clip_b.key"]
    a, b = _features(store, version, "clip_a"), _features(store, version, "clip_b")
    assert a.encoder_version == version
    # SSCD (the default visual encoder): 512-d per view of a frame, two views (centre square, whole frame); 3 s at 1 fps
    assert a.visual.shape == (8, 1024) and a.visual_views == 2 and a.visual_mask.tolist() == [True] * 3 + [False] * 5
    assert b.visual_mask.sum() == 2
    np.testing.assert_allclose(np.linalg.norm(a.visual[:3].reshape(3, 2, 512), axis=2), 1.0, rtol=1e-5)
    assert not a.visual[3:].any()
    assert a.has_audio and a.audio.any()
    assert not b.has_audio and not b.audio.any()  # no audio track: the modality is absent, not an error
    assert a.text_mask.any()  # the title (file name stem) is the text

    second = _extract([str(media)], env)
    assert second.exit_code == 1, second.output
    assert _summary(second.stdout) == {"videos": 3, "encoded": 0, "already cached": 2, "rejected": 1}
    assert _features(store, version, "clip_a").visual.tobytes() == a.visual.tobytes()

    forced = _extract([str(media), "--force"], env)
    assert _summary(forced.stdout)["encoded"] == 2

    (media / "broken.mp4").unlink()
    clean = _extract([str(media)], env)
    assert clean.exit_code == 0, clean.output
    assert _summary(clean.stdout) == {"videos": 2, "encoded": 0, "already cached": 2, "rejected": 0}


def test_extract_events_jsonl_into_an_out_folder(model_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "rci"
    media = data_dir / "media"  # the default allowed prefix: file://<data_dir>/media/
    media.mkdir(parents=True)
    clip = write_test_video(media / "one.mp4", duration_s=2.0, seed=3)
    write_test_video(media / "two.mp4", duration_s=4.0, seed=4)
    event = {"schema_version": 1, "published_at": "2026-11-22T10:00:00Z"}
    events = [
        {**event, "video_id": "v1", "media_uri": clip.as_uri(), "title": "cat video", "sticker_text": "so cute"},
        {**event, "video_id": "v2", "media_uri": (media / "two.mp4").as_uri(), "title": ""},
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    out = tmp_path / "features-out"
    env = _env(data_dir, model_dir)

    result = _extract([str(source), "--out", str(out)], env)
    assert result.exit_code == 0, result.output
    assert _summary(result.stdout) == {"videos": 2, "encoded": 2, "already cached": 0, "rejected": 0}
    version = _bundle_version(result.stdout)
    v1, v2 = _features(out, version, "v1"), _features(out, version, "v2")
    assert v1.visual_mask.sum() == 2 and v2.visual_mask.sum() == 4
    assert v1.text_mask.sum() > 4  # "cat video so cute": [CLS] + tokens + [SEP]
    assert not v2.text_mask.any()  # no title, no sticker: the text modality is absent
    assert not (data_dir / "objects").exists()  # --out replaces the object store

    again = _extract([str(source), "--out", str(out)], env)
    assert _summary(again.stdout) == {"videos": 2, "encoded": 0, "already cached": 2, "rejected": 0}


def test_extract_rejects_media_outside_the_allowed_prefixes(model_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "rci"
    (data_dir / "media").mkdir(parents=True)
    elsewhere = write_test_video(tmp_path / "elsewhere.mp4", duration_s=1.0)
    event = {"schema_version": 1, "published_at": "2026-11-22T10:00:00Z", "title": "x"}
    source = tmp_path / "events.jsonl"
    uris = {
        "outside": elsewhere.as_uri(),
        "passwd": "file:///etc/passwd",
        "escape": (data_dir / "media").as_uri() + "/../../elsewhere.mp4",
    }
    source.write_text("".join(json.dumps({**event, "video_id": k, "media_uri": u}) + "\n" for k, u in uris.items()))
    result = _extract([str(source)], _env(data_dir, model_dir))
    assert result.exit_code == 1, result.output
    assert _summary(result.stdout) == {"videos": 3, "encoded": 0, "already cached": 0, "rejected": 3}
    assert _rejections(result.stderr) == {
        "outside": "media_not_allowed", "passwd": "media_not_allowed", "escape": "media_not_allowed"
    }


def test_extract_without_encoders_says_how_to_build_them(tmp_path: Path) -> None:
    media = tmp_path / "m"
    media.mkdir()
    write_test_video(media / "a.mp4", duration_s=1.0)
    result = _extract([str(media)], _env(tmp_path / "rci", tmp_path / "no-models"))
    assert result.exit_code == 1
    assert "rci encoders build" in result.stderr


def test_invalid_events_file_is_refused_before_any_work(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text('{"video_id": "no other fields"}\n')
    result = _extract([str(source)], _env(tmp_path / "rci", model_dir))
    assert result.exit_code == 1
    assert "invalid event" in result.stderr
    assert not (tmp_path / "rci" / "objects").exists()


def test_encoders_build_keeps_existing_encoders(model_dir: Path) -> None:
    before = {
        m: json.loads((model_dir / "encoders" / m / "encoder.json").read_text())["version"]
        for m in ("visual", "audio", "text")
    }
    env = {"RCI_MODEL_DIR": str(model_dir), "RCI_DATA_DIR": str(model_dir / "unused"), "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["encoders", "build", "--size", "paper", "--seed", "7"], env=env)
    assert result.exit_code == 0, result.output
    for modality, version in before.items():
        assert version in result.stdout  # still the small ones: nothing is overwritten
