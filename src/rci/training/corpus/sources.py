"""Where source visuals come from: seeded procedural generators and Ken-Burns-animated photos.

Every generator is a pure function of its `VisualRecipe`: the same recipe gives the same frames in
any process, which is what makes the corpus reproducible and lets "same template" negatives be
pixel-identical to their source before encoding.

Photos come from Debian media packages (see `install_photos.sh`). Some packages are reserved for
held-out evaluation; `check_photo_allowed` refuses any image they own, by dpkg ownership and by path,
and every photo path is checked both when it is discovered and again when it is rendered.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rci.core.logs import get_logger
from rci.training.corpus.errors import CorpusError, ReservedMediaError
from rci.training.corpus.ffmpeg import decode_image

log = get_logger(__name__)

# --------------------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class VisualRecipe:
    """How to draw a clip's pictures. `family` names a generator in GENERATORS or is "photo"."""

    family: str
    seed: int
    photo: str | None = None  # image path, family "photo" only
    category: str = ""  # photo category (package); the style for hard negatives
    calm: bool = False  # slow motion: templates that stay in the background of speech or captions
    scroll_text: tuple[str, ...] = ()  # lines scrolled across the picture (family "scroll_text")

    @property
    def style(self) -> str:
        """Two recipes of one style look alike (same generator family or photo category)."""
        return f"photo:{self.category}" if self.family == "photo" else self.family


Frames = Iterator[np.ndarray]  # each [H, W, 3] uint8 RGB


def frames_for(recipe: VisualRecipe, n_frames: int, width: int, height: int) -> Frames:
    """The clip's `n_frames` frames."""
    rng = np.random.default_rng(recipe.seed)
    if recipe.family == "photo":
        if recipe.photo is None:
            raise CorpusError("a photo recipe needs a photo path")
        return _ken_burns(rng, check_photo_allowed(recipe.photo), n_frames, width, height, recipe.calm)
    try:
        generator = GENERATORS[recipe.family]
    except KeyError as exc:
        raise CorpusError(f"unknown visual family {recipe.family!r}; known: {sorted(GENERATORS)}") from exc
    return generator(rng, n_frames, width, height, recipe.calm)


# ------------------------------------------------------------------------------ procedural families


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return ys, xs  # [H, W] each


