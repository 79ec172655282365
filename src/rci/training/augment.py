"""Copy-detection augmentations in pure torch: batched, per-sample random, seeded.

Each function takes images `x` [B, 3, H, W] float in [0, 1] and a `torch.Generator`, draws its own
per-sample parameters, and returns a new batch of the same dtype (the crop also changes H, W).
They mimic what re-uploaders do to a video (SSCD's "strong" set): crop and rescale, mirror,
colour filters, blur, lossy re-encoding, noise, stickers and captions over the picture.
`CopyAugment` chains them; src/rci/training/sscd.py applies it twice to get two views of one frame.
No torchvision: its wheels must match torch exactly, and none of this needs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Range = tuple[float, float]

# ITU-R BT.601 luma weights (what JPEG and "grayscale" use).
_LUMA = (0.299, 0.587, 0.114)

# JPEG standard quantisation tables (ITU T.81 Annex K), row-major 8x8.
_JPEG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_JPEG_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *(99,) * 32,
)  # fmt: skip


@dataclass(frozen=True)
class AugmentConfig:
    crop_scale: Range = (0.3, 1.0)  # fraction of the source area kept
    crop_ratio: Range = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1  # fraction of a full turn of the chroma plane
    grayscale_p: float = 0.1
    blur_p: float = 0.3
    blur_sigma: Range = (0.3, 2.0)  # in output pixels
    jpeg_p: float = 0.5
    jpeg_quality: Range = (10, 75)
    noise_p: float = 0.3
    noise_std: Range = (0.01, 0.06)
    rect_p: float = 0.3
    caption_p: float = 0.3
    pip_p: float = 0.0  # picture-in-picture: the picture shrunk into a box over a gradient (the demo uses 0.25)
    pip_scale: Range = (0.45, 0.8)  # the box's side as a fraction of the frame's


class CopyAugment:
    """The full chain: one call = one random "copy" of every image in the batch."""

    def __init__(self, config: AugmentConfig, out_size: int):
        self.config = config
        self.out_size = out_size

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        # x: [B, 3, H, W] in [0, 1] -> [B, 3, out_size, out_size] in [0, 1]
        c = self.config
        x = random_resized_crop(x, self.out_size, g, c.crop_scale, c.crop_ratio, c.flip_p)
        x = color_jitter(x, g, c.jitter_p, c.brightness, c.contrast, c.saturation, c.hue)
        x = grayscale(x, g, c.grayscale_p)
        x = picture_in_picture(x, g, c.pip_p, c.pip_scale)
        x = overlay_rectangles(x, g, c.rect_p)
        x = overlay_captions(x, g, c.caption_p)
        x = gaussian_blur(x, g, c.blur_p, c.blur_sigma)
        x = gaussian_noise(x, g, c.noise_p, c.noise_std)
        x = jpeg_like(x, g, c.jpeg_p, c.jpeg_quality)
        return x


# ----------------------------------------------------------------------------------------------
# random parameters


def uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device | None = None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def coin(n: int, p: float, g: torch.Generator, device: torch.device | None = None) -> torch.Tensor:
    """[n] bool, each True with probability p."""
    return torch.rand(n, generator=g, device=device) < p


def _per_sample(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, 1, 1, 1)


# ----------------------------------------------------------------------------------------------
# geometry


def random_resized_crop(
    x: torch.Tensor, out_size: int, g: torch.Generator, scale: Range, ratio: Range, flip_p: float
) -> torch.Tensor:
    """Crop a random box (area fraction in `scale`, aspect in `ratio`), mirror with flip_p, resize."""
    b, dev = x.shape[0], x.device
    area = uniform(b, *scale, g)
    aspect = torch.exp(uniform(b, math.log(ratio[0]), math.log(ratio[1]), g))
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # box width as a fraction of the source width
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (2 * torch.rand(b, generator=g) - 1) * (1 - w)  # box centre in [-1, 1] coordinates
    cy = (2 * torch.rand(b, generator=g) - 1) * (1 - h)
    sign = torch.where(coin(b, flip_p, g), -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    # Shrinking a lot with a bilinear sampler aliases; pre-blur the source by box-averaging.
    shrink = int(min(x.shape[-2:]) * float(h.min()) // out_size)
    if shrink >= 2:
        x = F.avg_pool2d(x, shrink)
    grid = F.affine_grid(theta.to(dev), [b, 3, out_size, out_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# ----------------------------------------------------------------------------------------------
# colour


def luma(x: torch.Tensor) -> torch.Tensor:
    # x: [B, 3, H, W] -> [B, 1, H, W]
    w = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def color_jitter(
    x: torch.Tensor, g: torch.Generator, p: float, brightness: float, contrast: float, saturation: float, hue: float
) -> torch.Tensor:
    b = x.shape[0]
    apply = _per_sample(coin(b, p, g))
    y = x * uniform(b, 1 - brightness, 1 + brightness, g).view(-1, 1, 1, 1)
    mean = luma(y).mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * uniform(b, 1 - contrast, 1 + contrast, g).view(-1, 1, 1, 1) + mean
    gray = luma(y)
    y = (y - gray) * uniform(b, 1 - saturation, 1 + saturation, g).view(-1, 1, 1, 1) + gray
    y = _rotate_hue(y, uniform(b, -hue, hue, g) * 2 * math.pi)
    return torch.where(apply, y.clamp(0, 1), x)


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    # Rotate the (I, Q) chroma plane of YIQ by a per-sample angle; luma is untouched.
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(len(angle), 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # [B, 3, 3]
    return torch.einsum("bij,bjhw->bihw", m.to(x.device, x.dtype), x)


def grayscale(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    return torch.where(_per_sample(coin(x.shape[0], p, g)), luma(x).expand_as(x), x)


# ----------------------------------------------------------------------------------------------
# degradations


def gaussian_blur(x: torch.Tensor, g: torch.Generator, p: float, sigma: Range) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma (unselected samples get a delta kernel)."""
    b, c, h, w = x.shape
    sig = torch.where(coin(b, p, g), uniform(b, *sigma, g), torch.full((b,), 1e-3))
    radius = math.ceil(3 * sigma[1])
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps[None, :] / sig[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0).to(x)  # [B*C, K]
    y = x.reshape(1, b * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel[:, None, None, :], groups=b * c)  # along width
    y = F.conv2d(y, kernel[:, None, :, None], groups=b * c)  # along height
    return y.reshape(b, c, h, w)


