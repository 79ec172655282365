"""Self-supervised copy-detection training of the visual encoder, in the spirit of SSCD.

SSCD (Pizzi et al., CVPR 2022, "A Self-Supervised Descriptor for Image Copy Detection") trains a
descriptor so that an image and an edited copy of it are nearer than any two different images:
two strongly augmented views of each image, InfoNCE with every other image in the batch as a
negative, plus a KoLeo entropy term that spreads descriptors over the sphere so unrelated images
do not crowd together. Here the images are procedural (gradients, noise textures, stripes, shapes,
caption-like text) rendered on the fly, so training needs no dataset and no download; the
augmentations (src/rci/training/augment.py) play the re-uploader.

    frames -> CopyAugment twice -> SwinFrameEmbedder.embed -> z1, z2 [B, D]
    loss = InfoNCE(z1, z2; tau) + koleo_weight * KoLeo([z1; z2])

`train_visual` trains a module in place; `train_and_save_visual` is what `rci encoders
train-visual` and the demo call. Starting from a real pretrained Swin is described in
docs/encoders.md (`init` argument).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rci.inference.encoders.base import VisualEncoder
from rci.inference.encoders.bundle import Size, encoders_dir
from rci.inference.encoders.checkpoint import save_encoder
from rci.inference.encoders.visual import SwinFrameEmbedder, SwinVisualEncoder, VisualEncoderConfig
from rci.core.logs import get_logger
from rci.training.augment import AugmentConfig, CopyAugment, caption_mask, coin, uniform

log = get_logger(__name__)


@dataclass(frozen=True)
class SSCDConfig:
    steps: int = 150
    batch_size: int = 32  # source frames per step; the encoder sees 2 views of each
    lr: float = 2e-3  # AdamW peak, linear warm-up then cosine to 0
    weight_decay: float = 0.05
    warmup_steps: int = 10
    temperature: float = 0.1
    koleo_weight: float = 0.5
    source_scale: float = 1.5  # procedural frames are rendered at this x image_size, then cropped
    seed: int = 0
    threads: int = 0  # torch CPU threads while training; 0 leaves torch's default
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class StepStats:
    step: int
    loss: float
    infonce: float
    koleo: float
    positive_rank1: float  # fraction of views whose nearest other view is their own pair
    lr: float
    seconds: float


# ----------------------------------------------------------------------------------------------
# procedural frames


def procedural_frames(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """[n, 3, size, size] in [0, 1]: a random background plus random shapes and caption lines."""
    texture = _value_noise(n, size, g)  # shared by the background mix and textured shape fills
    x = _background(n, size, g, texture)
    for layer in range(4):
        x = _shape_layer(x, g, texture.roll(shifts=(layer + 1) * size // 5, dims=-1).flip(1))
    return overlay_caption_lines(x, g, p=0.35)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.linspace(-1, 1, size)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    return xs[None, None], ys[None, None]  # [1, 1, S, S] each


def _colours(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 3, 1, 1, generator=g)


def _value_noise(n: int, size: int, g: torch.Generator, octaves: int = 3) -> torch.Tensor:
    """[n, 3, S, S] smooth colour noise: random grids of rising resolution, upsampled and summed."""
    base = int(torch.randint(2, 6, (1,), generator=g))
    out = torch.zeros(n, 3, size, size)
    for octave in range(octaves):
        cells = base * 2**octave
        grid = torch.rand(n, 3, cells, cells, generator=g)
        out += F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False) / 2**octave
    lo, hi = out.amin(dim=(2, 3), keepdim=True), out.amax(dim=(2, 3), keepdim=True)
    return (out - lo) / (hi - lo + 1e-6)


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def _background(n: int, size: int, g: torch.Generator, texture: torch.Tensor) -> torch.Tensor:
    """Linear gradient, radial gradient, stripes or noise texture, mixed with one dominant kind."""
    xs, ys = _grid(size)
    angle = _per_image(uniform(n, 0, 2 * math.pi, g))
    along = (xs * torch.cos(angle) + ys * torch.sin(angle)) / math.sqrt(2)  # [n, 1, S, S] in [-1, 1]
    cx, cy = _per_image(uniform(n, -1, 1, g)), _per_image(uniform(n, -1, 1, g))
    radius = (torch.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / 2).clamp(0, 1)
    freq, phase = _per_image(uniform(n, 3, 30, g)), _per_image(uniform(n, 0, 2 * math.pi, g))
    ramps = torch.cat([(along + 1) / 2, radius, 0.5 + 0.5 * torch.sin(freq * along + phase)], dim=1)  # [n, 3, S, S]
    weights = torch.softmax(3 * torch.randn(n, 4, generator=g), dim=1)  # one kind usually dominates
    ramp = (weights[:, :3, None, None] * ramps).sum(dim=1, keepdim=True) / weights[:, :3].sum(1).view(-1, 1, 1, 1)
    c0, c1 = _colours(n, g), _colours(n, g)
    w_tex = _per_image(weights[:, 3])
    return (1 - w_tex) * (c0 + (c1 - c0) * ramp) + w_tex * texture


def _shape_layer(x: torch.Tensor, g: torch.Generator, texture: torch.Tensor, p: float = 0.75) -> torch.Tensor:
    """Composite one anti-aliased ellipse, box or ring per image (each present with probability p)."""
    n, _, size, _ = x.shape
    xs, ys = _grid(size)
    cx, cy, rot = _per_image(uniform(n, -1, 1, g)), _per_image(uniform(n, -1, 1, g)), uniform(n, 0, math.pi, g)
    a, b = _per_image(uniform(n, 0.05, 0.6, g)), _per_image(uniform(n, 0.05, 0.6, g))
    cos, sin = _per_image(torch.cos(rot)), _per_image(torch.sin(rot))
    u = ((xs - cx) * cos + (ys - cy) * sin) / a  # shape-local coordinates, in units of the half-width
    v = ((ys - cy) * cos - (xs - cx) * sin) / b
    kind = _per_image(torch.randint(0, 3, (n,), generator=g))
    radial = torch.sqrt(u * u + v * v)
    sdf = torch.where(kind == 0, radial - 1, torch.maximum(u.abs(), v.abs()) - 1)  # ellipse, box
    sdf = torch.where(kind == 2, (radial - 0.8).abs() - 0.2, sdf)  # ring
    alpha = torch.sigmoid(-sdf * size * torch.minimum(a, b) / 2) * _per_image(coin(n, p, g).float())
    textured = _per_image(coin(n, 0.3, g).float())
    fill = (1 - textured) * _colours(n, g) + textured * texture
    return x + alpha * (fill - x)


def overlay_caption_lines(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    """Caption-like glyph lines drawn into the content itself (part of the source, not an edit)."""
    n, _, size, _ = x.shape
    out = x.clone()
    for i in torch.nonzero(coin(n, p, g)).flatten().tolist():
        scale = int(torch.randint(1, max(2, size // 48) + 1, (1,), generator=g))
        chars = torch.randint(0, 48, (int(torch.randint(4, 14, (1,), generator=g)),), generator=g)
        mask = caption_mask(chars, scale)[:size, :size]
        top = int(torch.randint(0, size - mask.shape[0] + 1, (1,), generator=g))
        left = int(torch.randint(0, size - mask.shape[1] + 1, (1,), generator=g))
        region = out[i, :, top : top + mask.shape[0], left : left + mask.shape[1]]
        region[:] = torch.where(mask.bool(), torch.rand(3, 1, 1, generator=g), region)
    return out


def procedural_video(n_frames: int, g: torch.Generator, frame_size: int = 224) -> np.ndarray:
    """uint8 [n_frames, S, S, 3]: a slow pan and zoom across one procedural scene (a test 'video')."""
    scene = procedural_frames(1, int(frame_size * 1.6), g)  # [1, 3, 1.6S, 1.6S]
    t = torch.linspace(0, 1, n_frames)
    zoom = 0.6 + 0.15 * t * float(uniform(1, -1, 1, g))  # fraction of the scene shown, <= 0.75
    # Pan at most 1 - zoom so the window never leaves the scene.
    pan_x = float(uniform(1, -0.25, 0.25, g)) * (2 * t - 1)
    pan_y = float(uniform(1, -0.25, 0.25, g)) * (2 * t - 1)
    theta = torch.zeros(n_frames, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = zoom, zoom
    theta[:, 0, 2], theta[:, 1, 2] = pan_x, pan_y
    grid = F.affine_grid(theta, [n_frames, 3, frame_size, frame_size], align_corners=False)
    frames = F.grid_sample(scene.expand(n_frames, -1, -1, -1), grid, mode="bilinear", align_corners=False)
    return (frames.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


# ----------------------------------------------------------------------------------------------
# losses


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE over 2B views: each view's positive is its pair, the other 2B-2 are negatives.

    z1, z2: [B, D] unit vectors. Returns (loss, fraction of views whose top-1 is their positive).
    """
    b = z1.shape[0]
    z = torch.cat([z1, z2])  # [2B, D]
    sim = z @ z.T / temperature  # [2B, 2B]
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    loss = F.cross_entropy(sim, target)
    rank1 = (sim.argmax(dim=1) == target).float().mean()
    return loss, rank1


