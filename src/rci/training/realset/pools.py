"""Real-media pools apart from the generated training corpus: one for the generalisation benchmark, a
disjoint one for choosing the served threshold, and a third, disjoint from both, that MatchLite trains on.

The generated corpus (src/rci/training/corpus) draws photos from the Debian wallpaper packages
gnome-backgrounds, sway-backgrounds and desktop-base, procedural pictures, English espeak-ng voices and
procedural music. The pools here draw from other sources, and from each other's never:

* BENCH (benchmarks/bench_quality.py, never fitted on):
  - photos: real photographs shipped by GCompris (Debian `gcompris-qt-data`: animals, farm animals,
    monuments, castles, landscapes, musicians, under water), packed in Qt resource files (.rcc);
  - music: HyperRogue's soundtrack (Debian `hyperrogue-music`, composed pieces, ogg);
  - speech: espeak-ng speaking German, French, Spanish, Italian and Portuguese.
* VALIDATION (rci.training.calibration's real-media pairs: the served score's scale and bias and the
  stored threshold are chosen there):
  - photos: GCompris's vocabulary photographs (the `lang` activity: objects, animals, food; cut out
    on transparent backgrounds, flattened onto white), a different collection from the bench's; any
    within pHash distance 12 of a bench or training photo is dropped;
  - music: Advanced Strategic Command's soundtrack (Debian `asc-music`, mp3);
  - speech: espeak-ng speaking Dutch, Polish and Swedish.
* TRAINING (rci.training.realpairs.realmedia_training: real uploads for MatchLite to learn from):
  - photos: the GCompris pictures neither pool above uses (the object photographs of
    "categorization", paintings, planets, hands) and Tux Paint's stamps (Debian
    `tuxpaint-stamps-default`: photographs and drawings of animals, food, buildings, vehicles; its
    letters and symbols left out), cut-outs flattened onto white, from 200 px; any within pHash
    distance 12 of a bench or validation photo is dropped;
  - music: X-Moto's soundtrack (Debian `xmoto-data`, ogg);
  - speech: espeak-ng speaking English (as the generated corpus does), Danish and Czech.

`read_rcc` unpacks Qt resource files. Near-duplicates within a pool are dropped too. Every file is
checked against the packages reserved for someone else's evaluation (pictures and sounds alike) with
the training corpus's own guard, `rci.training.corpus.sources.check_photo_allowed` (dpkg ownership and
path markers): `check_heldout_media` raises ReservedMediaError for them. `install_pools.sh` (beside
this file) installs the packages when missing.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from rci.training.corpus.ffmpeg import decode_image
from rci.training.corpus.sources import DEFAULT_PHOTO_ROOTS, PHOTO_SUFFIXES, check_photo_allowed
from rci.training.realset.phash import hamming, phash

INSTALLER = Path(__file__).resolve().parent / "install_pools.sh"
GCOMPRIS_RCC = Path("/usr/share/gcompris-qt/rcc")
MIN_SIDE = 400  # pictures smaller than this are icons
NEAR_DUPLICATE_BITS = 12  # pHash distance at or below which two pictures count as the same
POOL_VERSION = 1

# espeak-ng voice variants (both pools); the languages are each pool's own.
VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")


@dataclass(frozen=True)
class PoolSpec:
    """Where one pool's pictures, music and voices come from."""

    name: str
    # GCompris activities whose pictures are photographs, each with a marker their file paths contain
    photo_activities: dict[str, str]
    music_dir: Path
    music_glob: str
    voices: tuple[str, ...]  # espeak-ng voices (languages); the phrase banks (phrases.json) cover each
    flatten: bool = False  # cut-outs on transparent backgrounds: flattened onto white when extracted
    avoid: tuple[str, ...] = field(default=())  # other pools (names) whose photos this one must not repeat
    # pictures installed as plain files: category -> (directory, glob under it)
    photo_dirs: dict[str, tuple[Path, str]] = field(default_factory=dict)
    min_side: int = MIN_SIDE