def gaussian_noise(x: torch.Tensor, g: torch.Generator, p: float, std: Range) -> torch.Tensor:
    b = x.shape[0]
    scale = torch.where(coin(b, p, g), uniform(b, *std, g), torch.zeros(b)).view(-1, 1, 1, 1).to(x)
    noise = torch.randn(x.shape, generator=g).to(x)
    return (x + scale * noise).clamp(0, 1)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m  # orthonormal DCT-II: coeffs = M @ block @ M.T


def _quant_tables(quality: torch.Tensor) -> torch.Tensor:
    # libjpeg's quality scaling of the Annex K tables -> [B, 3, 8, 8] (Y, Cb, Cr)
    q = quality.clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q).view(-1, 1, 1, 1)
    base = torch.stack([torch.tensor(_JPEG_LUMA), torch.tensor(_JPEG_CHROMA), torch.tensor(_JPEG_CHROMA)])
    return torch.floor((base.view(1, 3, 8, 8).float() * scale + 50) / 100).clamp(min=1)


def jpeg_like(x: torch.Tensor, g: torch.Generator, p: float, quality: Range) -> torch.Tensor:
    """JPEG's lossy steps: YCbCr, 4:2:0 chroma, 8x8 block DCT quantised at a random quality."""
    b, _, h, w = x.shape
    apply = coin(b, p, g)
    tables = _quant_tables(uniform(b, *quality, g)).to(x)
    ycc = _rgb_to_ycbcr(x * 255) - 128
    chroma = F.interpolate(F.avg_pool2d(ycc[:, 1:], 2, ceil_mode=True), scale_factor=2, mode="nearest")
    ycc = torch.cat([ycc[:, :1], chroma[..., :h, :w]], dim=1)
    ph, pw = -h % 8, -w % 8
    ycc = F.pad(ycc, (0, pw, 0, ph), mode="replicate")
    hh, ww = ycc.shape[-2:]
    blocks = ycc.reshape(b, 3, hh // 8, 8, ww // 8, 8).permute(0, 1, 2, 4, 3, 5)  # [B, 3, nh, nw, 8, 8]
    d = _dct_matrix().to(x)
    coeffs = d @ blocks @ d.T
    q = tables[:, :, None, None]  # [B, 3, 1, 1, 8, 8]
    blocks = d.T @ (torch.round(coeffs / q) * q) @ d
    ycc = blocks.permute(0, 1, 2, 4, 3, 5).reshape(b, 3, hh, ww)[..., :h, :w]
    y = (_ycbcr_to_rgb(ycc + 128) / 255).clamp(0, 1)
    return torch.where(_per_sample(apply), y, x)


def _rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    y = torch.einsum("ij,bjhw->bihw", m.to(x), x)
    return y + torch.tensor([0.0, 128.0, 128.0]).view(1, 3, 1, 1).to(x)


def _ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])
    x = x - torch.tensor([0.0, 128.0, 128.0]).view(1, 3, 1, 1).to(x)
    return torch.einsum("ij,bjhw->bihw", m.to(x), x)


