"""Held-out media pools: pictures, music and speech that no training corpus of this project uses.

Training (src/rci/training/corpus) draws photos from the Debian wallpaper packages gnome-backgrounds,
sway-backgrounds and desktop-base, procedural pictures, English espeak-ng voices and procedural
music. The benchmark draws from other sources only:

* photos: real photographs shipped by GCompris (Debian `gcompris-qt-data`: animals, farm animals,
  monuments, castles, landscapes, musicians, under water), packed in Qt resource files (.rcc);
  `read_rcc` unpacks them. Near-duplicates (the same picture in two activities) are dropped, and so
  is any picture whose pHash is close to a training photo's, when those packages are installed;
* music: HyperRogue's soundtrack (Debian `hyperrogue-music`, 17 composed pieces, ogg), cut into
  non-overlapping segments;
* speech: espeak-ng speaking German, French, Spanish, Italian and Portuguese sentences.

Every file is checked against the packages reserved for someone else's evaluation (pictures and
sounds alike) with the training corpus's own guard, `rci.training.corpus.sources.check_photo_allowed`
(dpkg ownership and path markers): `check_heldout_media` raises ReservedMediaError for them.
`benchmarks/install_heldout.sh` installs the packages when missing.
"""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.quality.phash import hamming, phash
from rci.training.corpus.ffmpeg import decode_image
from rci.training.corpus.sources import DEFAULT_PHOTO_ROOTS, PHOTO_SUFFIXES, check_photo_allowed

INSTALLER = Path(__file__).resolve().parents[1] / "install_heldout.sh"
GCOMPRIS_RCC = Path("/usr/share/gcompris-qt/rcc")
MUSIC_DIR = Path("/usr/share/hyperrogue/music")
# GCompris activities whose pictures are photographs (others are drawings, icons or paintings),
# and which of their files: the photo backgrounds of "details", the underwater scenes of "clickgame".
PHOTO_ACTIVITIES: dict[str, str] = {
    "erase": "",
    "explore_monuments": "",
    "explore_world_animals": "",
    "explore_farm_animals": "",
    "explore_world_music": "",
    "details": "_background.",
    "clickgame": "sea",
}
MIN_SIDE = 400  # pictures smaller than this are icons
NEAR_DUPLICATE_BITS = 12  # pHash distance at or below which two pictures count as the same
POOL_VERSION = 1


def check_heldout_media(path: str | Path) -> Path:
    """`path`, unless a package reserved for someone else's evaluation owns it (a picture or a sound)."""
    return check_photo_allowed(path)


def ensure_installed() -> None:
    """Run benchmarks/install_heldout.sh when a pool's files are missing."""
    if not (GCOMPRIS_RCC.is_dir() and MUSIC_DIR.is_dir()):
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
    category: str  # the GCompris activity: same category = same kind of picture


def _photo_hash(path: str) -> int:
    return int(phash(decode_image(path, 64, 64))[0])


def _image_size(path: Path) -> tuple[int, int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    try:
        width, height = (int(v) for v in out.stdout.strip().split(",")[:2])
    except ValueError:
        return 0, 0
    return width, height


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


def photo_pool(work_dir: Path) -> tuple[list[PoolPhoto], dict[str, int]]:
    """The held-out photos, extracted once into `work_dir/photos` (cached with a listing), and counts."""
    listing = work_dir / "photos" / "pool.json"
    if listing.exists():
        cached = json.loads(listing.read_text())
        if cached.get("version") == POOL_VERSION and all(Path(p["path"]).exists() for p in cached["photos"]):
            return [PoolPhoto(**p) for p in cached["photos"]], cached["counts"]
    ensure_installed()
    candidates: list[PoolPhoto] = []
    for activity, marker in PHOTO_ACTIVITIES.items():
        rcc = check_heldout_media(GCOMPRIS_RCC / f"{activity}.rcc")
        out_dir = work_dir / "photos" / activity
        out_dir.mkdir(parents=True, exist_ok=True)
        for member, raw in sorted(read_rcc(rcc.read_bytes())):
            name = Path(member).name
            if not name.lower().endswith((".jpg", ".jpeg", ".png", ".webp")) or marker not in name:
                continue
            check_heldout_media(f"{rcc}/{member}")
            target = out_dir / name
            target.write_bytes(raw)
            if min(_image_size(target)) >= MIN_SIDE:
                candidates.append(PoolPhoto(str(check_heldout_media(target)), f"{rcc.name}:{member}", activity))
    training = training_photo_hashes()
    kept: list[PoolPhoto] = []
    kept_hashes: list[int] = []
    dropped_dup = dropped_training = 0
    for photo in candidates:
        h = np.array([_photo_hash(photo.path)], dtype=np.uint64)
        if len(training) and hamming(h, training).min() <= NEAR_DUPLICATE_BITS:
            dropped_training += 1
        elif kept_hashes and hamming(h, np.array(kept_hashes, dtype=np.uint64)).min() <= NEAR_DUPLICATE_BITS:
            dropped_dup += 1
        else:
            kept.append(photo)
            kept_hashes.append(int(h[0]))
    counts = {"candidates": len(candidates), "kept": len(kept), "near_duplicates_dropped": dropped_dup,
              "close_to_training_dropped": dropped_training, "training_photos_compared": len(training)}  # fmt: skip
    listing.write_text(json.dumps({"version": POOL_VERSION, "photos": [asdict(p) for p in kept], "counts": counts},
                                  indent=1))  # fmt: skip
    return kept, counts


# ---------------------------------------------------------------------------------------- sounds


@dataclass(frozen=True)
class MusicTrack:
    path: str
    duration_s: float


def music_pool() -> list[MusicTrack]:
    """HyperRogue's pieces (ogg), each checked against the reserved packages."""
    ensure_installed()
    tracks = []
    for path in sorted(MUSIC_DIR.glob("*.ogg")):
        check_heldout_media(path)
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                              str(path)], capture_output=True, text=True, check=False)  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():  # three of the pieces have headers FFmpeg refuses
            tracks.append(MusicTrack(str(path), float(out.stdout.strip())))
    return tracks


# espeak-ng voices of the held-out languages (training speaks English only), with voice variants.
VOICES = ("de", "fr", "es", "it", "pt", "pt-br")
VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")

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