def _random_colours(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.uniform(20, 235, size=(k, 3)).astype(np.float32)  # [k, 3]


def _palette(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A random 3-stop colour map: values in [0, 1] -> RGB float."""
    stops = _random_colours(rng, 3)

    def apply(v: np.ndarray) -> np.ndarray:  # v [H, W] -> [H, W, 3]
        v = np.clip(v, 0.0, 1.0)[..., None] * 2.0
        low = stops[0] + (stops[1] - stops[0]) * np.minimum(v, 1.0)
        return low + (stops[2] - stops[1]) * np.maximum(v - 1.0, 0.0)

    return apply


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8)


def moving_shapes(rng: np.random.Generator, n: int, width: int, height: int, calm: bool) -> Frames:
    """Circles and rectangles bouncing over a two-colour vertical gradient."""
    ys, xs = _grid(width, height)
    top, bottom = _random_colours(rng, 2)
    background = top + (bottom - top) * (ys / height)[..., None]  # [H, W, 3]
    k = int(rng.integers(3, 8))
    colours = _random_colours(rng, k)
    radius = rng.uniform(0.05, 0.18, size=k) * min(width, height)
    is_circle = rng.random(k) < 0.6
    pos = rng.uniform(0.2, 0.8, size=(k, 2)) * (width, height)  # [k, 2] x, y
    vel = rng.uniform(-1, 1, size=(k, 2)) * (0.6 if calm else 3.5) * min(width, height) / 100
    for _ in range(n):
        img = background.copy()
        for j in range(k):
            x, y, r = pos[j, 0], pos[j, 1], radius[j]
            if is_circle[j]:
                mask = (xs - x) ** 2 + (ys - y) ** 2 < r * r
            else:
                mask = (np.abs(xs - x) < r) & (np.abs(ys - y) < r * 0.6)
            img[mask] = colours[j]
        yield _to_uint8(img)
        pos += vel
        bounce = (pos < 0) | (pos > (width, height))
        vel[bounce] *= -1
        pos = np.clip(pos, 0, (width, height))


def drifting_gradient(rng: np.random.Generator, n: int, width: int, height: int, calm: bool) -> Frames:
    """A rotating linear gradient with soft glowing blobs drifting across it."""
    x = np.linspace(-0.5, 0.5, width, dtype=np.float32)  # [W]
    y = np.linspace(-0.5, 0.5, height, dtype=np.float32)  # [H]
    palette = _palette(rng)
    angle, spin = rng.uniform(0, 2 * np.pi), rng.uniform(-1, 1) * (0.004 if calm else 0.03)
    k = int(rng.integers(2, 5))
    centres = rng.uniform(-0.4, 0.4, size=(k, 2))
    drift = rng.uniform(-1, 1, size=(k, 2)) * (0.002 if calm else 0.01)
    sizes = rng.uniform(0.08, 0.2, size=k)
    glow = _random_colours(rng, k)
    for i in range(n):
        a = angle + spin * i
        ramp = (x[None, :] * np.cos(a) + y[:, None] * np.sin(a)) / 1.42 + 0.5  # [H, W]
        img = palette(ramp)
        for j in range(k):
            cx, cy = (centres[j] + drift[j] * i + 0.5) % 1.0 - 0.5
            # A Gaussian is separable: the blob is the outer product of two 1-D profiles.
            gx = np.exp(-((x - cx) ** 2) / (2 * sizes[j] ** 2))
            gy = np.exp(-((y - cy) ** 2) / (2 * sizes[j] ** 2))
            weight = (0.7 * np.outer(gy, gx))[..., None]  # [H, W, 1]
            img += (glow[j] - img) * weight
        yield _to_uint8(img)


def _interpolation_matrix(cells: int, pixels: int, shift: float) -> np.ndarray:
    """[pixels, cells] weights of a wrap-around linear interpolation of a periodic 1-D grid."""
    u = (np.arange(pixels, dtype=np.float32) * cells / pixels + shift) % cells
    u0 = np.floor(u).astype(int)
    frac = u - u0
    weights = np.zeros((pixels, cells), dtype=np.float32)
    weights[np.arange(pixels), u0] = 1 - frac
    weights[np.arange(pixels), (u0 + 1) % cells] += frac
    return weights


def noise_texture(rng: np.random.Generator, n: int, width: int, height: int, calm: bool) -> Frames:
    """Three octaves of value noise, scrolling and slowly morphing, through a random palette."""
    palette = _palette(rng)
    octaves = [(rng.random((c, c)).astype(np.float32), rng.random((c, c)).astype(np.float32), w)
               for c, w in ((4, 0.55), (8, 0.3), (16, 0.15))]
    vx, vy = rng.uniform(-1, 1, size=2) * (0.01 if calm else 0.06)
    morph_period = int(rng.integers(40, 120))
    for i in range(n):
        blend = 0.5 - 0.5 * np.cos(2 * np.pi * i / morph_period)
        value = np.zeros((height, width), dtype=np.float32)
        for grid_a, grid_b, weight in octaves:
            grid = grid_a * (1 - blend) + grid_b * blend  # [c, c]
            scale = grid.shape[0] / 4
            # Bilinear upsampling is separable: rows @ grid @ cols.T, [H, c] @ [c, c] @ [c, W]. einsum, not
            # matmul: these products are tiny and BLAS threads only contend with the other render worker.
            rows = _interpolation_matrix(grid.shape[0], height, vy * i * scale)
            cols = _interpolation_matrix(grid.shape[1], width, vx * i * scale)
            value += weight * np.einsum("hd,wd->hw", np.einsum("hc,cd->hd", rows, grid), cols)
        yield _to_uint8(palette(value))


def plasma(rng: np.random.Generator, n: int, width: int, height: int, calm: bool) -> Frames:
    """The demoscene plasma: a sum of travelling sinusoids mapped through cosine colour ramps."""
    x = np.linspace(0, 1, width, dtype=np.float32)
    y = np.linspace(0, 1, height, dtype=np.float32)
    freq = rng.uniform(3, 12, size=4)
    speed = rng.uniform(0.5, 1.5, size=4) * (0.02 if calm else 0.12)
    cx, cy = rng.uniform(0.2, 0.8, size=2)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    radial = np.sqrt((x[None, :] - cx) ** 2 + (y[:, None] - cy) ** 2) * freq[3] * 2  # [H, W]
    sin_r, cos_r = np.sin(radial), np.cos(radial)
    for i in range(n):
        # Axis-aligned waves are 1-D; the diagonal and radial ones expand sin(a + b) into products.
        wave_x = np.sin(x * freq[0] + i * speed[0])[None, :]
        wave_y = np.sin(y * freq[1] + i * speed[1])[:, None]
        dx, dy = x * freq[2] + i * speed[2], y * freq[2]
        diagonal = np.outer(np.cos(dy), np.sin(dx)) + np.outer(np.sin(dy), np.cos(dx))
        t = i * speed[3]
        v = wave_x + wave_y + diagonal + sin_r * np.cos(t) + cos_r * np.sin(t)  # [H, W] in [-4, 4]
        img = np.stack([np.sin(v * np.pi / 2 + p) for p in phase], axis=-1)  # [H, W, 3] in [-1, 1]
        yield _to_uint8(127.5 + 110 * img)


def random_walk(rng: np.random.Generator, n: int, width: int, height: int, calm: bool) -> Frames:
    """Walkers with momentum leaving fading trails on a dark canvas."""
    background = rng.uniform(0, 60, size=3).astype(np.float32)
    canvas = np.broadcast_to(background, (height, width, 3)).copy()
    k = int(rng.integers(4, 16))
    colours = _random_colours(rng, k) * 0.5 + 127
    pos = rng.uniform(0, 1, size=(k, 2)) * (width, height)
    vel = np.zeros((k, 2))
    half = max(2, min(width, height) // 64)
    step = (0.6 if calm else 2.0) * min(width, height) / 100
    for _ in range(n):
        canvas = canvas * 0.92 + background * 0.08
        vel = 0.8 * vel + rng.normal(0, step, size=(k, 2))
        pos = (pos + vel) % (width, height)
        for j in range(k):
            x, y = int(pos[j, 0]), int(pos[j, 1])
            canvas[max(0, y - half):y + half, max(0, x - half):x + half] = colours[j]
        yield _to_uint8(canvas)


def scroll_background(rng: np.random.Generator, n: int, width: int, height: int, calm: bool) -> Frames:
    """A calm gradient; the scrolling text itself is drawn by ffmpeg (see render)."""
    return drifting_gradient(rng, n, width, height, calm=True)


GENERATORS: dict[str, Callable[[np.random.Generator, int, int, int, bool], Frames]] = {
    "shapes": moving_shapes,
    "gradient": drifting_gradient,
    "noise": noise_texture,
    "plasma": plasma,
    "random_walk": random_walk,
    "scroll_text": scroll_background,
}
PROCEDURAL_FAMILIES = tuple(GENERATORS)
CALM_FAMILIES = ("gradient", "noise", "plasma")  # backgrounds for voice-over and caption templates


# ------------------------------------------------------------------------------------------ photos


@functools.lru_cache(maxsize=8)
def _photo_pixels(path: str, width: int, height: int) -> np.ndarray:
    return decode_image(path, width, height).astype(np.float32)


def _ken_burns(rng: np.random.Generator, path: Path, n: int, width: int, height: int, calm: bool) -> Frames:
    """Pan and zoom across a still: a crop window that moves and shrinks linearly, resampled bilinearly."""
    big_w, big_h = width * 2, height * 2
    photo = _photo_pixels(str(path), big_w, big_h)  # [2H, 2W, 3]
    zoom_range = (1.0, 1.15) if calm else (1.0, 1.4)  # deeper zooms often land on a flat patch of sky
    z0, z1 = rng.uniform(*zoom_range, size=2)
    if rng.random() < 0.5:
        z0, z1 = z1, z0
    p0, p1 = rng.uniform(0.1, 0.9, size=(2, 2))
    for i in range(n):
        t = i / max(1, n - 1)
        zoom = 2.0 * (z0 + (z1 - z0) * t)  # window = photo size / zoom, at least the output size
        win_w, win_h = big_w / zoom, big_h / zoom
        cx, cy = p0 + (p1 - p0) * t
        x0, y0 = cx * (big_w - win_w), cy * (big_h - win_h)
        yield _to_uint8(_bilinear_crop(photo, x0, y0, win_w, win_h, width, height))


def _bilinear_crop(img: np.ndarray, x0: float, y0: float, w: float, h: float, out_w: int, out_h: int) -> np.ndarray:
    """Resample the window (x0, y0, w, h) of img [H, W, 3] to [out_h, out_w, 3]: rows first, then columns."""
    src_h, src_w = img.shape[:2]
    xs = np.clip(x0 + (np.arange(out_w) + 0.5) * w / out_w - 0.5, 0, src_w - 1.001)
    ys = np.clip(y0 + (np.arange(out_h) + 0.5) * h / out_h - 0.5, 0, src_h - 1.001)
    xi, yi = xs.astype(int), ys.astype(int)
    left, right = xi[0], xi[-1] + 2  # only the window's columns take part
    band = img[:, left:right]
    fy = (ys - yi)[:, None, None]
    rows = band[yi] * (1 - fy) + band[yi + 1] * fy  # [out_h, window_w, 3]
    fx = (xs - xi)[None, :, None]
    return rows[:, xi - left] * (1 - fx) + rows[:, xi + 1 - left] * fx


# Packages whose images are held out for evaluation: never in a training corpus. The path markers
# catch their files when they were copied elsewhere or dpkg's database is not there to ask.
RESERVED_PACKAGES: dict[str, tuple[str, ...]] = {
    "plasma-workspace-wallpapers": ("/usr/share/wallpapers/", "plasma-workspace"),
    "mate-backgrounds": ("/usr/share/backgrounds/mate/", "/usr/share/mate-background-properties/",
                         "mate-backgrounds"),
    "ukui-wallpapers": ("ukui",),
    "lomiri-wallpapers": ("lomiri",),
    "hedgewars-data": ("hedgewars",),
}
DPKG_INFO_DIR = Path("/var/lib/dpkg/info")
DEFAULT_PHOTO_ROOTS = ("/usr/share/backgrounds/gnome", "/usr/share/backgrounds/sway", "/usr/share/desktop-base")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MIN_PHOTO_SIDE = 480  # smaller images are icons and logos, not scenes


@functools.cache
def reserved_files(dpkg_info_dir: Path = DPKG_INFO_DIR) -> frozenset[str]:
    """Every file dpkg says a reserved package installed (empty where none is installed), versioned
    siblings included: lomiri-wallpapers-20.04 installs into /usr/share/backgrounds/, where no path
    marker would catch it."""
    owned: set[str] = set()
    for package in RESERVED_PACKAGES:
        for pattern in (f"{package}.list", f"{package}:*.list", f"{package}-*.list"):
            for listing in dpkg_info_dir.glob(pattern) if dpkg_info_dir.is_dir() else ():
                owned.update(line.strip() for line in listing.read_text().splitlines() if line.strip())
    return frozenset(owned)


def reserved_reason(path: str | Path, dpkg_info_dir: Path = DPKG_INFO_DIR) -> str | None:
    """Why `path` is reserved for held-out evaluation, or None if a training corpus may use it."""
    candidates = {str(Path(path)), str(Path(path).resolve())}  # the link and what it points to
    owned = reserved_files(dpkg_info_dir)
    for candidate in candidates:
        if candidate in owned:
            return f"{candidate} is installed by a reserved package"
        lowered = candidate.lower() + "/"  # so that a reserved directory itself matches its "dir/" marker
        for package, markers in RESERVED_PACKAGES.items():
            if any(marker in lowered for marker in markers):
                return f"{candidate} looks like part of {package}"
    return None


def check_photo_allowed(path: str | Path, dpkg_info_dir: Path = DPKG_INFO_DIR) -> Path:
    """The path, if a training corpus may use it; ReservedMediaError otherwise."""
    reason = reserved_reason(path, dpkg_info_dir)
    if reason is not None:
        raise ReservedMediaError(f"refusing held-out evaluation media: {reason}")
    return Path(path)


@dataclass(frozen=True)
class Photo:
    path: str
    category: str  # the package or collection: same category = same style
    family: str  # variants of one picture (light/dark, sizes): never a "different content" negative


def _family(path: Path, root: Path) -> str:
    relative = path.relative_to(root)
    if len(relative.parts) > 1:  # themed trees (desktop-base/<theme>-theme/...): the theme is the family
        return relative.parts[0].removesuffix("-theme")
    stem = re.sub(r"[-_](d|l|dark|light)$", "", path.stem, flags=re.IGNORECASE)
    return re.sub(r"_\d+x\d+(_portrait)?$", "", stem, flags=re.IGNORECASE)


def _big_enough(path: Path) -> bool:
    import av  # lazy: only discovery probes image sizes

    try:
        with av.open(str(path)) as container:
            ctx = container.streams.video[0].codec_context
            return min(ctx.width, ctx.height) >= MIN_PHOTO_SIDE
    except (av.error.FFmpegError, IndexError):
        return False


def discover_photos(roots: tuple[str, ...] = DEFAULT_PHOTO_ROOTS, dpkg_info_dir: Path = DPKG_INFO_DIR) -> list[Photo]:
    """Raster images under `roots`, sorted, with reserved ones refused.

    A reserved root raises ReservedMediaError; reserved files inside an allowed root are skipped.
    Missing roots are skipped (the photo packages are optional: the corpus falls back to procedural).
    """
    photos: list[Photo] = []
    for root_name in roots:
        check_photo_allowed(root_name, dpkg_info_dir)
        root = Path(root_name)
        if not root.is_dir():
            continue
        skipped = 0
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()):
            if reserved_reason(path, dpkg_info_dir) is not None:
                skipped += 1
                continue
            if _big_enough(path):
                photos.append(Photo(str(path), category=root.name, family=f"{root.name}/{_family(path, root)}"))
        if skipped:
            log.warning("corpus.reserved_photos_skipped", root=root_name, count=skipped)
    return photos