# The bench's: the photo backgrounds of "details", the underwater scenes of "clickgame", and whole
# activities of photographs (others are drawings, icons or paintings).
BENCH = PoolSpec(
    name="bench",
    photo_activities={"erase": "", "explore_monuments": "", "explore_world_animals": "",
                      "explore_farm_animals": "", "explore_world_music": "", "details": "_background.",
                      "clickgame": "sea"},  # fmt: skip
    music_dir=Path("/usr/share/hyperrogue/music"), music_glob="*.ogg",
    voices=("de", "fr", "es", "it", "pt", "pt-br"),
)
VALIDATION = PoolSpec(
    name="validation",
    photo_activities={"lang": "/words_sample/"},
    music_dir=Path("/usr/share/games/asc/music"), music_glob="*.mp3",
    voices=("nl", "pl", "sv"),
    flatten=True,
    avoid=("bench",),
)
# MatchLite's real-media training pairs (rci.training.serving): the GCompris pictures neither other pool
# uses (object photos of "categorization", paintings, planets), Tux Paint's stamps (photographs and
# drawings, cut out: flattened onto white) but its letters and symbols, X-Moto's music, English (as the
# generated corpus speaks), Danish and Czech. Smaller pictures than the others' (from 200 px): stamps are
# small, and upscaled pictures are what low-quality uploads look like.
TUXPAINT_STAMPS = Path("/usr/share/tuxpaint/stamps")
TRAINING = PoolSpec(
    name="training",
    photo_activities={"categorization": "", "paintings": "", "babyshapes": "", "solar_system": "",
                      "louis-braille": "", "leftright": ""},  # fmt: skip
    photo_dirs={kind: (TUXPAINT_STAMPS / kind, "**/*.png") for kind in
                ("animals", "food", "plants", "town", "vehicles", "space", "household", "clothes", "hobbies",
                 "military", "people", "medical", "naturalforces", "seasonal")},  # fmt: skip
    music_dir=Path("/usr/share/games/xmoto/Textures/Musics"), music_glob="*.ogg",
    voices=("en-us", "en-gb-scotland", "da", "cs"),
    flatten=True,
    avoid=("bench", "validation"),
    min_side=200,
)
POOL_SPECS = {spec.name: spec for spec in (BENCH, VALIDATION, TRAINING)}


def default_pool_dir(spec: PoolSpec) -> Path:
    """Where a pool's photos are extracted and its sets rendered (the bench's keeps its old name)."""
    cache = Path(os.environ.get("RCI_CACHE_DIR", Path.home() / ".cache" / "rci"))
    return cache / ("bench_quality" if spec.name == "bench" else f"realset-{spec.name}")


def check_heldout_media(path: str | Path) -> Path:
    """`path`, unless a package reserved for someone else's evaluation owns it (a picture or a sound)."""
    return check_photo_allowed(path)


def ensure_installed(spec: PoolSpec) -> None:
    """Run install_pools.sh when a pool's files are missing."""
    photo_dirs = [directory for directory, _ in spec.photo_dirs.values()]
    if not (GCOMPRIS_RCC.is_dir() and spec.music_dir.is_dir() and all(d.is_dir() for d in photo_dirs)):
        subprocess.run(["bash", str(INSTALLER)], check=True)


# --------------------------------------------------------------------------------------- photos