def picture_in_picture(x: torch.Tensor, g: torch.Generator, p: float, scale: Range) -> torch.Tensor:
    """Shrink the picture into a box at a random place over a two-colour gradient (a re-upload's frame)."""
    if p <= 0:
        return x  # draws nothing from `g`: configurations without it keep their random streams
    b, _, h, w = x.shape
    on = coin(b, p, g)
    side = uniform(b, *scale, g)  # box side / frame side
    cx = (2 * torch.rand(b, generator=g) - 1) * (1 - side)  # box centre in [-1, 1] coordinates
    cy = (2 * torch.rand(b, generator=g) - 1) * (1 - side)
    # Output pixel u samples the input at (u - c) / side: inside the box that is the whole picture.
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / side, 1 / side
    theta[:, 0, 2], theta[:, 1, 2] = -cx / side, -cy / side
    grid = F.affine_grid(theta.to(x.device), [b, 3, h, w], align_corners=False)
    inset = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1).unsqueeze(1)  # [b, 1, h, w]
    ramp = torch.linspace(0, 1, w, device=x.device).view(1, 1, 1, w) * torch.rand(b, 1, 1, 1, generator=g).to(x)
    ramp = ramp + torch.linspace(0, 1, h, device=x.device).view(1, 1, h, 1) * torch.rand(b, 1, 1, 1, generator=g).to(x)
    c0, c1 = torch.rand(b, 3, 1, 1, generator=g).to(x), torch.rand(b, 3, 1, 1, generator=g).to(x)
    background = c0 + (c1 - c0) * (ramp / ramp.amax(dim=(2, 3), keepdim=True).clamp(min=1e-6))
    return torch.where(_per_sample(on) & inside, inset, torch.where(_per_sample(on), background, x))


# ----------------------------------------------------------------------------------------------
# overlays


def overlay_rectangles(x: torch.Tensor, g: torch.Generator, p: float, max_rects: int = 3) -> torch.Tensor:
    """Solid or translucent boxes (stickers, letterbox bars, watermarks' backgrounds)."""
    b, _, h, w = x.shape
    ys = torch.linspace(0, 1, h, device=x.device).view(1, 1, h, 1)
    xs = torch.linspace(0, 1, w, device=x.device).view(1, 1, 1, w)
    for _ in range(max_rects):
        on = coin(b, p, g)
        x0, y0 = uniform(b, 0, 0.9, g), uniform(b, 0, 0.9, g)
        x1, y1 = x0 + uniform(b, 0.05, 0.5, g), y0 + uniform(b, 0.05, 0.5, g)
        box = (xs >= x0.view(-1, 1, 1, 1)) & (xs < x1.view(-1, 1, 1, 1))
        box = box & (ys >= y0.view(-1, 1, 1, 1)) & (ys < y1.view(-1, 1, 1, 1)) & _per_sample(on)
        alpha = uniform(b, 0.5, 1.0, g).view(-1, 1, 1, 1)
        colour = torch.rand(b, 3, 1, 1, generator=g)
        x = torch.where(box, (1 - alpha) * x + alpha * colour.to(x), x)
    return x


def glyph_bank(n: int = 48, seed: int = 1234) -> torch.Tensor:
    """[n, 7, 5] binary pseudo-glyphs: letter-sized stroke patterns standing in for caption text."""
    g = torch.Generator().manual_seed(seed)
    glyphs = torch.rand(n, 7, 5, generator=g) < 0.45
    glyphs[:, :, 0] |= torch.rand(n, 7, generator=g) < 0.6  # a stem on most glyphs, like letters
    return glyphs.float()


_GLYPHS = glyph_bank()


def caption_mask(chars: torch.Tensor, scale: int) -> torch.Tensor:
    """Glyph ids [n] -> [7*scale, 6*scale*n] mask of one caption line (1-column gap per glyph)."""
    line = F.pad(_GLYPHS[chars], (0, 1))  # [n, 7, 6]
    line = line.permute(1, 0, 2).reshape(7, -1)  # [7, 6n]
    return torch.kron(line, torch.ones(scale, scale))


def overlay_captions(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    """One line of caption-like text per selected image, sometimes on a band, like sticker text."""
    b, _, h, w = x.shape
    out = x.clone()
    for i in torch.nonzero(coin(b, p, g)).flatten().tolist():
        scale = int(torch.randint(1, max(2, h // 40) + 1, (1,), generator=g))
        n = int(torch.randint(3, 16, (1,), generator=g))
        mask = caption_mask(torch.randint(0, len(_GLYPHS), (n,), generator=g), scale)[:h, :w].to(x)
        mh, mw = mask.shape
        top = int(torch.randint(0, h - mh + 1, (1,), generator=g))
        left = int(torch.randint(0, w - mw + 1, (1,), generator=g))
        region = out[i, :, top : top + mh, left : left + mw]
        if bool(coin(1, 0.4, g)):  # a solid band behind the text
            region[:] = torch.rand(3, 1, 1, generator=g).to(x)
        colour = torch.rand(3, 1, 1, generator=g).to(x).round()  # mostly black/white/primary
        region[:] = torch.where(mask.bool(), colour, region)
    return out