def koleo(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko entropy estimate (negated): -mean log(distance to nearest neighbour).

    z: [N, D] unit vectors. SSCD excludes a view's own positive from the neighbours; with two views
    per source that is the other half of the batch, which is what `exclude_pairs` does below.
    """
    n = z.shape[0]
    dist = torch.cdist(z, z)  # [N, N]
    half = n // 2
    idx = torch.arange(n, device=z.device)
    blocked = torch.eye(n, dtype=torch.bool, device=z.device)
    blocked[idx, (idx + half) % n] = True  # each view's own positive
    nearest = dist.masked_fill(blocked, float("inf")).min(dim=1).values
    return -torch.log(nearest + eps).mean()


# ----------------------------------------------------------------------------------------------
# training


def _lr_at(step: int, cfg: SSCDConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def train_visual(
    model: SwinFrameEmbedder,
    cfg: SSCDConfig,
    on_step: Callable[[StepStats], None] | None = None,
) -> list[StepStats]:
    """Train `model` in place on procedural frames; returns per-step statistics."""
    g = torch.Generator().manual_seed(cfg.seed)
    size = model.config.image_size
    source = int(round(size * cfg.source_scale))
    augment = CopyAugment(cfg.augment, out_size=size)
    device = next(model.parameters()).device
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "position" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "position" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=cfg.lr
    )
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model.requires_grad_(True).train()
    history: list[StepStats] = []
    try:
        for step in range(cfg.steps):
            started = time.perf_counter()
            lr = _lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            with torch.no_grad():
                frames = procedural_frames(cfg.batch_size, source, g)
                views = torch.cat([augment(frames, g), augment(frames, g)]).to(device)  # [2B, 3, S, S]
            z = model.embed(views)
            z1, z2 = z.chunk(2)
            nce, rank1 = info_nce(z1, z2, cfg.temperature)
            reg = koleo(z)
            loss = nce + cfg.koleo_weight * reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            stats = StepStats(
                step + 1, loss.item(), nce.item(), reg.item(), rank1.item(), lr, time.perf_counter() - started
            )
            history.append(stats)
            if on_step:
                on_step(stats)
    finally:
        model.eval()
        if cfg.threads:
            torch.set_num_threads(old_threads)
    return history


def copy_retrieval_accuracy(encoder: VisualEncoder, n: int = 64, seed: int = 10_000) -> float:
    """Held-out check: top-1 accuracy of finding each augmented copy's source among n procedural frames."""
    g = torch.Generator().manual_seed(seed)
    sources = procedural_frames(n, 224, g)
    copies = CopyAugment(AugmentConfig(), out_size=224)(sources, g)
    to_uint8 = lambda x: (x.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()  # noqa: E731
    ref = encoder.encode_frames(to_uint8(sources))
    query = encoder.encode_frames(to_uint8(copies))
    return float(((query @ ref.T).argmax(axis=1) == np.arange(n)).mean())


def train_and_save_visual(
    out_dir: Path,
    size: Size = "small",
    cfg: SSCDConfig | None = None,
    init: SwinFrameEmbedder | None = None,
    on_step: Callable[[StepStats], None] | None = None,
) -> SwinVisualEncoder:
    """Train a visual encoder (from `init`, else from random weights of `size`) and save it to out_dir.

    out_dir is an encoder directory, normally `<model_dir>/encoders/visual`.
    """
    cfg = cfg or SSCDConfig()
    if init is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            init = SwinFrameEmbedder(VisualEncoderConfig.small() if size == "small" else VisualEncoderConfig.paper())
    history = train_visual(init, cfg, on_step)
    encoder = SwinVisualEncoder(init, device="cpu")
    save_encoder(encoder, out_dir)
    tail = history[-10:]
    log.info(
        "visual encoder trained",
        steps=len(history),
        loss=round(float(np.mean([s.loss for s in tail])), 4),
        rank1=round(float(np.mean([s.positive_rank1 for s in tail])), 3),
        seconds=round(sum(s.seconds for s in history), 1),
        version=encoder.version,
        path=str(out_dir),
        config=asdict(cfg) | {"augment": "default" if cfg.augment == AugmentConfig() else asdict(cfg.augment)},
    )
    return encoder


def default_visual_dir(model_dir: Path) -> Path:
    return encoders_dir(model_dir) / "visual"