def read_rcc(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every file in a Qt resource file (rcc formats 1-3; zlib entries inflated,
    zstd ones skipped). Layout: "qres", version, then offsets of the tree, the data and the names."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 14 if version == 1 else 22  # version 2 added a 64-bit modification time per node

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        return blob[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        base = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[base : base + 6])
        name = name_at(name_offset) if index else ""
        if flags & 0x2:  # directory: child count, first child index
            count, first = struct.unpack(">II", blob[base + 6 : base + 14])
            stack.extend((child, f"{prefix}{name}/" if index else "") for child in range(first, first + count))
            continue
        (offset,) = struct.unpack(">I", blob[base + 10 : base + 14])
        (size,) = struct.unpack(">I", blob[data + offset : data + offset + 4])
        raw = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & 0x4:  # zstd: not needed for the pictures used here
            continue
        yield prefix + name, zlib.decompress(raw[4:]) if flags & 0x1 else raw


@dataclass(frozen=True)
class PoolPhoto:
    path: str  # extracted file under the work dir
    origin: str  # <rcc file>:<member>, where it came from
    category: str  # the GCompris activity or stamp folder: same category = same kind of picture
    phash: int = 0  # its 64-bit pHash, kept with the listing (0: not kept; computed when needed)


def _photo_hash(path: str) -> int:
    return int(phash(decode_image(path, 64, 64))[0])


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header; (0, 0) for what is not a picture."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return 0, 0


def training_photo_hashes() -> np.ndarray:
    """pHashes of the training corpus's photos (empty where their packages are not installed)."""
    paths = [p for root in DEFAULT_PHOTO_ROOTS if Path(root).is_dir()
             for p in sorted(Path(root).rglob("*")) if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()]  # fmt: skip
    hashes = []
    for path in paths:
        try:
            hashes.append(_photo_hash(str(path)))
        except Exception:  # noqa: BLE001 - an undecodable wallpaper cannot leak into the pool either
            continue
    return np.array(hashes, dtype=np.uint64)


def _flatten_onto_white(path: Path) -> None:
    """Replace a picture with transparency by the same picture over white (as GCompris shows it), as PNG."""
    with Image.open(path) as image:
        cut_out = image.convert("RGBA")
    white = Image.new("RGBA", cut_out.size, (255, 255, 255, 255))
    Image.alpha_composite(white, cut_out).convert("RGB").save(path, format="PNG")


def _candidates(spec: PoolSpec, work_dir: Path) -> list[PoolPhoto]:
    """Every photo of the pool's activities and folders, extracted under work_dir/photos, before deduplication."""
    candidates: list[PoolPhoto] = []
    for activity, marker in spec.photo_activities.items():
        rcc = check_heldout_media(GCOMPRIS_RCC / f"{activity}.rcc")
        out_dir = work_dir / "photos" / activity
        out_dir.mkdir(parents=True, exist_ok=True)
        for member, raw in sorted(read_rcc(rcc.read_bytes())):
            name = Path(member).name
            if not name.lower().endswith((".jpg", ".jpeg", ".png", ".webp")) or marker not in (
                    f"/{member}" if marker.startswith("/") else name):  # fmt: skip
                continue
            check_heldout_media(f"{rcc}/{member}")
            target = out_dir / (Path(name).stem + ".png" if spec.flatten else name)
            target.write_bytes(raw)
            if min(_image_size(target)) >= spec.min_side:
                candidates.append(_pool_photo(spec, target, f"{rcc.name}:{member}", activity))
    for category, (directory, pattern) in spec.photo_dirs.items():
        out_dir = work_dir / "photos" / category
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(directory.glob(pattern)):
            if path.stem.endswith(("_mirror", "_thumb")) or min(_image_size(path)) < spec.min_side:
                continue
            target = out_dir / f"{'_'.join(path.relative_to(directory).with_suffix('').parts)}.png"
            target.write_bytes(check_heldout_media(path).read_bytes())
            candidates.append(_pool_photo(spec, target, str(path), category))
    return candidates


def _pool_photo(spec: PoolSpec, target: Path, origin: str, category: str) -> PoolPhoto:
    """An extracted picture no smaller than the pool's minimum side (smaller ones are icons) as a pool photo,
    flattened onto white if the pool's are cut-outs."""
    if spec.flatten:
        _flatten_onto_white(target)
    return PoolPhoto(str(check_heldout_media(target)), origin, category)


def _hashes(photos: list[PoolPhoto]) -> np.ndarray:
    return np.array([p.phash or _photo_hash(p.path) for p in photos], dtype=np.uint64)


def photo_pool(spec: PoolSpec, work_dir: Path | None = None) -> tuple[list[PoolPhoto], dict[str, int]]:
    """A pool's photos, extracted once into `work_dir/photos` (cached with a listing), and counts."""
    work_dir = default_pool_dir(spec) if work_dir is None else work_dir
    listing = work_dir / "photos" / "pool.json"
    if listing.exists():
        cached = json.loads(listing.read_text())
        if cached.get("version") == POOL_VERSION and all(Path(p["path"]).exists() for p in cached["photos"]):
            return [PoolPhoto(**p) for p in cached["photos"]], cached["counts"]
    ensure_installed(spec)
    candidates = _candidates(spec, work_dir)
    training = training_photo_hashes()
    avoided = np.concatenate([_hashes(photo_pool(POOL_SPECS[name])[0]) for name in spec.avoid] or
                             [np.zeros(0, np.uint64)])  # fmt: skip
    kept: list[PoolPhoto] = []
    kept_hashes: list[int] = []
    dropped_dup = dropped_training = dropped_other = 0
    for photo in candidates:
        h = np.array([_photo_hash(photo.path)], dtype=np.uint64)
        if len(training) and hamming(h, training).min() <= NEAR_DUPLICATE_BITS:
            dropped_training += 1
        elif len(avoided) and hamming(h, avoided).min() <= NEAR_DUPLICATE_BITS:
            dropped_other += 1
        elif kept_hashes and hamming(h, np.array(kept_hashes, dtype=np.uint64)).min() <= NEAR_DUPLICATE_BITS:
            dropped_dup += 1
        else:
            kept.append(replace(photo, phash=int(h[0])))
            kept_hashes.append(int(h[0]))
    counts = {"candidates": len(candidates), "kept": len(kept), "near_duplicates_dropped": dropped_dup,
              "close_to_training_dropped": dropped_training, "training_photos_compared": len(training)}  # fmt: skip
    if spec.avoid:
        counts["close_to_other_pools_dropped"] = dropped_other
    listing.write_text(json.dumps({"version": POOL_VERSION, "photos": [asdict(p) for p in kept], "counts": counts},
                                  indent=1))  # fmt: skip
    return kept, counts


# ---------------------------------------------------------------------------------------- sounds


@dataclass(frozen=True)
class MusicTrack:
    path: str
    duration_s: float


def music_pool(spec: PoolSpec) -> list[MusicTrack]:
    """A pool's music pieces, each checked against the reserved packages."""
    ensure_installed(spec)
    tracks = []
    for path in sorted(spec.music_dir.glob(spec.music_glob)):
        check_heldout_media(path)
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                              str(path)], capture_output=True, text=True, check=False)  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():  # three of HyperRogue's pieces have headers FFmpeg refuses
            tracks.append(MusicTrack(str(path), float(out.stdout.strip())))
    return tracks


# Sentences are drawn as subject + action + place, titles as two parts, per language (phrases.json).
PHRASES = json.loads((Path(__file__).parent / "phrases.json").read_text(encoding="utf-8"))


def language_of(voice: str) -> str:
    return voice.split("-")[0].split("+")[0]


def pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def speech_text(rng: np.random.Generator, language: str, sentences: int) -> str:
    bank = PHRASES["sentences"][language]
    return " ".join(f"{pick(rng, tuple(bank['subjects']))} {pick(rng, tuple(bank['actions']))} "
                    f"{pick(rng, tuple(bank['places']))}" for _ in range(sentences))


def title_text(rng: np.random.Generator, language: str) -> str:
    bank = PHRASES["titles"][language]
    return f"{pick(rng, tuple(bank['first']))} {pick(rng, tuple(bank['second']))} #{int(rng.integers(10, 99))}"
