"""The project-trained visual copy-detection encoder (src/rci/training/sscd.py) on real media.

The main test trains a visual encoder with `train_visual` (SSCD-style, procedural frames), then
writes real H.264 MP4s of unrelated "videos" and of cropped, mirrored and re-encoded copies of
them, decodes every file with `rci.media.decode` (1 fps, centre square, 224x224) and compares video
embeddings (the L2-normalised mean of the frame embeddings, as `VideoFeatures.video_embedding`
computes them for retrieval). Training must bring copies clearly closer to their own source than
to any unrelated video (the mean margin rises) without leaving more copies nearest an unrelated
video than the untrained weights do.

Each test video is 4 one-second shots of different procedural scenes (short videos have cuts):
with one scene per video, flat scenes that a crop reduces to a single colour make the pass depend
on luck rather than on the encoder.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rci.inference.encoders import load_encoder
from rci.inference.encoders.visual import SwinFrameEmbedder, SwinVisualEncoder, VisualEncoderConfig
from rci.media.decode import decode_media
from rci.media.policy import MediaPolicy
from rci.training.augment import AugmentConfig, CopyAugment, jpeg_like, picture_in_picture, random_resized_crop
from rci.training.sscd import (
    SSCDConfig,
    StepStats,
    copy_retrieval_accuracy,
    info_nce,
    koleo,
    procedural_frames,
    procedural_video,
    train_and_save_visual,
    train_visual,
)

EDITS = ("cropped", "flipped", "re-encoded")


@pytest.fixture(autouse=True)
def _one_thread():
    # 2 shared cores: one intra-op thread is faster than two fighting other jobs, and deterministic.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------
# real media: sources and their copies, written as H.264 MP4s


def write_mp4(path: Path, seconds: np.ndarray, fps: int = 1, crf: int = 23) -> Path:
    """H.264 MP4 showing seconds[i] ([T, H, W, 3] uint8) during second i, at `fps` frames per second."""
    _, height, width, _ = seconds.shape
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "threads": "1", "crf": str(crf)}
        for index in range(len(seconds) * fps):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(seconds[index // fps]), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_videos(folder: Path, n_sources: int, shots: int = 4, seed: int = 123) -> dict[tuple[int, str], Path]:
    """(source index, "source" | edit) -> MP4 path."""
    g = torch.Generator().manual_seed(seed)
    videos = {}
    for i in range(n_sources):
        seconds = np.concatenate([procedural_video(1, g) for _ in range(shots)])  # [shots, 224, 224, 3]
        videos[i, "source"] = write_mp4(folder / f"s{i}.mp4", seconds)
        # trim the borders (64% of the area kept, off centre) and upload at another size
        videos[i, "cropped"] = write_mp4(folder / f"s{i}-crop.mp4", resize(seconds[:, 16:196, 28:208], 192, 192))
        videos[i, "flipped"] = write_mp4(folder / f"s{i}-flip.mp4", seconds[:, :, ::-1])
        # smaller, heavily compressed, another frame rate
        videos[i, "re-encoded"] = write_mp4(folder / f"s{i}-reenc.mp4", resize(seconds, 128, 128), fps=3, crf=38)
    return videos


def decoded_frames(videos: dict, folder: Path) -> dict:
    policy = MediaPolicy(allowed_prefixes=(folder.as_uri() + "/",), max_frames=8)
    out = {}
    for key, path in videos.items():
        media = decode_media(path, policy)
        assert media.frame_mask.sum() == 4  # 4 s at 1 fps, whatever the file's frame rate
        out[key] = media.frames[media.frame_mask]
    return out


def video_embeddings(encoder: SwinVisualEncoder, frames: dict) -> dict:
    out = {}
    for key, real in frames.items():
        mean = encoder.encode_frames(real).mean(axis=0)
        out[key] = mean / np.linalg.norm(mean)
    return out


def copy_margins(embeddings: dict, n_sources: int) -> dict[str, np.ndarray]:
    """edit -> [n_sources] cos(copy, own source) - max cos(copy, unrelated video).

    Unrelated = every other source and every copy of another source.
    """
    margins = {}
    for edit in EDITS:
        rows = []
        for i in range(n_sources):
            query = embeddings[i, edit]
            own = float(query @ embeddings[i, "source"])
            others = max(float(query @ v) for (j, _), v in embeddings.items() if j != i)
            rows.append(own - others)
        margins[edit] = np.array(rows)
    return margins


@pytest.fixture(scope="module")
def test_media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("sscd-media")
    return decoded_frames(make_videos(folder, N_SOURCES), folder)


N_SOURCES = 8
# The smallest setting found that learns this inside the test budget (~40 CPU s on one thread).
# The "small" serving config (112 px, depths 1-1-3) does not: after 80-150 steps of 16 frames
# (40-70 CPU s) a cropped copy is still nearer to an unrelated video; it needs the demo recipe's
# 150 steps of 32 frames (~150 CPU s) to pass, narrowly. See docs/encoders.md.
VISUAL = VisualEncoderConfig(image_size=56, embed_dim=16, depths=(1, 1), num_heads=(1, 2), drop_path_rate=0.0)
TRAIN = SSCDConfig(steps=300, batch_size=32, koleo_weight=2.0, seed=0, threads=1)


@pytest.mark.slow
def test_trained_encoder_puts_copies_nearest_their_source(test_media: dict) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SwinFrameEmbedder(VISUAL)
    untrained = SwinVisualEncoder(copy.deepcopy(model), device="cpu")

    history = train_visual(model, TRAIN)
    trained = SwinVisualEncoder(model, device="cpu")

    before = copy_margins(video_embeddings(untrained, test_media), N_SOURCES)
    after = copy_margins(video_embeddings(trained, test_media), N_SOURCES)
    report = {edit: (before[edit].round(3).tolist(), after[edit].round(3).tolist()) for edit in EDITS}
    # Random Swin weights already put most of these copies nearest their source (margins ~0.1), so
    # "every copy nearest its source" after training was a gate at the edge of float noise: one
    # cropped copy at -0.01 on one CPU, +0.06 on another. What training must show, with room:
    # copies move clearly closer to their own source (mean margin +0.07 to +0.10 measured over two
    # seeds, asserted +0.03), and no more copies end up nearer an unrelated video than before.
    gain = np.mean([after[e].mean() - before[e].mean() for e in EDITS])
    assert gain > 0.03, f"mean margin gain {gain:.3f}; margins before/after {report}"
    correct_before = sum(int((before[e] > 0).sum()) for e in EDITS)
    correct_after = sum(int((after[e] > 0).sum()) for e in EDITS)
    assert correct_after >= correct_before, f"{correct_after} vs {correct_before} copies nearest their source; {report}"
    assert np.mean([s.positive_rank1 for s in history[-10:]]) > np.mean([s.positive_rank1 for s in history[:10]])


# ----------------------------------------------------------------------------------------------
# the parts, quickly


def test_info_nce_rewards_matching_views() -> None:
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(8, 16, generator=g), dim=1)
    same_loss, same_rank1 = info_nce(z, z, temperature=0.1)
    other = F.normalize(torch.randn(8, 16, generator=g), dim=1)
    random_loss, _ = info_nce(z, other, temperature=0.1)
    assert same_rank1.item() == 1.0
    assert same_loss.item() < random_loss.item()


def test_koleo_penalises_crowded_descriptors() -> None:
    g = torch.Generator().manual_seed(0)
    spread = F.normalize(torch.randn(16, 8, generator=g), dim=1)
    crowded = F.normalize(torch.ones(16, 8) + 0.01 * torch.randn(16, 8, generator=g), dim=1)
    assert koleo(crowded).item() > koleo(spread).item()


def test_procedural_frames_and_augmentations_are_seeded_and_in_range() -> None:
    frames = procedural_frames(4, 48, torch.Generator().manual_seed(1))
    again = procedural_frames(4, 48, torch.Generator().manual_seed(1))
    assert frames.shape == (4, 3, 48, 48) and torch.equal(frames, again)
    assert frames.min() >= 0 and frames.max() <= 1
    assert not torch.equal(frames[0], frames[1])
    augment = CopyAugment(AugmentConfig(), out_size=32)
    views = augment(frames, torch.Generator().manual_seed(2))
    assert views.shape == (4, 3, 32, 32) and torch.equal(views, augment(frames, torch.Generator().manual_seed(2)))
    assert views.min() >= 0 and views.max() <= 1


def test_crop_with_flip_mirrors_and_jpeg_is_lossy_but_close() -> None:
    frames = procedural_frames(2, 32, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(0)
    mirrored = random_resized_crop(frames, 32, g, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0)
    torch.testing.assert_close(mirrored, frames.flip(-1), atol=1e-5, rtol=0)
    jpeg = jpeg_like(frames, torch.Generator().manual_seed(0), p=1.0, quality=(30, 30))
    error = (jpeg - frames).abs().mean().item()
    assert 0 < error < 0.05


def test_train_and_save_writes_a_loadable_encoder(tmp_path: Path) -> None:
    tiny = VisualEncoderConfig(image_size=56, embed_dim=16, depths=(1, 1), num_heads=(1, 2), drop_path_rate=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SwinFrameEmbedder(tiny)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[StepStats] = []
    encoder = train_and_save_visual(
        tmp_path / "visual", init=model, cfg=SSCDConfig(steps=3, batch_size=4, warmup_steps=1), on_step=seen.append
    )
    assert [s.step for s in seen] == [1, 2, 3] and all(np.isfinite(s.loss) for s in seen)
    assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items())  # it trained
    assert not model.training and not any(p.requires_grad for p in model.parameters())  # and is frozen again
    loaded = load_encoder(tmp_path / "visual", device="cpu")
    assert loaded.version == encoder.version
    assert 0.0 <= copy_retrieval_accuracy(loaded, n=8) <= 1.0


def test_picture_in_picture_shrinks_the_frame_into_a_box_over_a_gradient() -> None:
    pictures, others = torch.rand(2, 6, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    framed = picture_in_picture(pictures, torch.Generator().manual_seed(1), p=1.0, scale=(0.5, 0.5))
    framed_other = picture_in_picture(others, torch.Generator().manual_seed(1), p=1.0, scale=(0.5, 0.5))
    for a, b in zip(framed, framed_other, strict=True):
        # same random draws, other pictures: only the box shows the picture, the gradient around it is the same
        box = (a - b).abs().sum(0) > 1e-6
        rows, cols = torch.nonzero(box, as_tuple=True)
        assert 18 <= int(rows.max() - rows.min() + 1) <= 22 and 18 <= int(cols.max() - cols.min() + 1) <= 22
        assert 300 <= int(box.sum()) <= 484  # about a quarter of the 1600 pixels
        background = a[:, ~box]
        assert background.min() >= 0 and background.max() <= 1
    assert torch.equal(picture_in_picture(pictures, torch.Generator().manual_seed(1), p=0.0, scale=(0.5, 0.5)), pictures)
