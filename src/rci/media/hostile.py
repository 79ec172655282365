"""Hostile inputs for the worker: `video.published` records and media files built to break it.

A `HostileCase` is one record (key, value) plus the dead-letter code the worker must give it.
`hostile_corpus` cycles through every family below with seeded variations, so a corpus of any
size is reproducible. Families, by the layer that must stop them:

* record  : not UTF-8, not JSON, JSON that is not an object, nesting and integer bombs,
            tombstones                                              -> invalid_json
* contract: missing / oversized / mistyped fields, bad times, forbidden schemes,
            unknown schema versions, wrong or missing keys          -> schema_violation, ...
* allow-list: `..` (plain and %-encoded), other hosts, queries, NUL, /etc/passwd,
            /proc/self/environ, sibling folders, symlinks and FIFOs planted inside the
            media folder, other buckets and bucket folders         -> media_not_allowed
* media   : missing, empty, sparse files over the byte limit, truncated MP4s, other
            formats renamed .mp4 (PNG, ELF, ZIP, PDF, HTML), FFmpeg playlists pointing at
            local files (HLS, ffconcat), a tiny file declaring 8192x4320 frames, headers
            claiming days of duration, tracks with no samples, codecs outside the
            allow-list (MJPEG, MPEG-2)                            -> media_* codes

`unusual_valid_records` gives the opposite: odd but valid events (unicode, extra fields,
absurd duration hints, lower-case and space-separated times) that must be scored, to interleave
with them. (`file://localhost/...` is not one: CONTRACT.md and its JSON Schema say `file:///`.)
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import wave
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import av

from rci.media.synth import write_test_video
from rci.core.errors import RejectCode

C = RejectCode

# Dimensions of the "decompression bomb": 35 Mpx per frame, ~100 KB on disk (one flat H.264 frame).
BOMB_WIDTH, BOMB_HEIGHT = 8192, 4320


@dataclass(frozen=True)
class HostileCase:
    """One hostile record and the DLQ code it must get. `value` None is a tombstone."""

    family: str
    key: bytes | None
    value: bytes | None
    code: RejectCode

    @property
    def identity(self) -> tuple[bytes | None, bytes]:
        """How its dead letter is recognised: the key and the original value (DLQ `original`)."""
        return self.key, self.value or b""


@dataclass(frozen=True)
class MediaLayout:
    """Where hostile media goes. `media_dir` is an allowed `file://` prefix folder; `outside_dir`
    lies outside every allowed prefix and holds the decoys that escapes aim at. `s3_allowed` is an
    allowed `s3://bucket/folder/` prefix, or None when the worker allows no bucket."""

    media_dir: Path
    outside_dir: Path
    max_bytes: int
    s3_allowed: str | None = None

    @property
    def hostile_dir(self) -> Path:
        return self.media_dir / "hostile"


# --- events ------------------------------------------------------------------------------------


def event(video_id: str, media_uri: str, second: int = 0, **extra: object) -> dict:
    """A valid `video.published` payload (before any hostile edit)."""
    payload = {
        "schema_version": 1,
        "video_id": video_id,
        "media_uri": media_uri,
        "title": f"clip {video_id}",
        "published_at": f"2026-11-22T{10 + second // 3600 % 14:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
    }
    payload.update(extra)
    return payload


def _keyed(payload: dict) -> tuple[bytes, bytes]:
    return str(payload["video_id"]).encode("utf-8", "surrogatepass"), json.dumps(payload).encode()


# A builder makes the i-th case of its family: (key, value, code).
Builder = Callable[[int, random.Random, str], tuple[bytes | None, bytes | None, RejectCode]]


def _record_families(valid_uri: str) -> dict[str, Builder]:
    """Families that the contract layer must stop, before any media is looked at."""

    def base(vid: str, **edits: object) -> dict:
        return {**event(vid, valid_uri), **edits}

    def not_utf8(i: int, rng: random.Random, vid: str):
        return vid.encode(), b"\xff\xfe" + vid.encode() + rng.randbytes(rng.randint(0, 64)), C.INVALID_JSON

    def latin1(i: int, rng: random.Random, vid: str):
        return vid.encode(), json.dumps(base(vid, title=f"café n°{i}"), ensure_ascii=False).encode("latin-1"), C.INVALID_JSON

    def truncated_json(i: int, rng: random.Random, vid: str):
        text = json.dumps(base(vid, title=f"t{i}"))
        return vid.encode(), text[: rng.randint(text.index(vid) + len(vid), len(text) - 1)].encode(), C.INVALID_JSON

    def not_object(i: int, rng: random.Random, vid: str):
        shapes = [[vid, i], f"{vid}", i + 0.5, None, True, [base(vid)]]
        return vid.encode(), json.dumps(shapes[i % len(shapes)]).encode(), C.INVALID_JSON

    def deep_nesting(i: int, rng: random.Random, vid: str):
        depth = rng.randint(5_000, 100_000)
        return vid.encode(), (f'{{"video_id": "{vid}", "x": ' + "[" * depth + "]" * depth + "}").encode(), C.INVALID_JSON

    def huge_integer(i: int, rng: random.Random, vid: str):
        digits = "9" * rng.randint(4_301, 20_000)  # past CPython's int-parsing limit
        return vid.encode(), json.dumps(base(vid)).replace('"schema_version": 1', f'"schema_version": {digits}').encode(), C.INVALID_JSON

    def oversized_value(i: int, rng: random.Random, vid: str):
        # Under the broker's 1 MB limit, but its dead letter (base64, +33%) is not.
        return vid.encode(), vid.encode() + b"\x00" * rng.randint(800_000, 900_000), C.INVALID_JSON

    def tombstone(i: int, rng: random.Random, vid: str):
        return vid.encode(), None, C.INVALID_JSON

    def missing_field(i: int, rng: random.Random, vid: str):
        payload = base(vid)
        del payload[("media_uri", "title", "published_at", "video_id")[i % 4]]
        return vid.encode(), json.dumps(payload).encode(), C.SCHEMA_VIOLATION

    def oversized(i: int, rng: random.Random, vid: str):
        field, limit = [("title", 1000), ("sticker_text", 1000), ("creator_id", 128), ("media_uri", 2048)][i % 4]
        size = rng.choice([limit + 1, limit * 10, 50_000])
        value = valid_uri + "x" * size if field == "media_uri" else "é" * size
        return vid.encode(), json.dumps(base(vid, **{field: value})).encode(), C.SCHEMA_VIOLATION

    def bad_video_id(i: int, rng: random.Random, vid: str):
        bad = [f"{vid}/x", f"{vid} x", f"{vid}ü", "", f"../{vid}", f"{vid}\n", "v" * 129, f"{vid}\u202e"][i % 8]
        return bad.encode(), json.dumps(base(bad, title=f"clip {vid}")).encode(), C.SCHEMA_VIOLATION

    def wrong_type(i: int, rng: random.Random, vid: str):
        edit = [
            {"title": i}, {"duration_s": "3"}, {"duration_s": -1.0}, {"published_at": 20261122},
            {"sticker_text": [vid]}, {"schema_version": "1"}, {"creator_id": {"id": vid}}, {"video_id": 7},
        ][i % 8]  # fmt: skip
        return vid.encode(), json.dumps(base(vid, **edit)).encode(), C.SCHEMA_VIOLATION

    def boolean_version(i: int, rng: random.Random, vid: str):
        # JSON `true` is not the integer 1 (the published JSON Schema says so too)
        return vid.encode(), json.dumps(base(vid, schema_version=True, title=f"t{i}")).encode(), C.SCHEMA_VIOLATION

    def non_finite(i: int, rng: random.Random, vid: str):
        literal = ["NaN", "Infinity", "-Infinity", "1e400"][i % 4]
        text = json.dumps(base(vid, duration_s=1.5)).replace("1.5", literal)
        return vid.encode(), text.encode(), C.SCHEMA_VIOLATION

    def bad_time(i: int, rng: random.Random, vid: str):
        when = ["yesterday", "2026-02-30T00:00:00Z", "2026-11-22T25:00:00Z", "2026-11-22", "2026-11-22T10:00:00",
                "2026-11-22T10:00:00+99:00", "", "2026-11-22T10:00:60Z"][i % 8]  # fmt: skip
        return vid.encode(), json.dumps(base(vid, published_at=when)).encode(), C.SCHEMA_VIOLATION

    def forbidden_scheme(i: int, rng: random.Random, vid: str):
        uri = ["http://169.254.169.254/latest/meta-data/", "https://example.com/a.mp4", "ftp://example.com/a.mp4",
               "data:video/mp4;base64,AAAA", "gopher://127.0.0.1:9092/_", "file:/etc/passwd", "FILE:///etc/passwd",
               "/etc/passwd", "s3://UPPER/a.mp4", "s3:///a.mp4", "file://", "file:///"][i % 12]  # fmt: skip
        return vid.encode(), json.dumps(base(vid, media_uri=uri)).encode(), C.SCHEMA_VIOLATION

    def unsupported_version(i: int, rng: random.Random, vid: str):
        version = [0, 2, 3, 99, -1, 2**31][i % 6]
        return vid.encode(), json.dumps(base(vid, schema_version=version)).encode(), C.UNSUPPORTED_SCHEMA_VERSION

    def wrong_key(i: int, rng: random.Random, vid: str):
        key = [None, b"", f"{vid}-other".encode(), vid.upper().encode() + b"!"][i % 4]
        return key, json.dumps(base(vid)).encode(), C.INVALID_KEY

    return {
        "record.not_utf8": not_utf8,
        "record.latin1": latin1,
        "record.truncated_json": truncated_json,
        "record.not_object": not_object,
        "record.deep_nesting": deep_nesting,
        "record.huge_integer": huge_integer,
        "record.oversized_value": oversized_value,
        "record.tombstone": tombstone,
        "contract.missing_field": missing_field,
        "contract.oversized_field": oversized,
        "contract.bad_video_id": bad_video_id,
        "contract.wrong_type": wrong_type,
        "contract.boolean_version": boolean_version,
        "contract.non_finite": non_finite,
        "contract.bad_time": bad_time,
        "contract.forbidden_scheme": forbidden_scheme,
        "contract.unsupported_version": unsupported_version,
        "contract.wrong_key": wrong_key,
    }


# --- media files ------------------------------------------------------------------------------------


def write_hostile_media(layout: MediaLayout, clip: Path) -> dict[str, list[tuple[str, RejectCode]]]:
    """Write the hostile files (and plant the links) once; family -> [(media_uri, code)].

    `clip` is a valid MP4 written with `moov` at the end (rci.media.synth's default), so every cut
    before the index is undecodable.
    """
    hostile, outside = layout.hostile_dir, layout.outside_dir
    hostile.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    decoy = outside / "decoy.mp4"
    decoy.write_bytes(clip.read_bytes())  # a perfectly good video: only the path makes it hostile
    media_uri = layout.media_dir.as_uri()
    data = clip.read_bytes()

    def put(name: str, content: bytes) -> str:
        (hostile / name).write_bytes(content)
        return (hostile / name).as_uri()

    def link(name: str, target: Path) -> str:
        path = hostile / name
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
        return path.as_uri()

    families: dict[str, list[tuple[str, RejectCode]]] = {
        "allow.dotdot": [
            (f"{media_uri}/../{outside.name}/decoy.mp4", C.MEDIA_NOT_ALLOWED),
            (f"{media_uri}/%2e%2e/%2E%2E/etc/passwd", C.MEDIA_NOT_ALLOWED),
            (f"{media_uri}/./hostile/../../etc/passwd", C.MEDIA_NOT_ALLOWED),
            (f"{media_uri}/{quote('..', safe='')}/{outside.name}/decoy.mp4", C.MEDIA_NOT_ALLOWED),
        ],
        "allow.outside": [
            ("file:///etc/passwd", C.MEDIA_NOT_ALLOWED),
            ("file:///proc/self/environ", C.MEDIA_NOT_ALLOWED),  # where the worker's secrets live
            ("file:///dev/zero", C.MEDIA_NOT_ALLOWED),
            (decoy.as_uri(), C.MEDIA_NOT_ALLOWED),
            (f"{media_uri}-private/a.mp4", C.MEDIA_NOT_ALLOWED),  # sibling folder sharing the prefix text
            (media_uri, C.MEDIA_NOT_ALLOWED),  # the folder itself
        ],
        "allow.host_query_nul": [
            (f"file://evil.example{layout.media_dir}/a.mp4", C.SCHEMA_VIOLATION),  # the contract wants file:///
            (f"file://localhost{layout.media_dir}/a.mp4", C.SCHEMA_VIOLATION),  # even the local host (RFC 8089)
            (f"{media_uri}/a.mp4?x=../../etc/passwd", C.MEDIA_NOT_ALLOWED),
            (f"{media_uri}/a.mp4#frag", C.MEDIA_NOT_ALLOWED),
            (f"{media_uri}/a%00.mp4", C.MEDIA_NOT_ALLOWED),
        ],
        "allow.symlink_escape": [
            (link("to-decoy.mp4", decoy), C.MEDIA_NOT_ALLOWED),
            (link("to-passwd.mp4", Path("/etc/passwd")), C.MEDIA_NOT_ALLOWED),
            (link("to-environ.mp4", Path("/proc/self/environ")), C.MEDIA_NOT_ALLOWED),
            (link("to-zero.mp4", Path("/dev/zero")), C.MEDIA_NOT_ALLOWED),
            (link("to-outside-dir", outside).rstrip("/") + "/decoy.mp4", C.MEDIA_NOT_ALLOWED),
        ],
        "allow.special_file": [
            (_fifo(hostile / "fifo.mp4"), C.MEDIA_NOT_ALLOWED),  # opening it for reading would block forever
            (_folder(hostile / "folder.mp4"), C.MEDIA_NOT_ALLOWED),
        ],
        "media.missing": [((hostile / "missing.mp4").as_uri(), C.MEDIA_NOT_FOUND)],
        "media.empty": [(put("empty.mp4", b""), C.MEDIA_EMPTY)],
        "media.over_byte_limit": [(_sparse(hostile / "sparse.mp4", layout.max_bytes + 1), C.MEDIA_TOO_LARGE)],
        "media.truncated": [(put(f"cut{cut}.mp4", data[:cut]), C.MEDIA_UNDECODABLE) for cut in _cuts(data)],
        "media.wrong_container": [
            (put("png.mp4", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)), C.MEDIA_UNDECODABLE),
            (put("elf.mp4", b"\x7fELF\x02\x01\x01" + bytes(1024)), C.MEDIA_UNDECODABLE),
            (put("zip.mp4", _zip_bytes()), C.MEDIA_UNDECODABLE),
            (put("pdf.mp4", b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF\n"), C.MEDIA_UNDECODABLE),
            (put("html.mp4", b"<!doctype html><video src='file:///etc/passwd'></video>"), C.MEDIA_UNDECODABLE),
            (put("text.mp4", b"not a video at all\n" * 50), C.MEDIA_UNDECODABLE),
            (put("noise.mp4", random.Random(7).randbytes(4096)), C.MEDIA_UNDECODABLE),
        ],
        "media.playlist": [  # FFmpeg would follow these to local files or URLs if its demuxers allowed it
            (put("hls.m3u8", b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"),
             C.MEDIA_UNDECODABLE),
            (put("concat.mp4", b"ffconcat version 1.0\nfile /etc/passwd\n"), C.MEDIA_UNDECODABLE),
            (put("hls.mp4", f"#EXTM3U\n#EXTINF:1,\n{decoy}\n".encode()), C.MEDIA_UNDECODABLE),
        ],
        "media.huge_dimensions": [(_frame_bomb(hostile / "bomb.mp4").as_uri(), C.MEDIA_RESOLUTION_TOO_HIGH)],
        "media.codec_not_allowed": [  # decodable by FFmpeg, but not in the default RCI_MEDIA_ALLOWED_CODECS
            (_foreign_codec(hostile / "mjpeg.mp4", "avi", "mjpeg", "yuvj420p").as_uri(), C.MEDIA_UNDECODABLE),
            (_foreign_codec(hostile / "mpeg2.mp4", "mpegts", "mpeg2video", "yuv420p").as_uri(), C.MEDIA_UNDECODABLE),
        ],
        "media.absurd_duration": [
            (_timestamp_gap(hostile / "gap.mkv").as_uri(), C.MEDIA_TOO_LONG),  # 1.2 KB claiming 116 days
            (put("stts.mp4", _stretched_sample(data)), C.MEDIA_TOO_LONG),  # one sample lasting 58 hours
        ],
        "media.no_samples": [(put("silence.wav", _empty_wav()), C.MEDIA_NO_STREAMS)],
    }
    families["allow.s3"] = _s3_cases(layout)
    return families


def _s3_cases(layout: MediaLayout) -> list[tuple[str, RejectCode]]:
    if layout.s3_allowed is None:  # no bucket allowed: the scheme itself is refused
        return [("s3://rci-media/uploads/a.mp4", C.MEDIA_SCHEME_NOT_ALLOWED),
                ("s3://other-bucket/a.mp4", C.MEDIA_SCHEME_NOT_ALLOWED)]  # fmt: skip
    allowed = layout.s3_allowed.rstrip("/")  # s3://bucket/folder: the folder is required here
    bucket, folder = allowed.removeprefix("s3://").split("/", 1)
    return [
        (f"s3://{bucket}-other/{folder}/a.mp4", C.MEDIA_NOT_ALLOWED),  # another bucket
        (f"s3://{bucket}/{folder}-private/a.mp4", C.MEDIA_NOT_ALLOWED),  # a sibling folder
        (f"s3://{bucket}/a.mp4", C.MEDIA_NOT_ALLOWED),  # the bucket's root
        (f"{allowed}/../private/a.mp4", C.MEDIA_NOT_ALLOWED),
        (f"{allowed}/missing.mp4", C.MEDIA_NOT_FOUND),
    ]


def _fifo(path: Path) -> str:
    if not path.exists():
        os.mkfifo(path)
    return path.as_uri()


def _folder(path: Path) -> str:
    path.mkdir(exist_ok=True)
    return path.as_uri()


def _sparse(path: Path, size: int) -> str:
    """A file of `size` bytes that occupies almost nothing on disk."""
    with path.open("wb") as f:
        f.truncate(size)
    return path.as_uri()


def _cuts(data: bytes) -> list[int]:
    """Cut points before the MP4 index (moov), where no prefix is a playable file."""
    moov = data.rfind(b"moov") - 4
    return sorted({8, 32, 300, min(2000, moov - 1), moov // 2, moov - 1})


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("video.mp4", b"\x00" * 100_000)
    return buffer.getvalue()


def _empty_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(b"")
    return buffer.getvalue()


def _frame_bomb(path: Path) -> Path:
    """One flat H.264 frame of BOMB_WIDTH x BOMB_HEIGHT: ~100 KB that would decode to 106 MB of RGB."""
    if path.exists():
        return path
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = BOMB_WIDTH, BOMB_HEIGHT, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "threads": "1"}
        frame = av.VideoFrame(BOMB_WIDTH, BOMB_HEIGHT, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts, frame.time_base = 0, Fraction(1, 1)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _foreign_codec(path: Path, container_format: str, codec: str, pix_fmt: str) -> Path:
    """Two seconds of small frames in a codec outside the default allow-list (named .mp4, as uploads are)."""
    if path.exists():
        return path
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        for pts in range(10):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([128]) * plane.buffer_size)
            frame.pts, frame.time_base = pts, Fraction(1, 5)
            container.mux(stream.encode(frame.reformat(format=pix_fmt)))
        container.mux(stream.encode(None))
    return path


def _timestamp_gap(path: Path) -> Path:
    """Three tiny frames, the last one 10^7 s after the first: the duration lives only in timestamps."""
    with av.open(str(path), mode="w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "threads": "1"}
        for pts in (0, 1, 10_000_000):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.pts, frame.time_base = pts, Fraction(1, 1)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _stretched_sample(mp4: bytes) -> bytes:
    """The clip with its first track's last `stts` run lasting 2^31 ticks per sample (a lying index)."""
    data = bytearray(mp4)
    at = data.find(b"stts")
    runs = struct.unpack_from(">I", data, at + 8)[0]
    struct.pack_into(">I", data, at + 12 + 8 * (runs - 1) + 4, 0x7FFFFFFF)
    return bytes(data)


def _media_families(layout: MediaLayout, clip: Path) -> dict[str, Builder]:
    """One builder per media family: the i-th event points at the family's files in turn."""
    families = write_hostile_media(layout, clip)

    def builder(targets: list[tuple[str, RejectCode]]) -> Builder:
        def build(i: int, rng: random.Random, vid: str):
            uri, code = targets[i % len(targets)]
            key, value = _keyed(event(vid, uri, second=i))
            return key, value, code

        return build

    return {family: builder(targets) for family, targets in families.items() if targets}


# --- the corpus --------------------------------------------------------------------------------------


def hostile_corpus(
    layout: MediaLayout,
    clip: Path,
    count: int,
    seed: int = 0,
    id_prefix: str = "hostile",
    exclude: frozenset[str] = frozenset(),
) -> list[HostileCase]:
    """`count` hostile records cycling through every family (minus `exclude`), shuffled by `seed`.

    Every case has a distinct (key, value), so each dead letter can be traced to its case.
    """
    layout.hostile_dir.mkdir(parents=True, exist_ok=True)
    source = layout.hostile_dir / "source.mp4"  # a valid, allowed file: only the record's own flaw counts
    source.write_bytes(clip.read_bytes())
    builders = {**_record_families(source.as_uri()), **_media_families(layout, source)}
    builders = {name: build for name, build in builders.items() if name not in exclude}
    rng = random.Random(seed)
    names = sorted(builders)
    cases: list[HostileCase] = []
    for i in range(count):
        family = names[i % len(names)]
        vid = f"{id_prefix}-{i:05d}"
        key, value, code = builders[family](i // len(names), rng, vid)
        cases.append(HostileCase(family, key, value, code))
    rng.shuffle(cases)
    return cases


def families(cases: list[HostileCase]) -> dict[str, int]:
    """How many cases of each family a corpus holds."""
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.family] = counts.get(case.family, 0) + 1
    return dict(sorted(counts.items()))


def unusual_valid_records(clips: list[Path], count: int, id_prefix: str = "valid") -> Iterator[tuple[bytes, bytes]]:
    """Odd but valid `video.published` records (key, value): every one of them must be scored."""
    quirks: list[dict] = [
        {},
        {"title": "", "sticker_text": ""},
        {"title": "重复视频 🎬 مرحبا שלום \u200b\u00a0 Ω≈ç√", "sticker_text": "ステッカー " * 50},
        {"title": "t" * 1000, "sticker_text": "s" * 1000, "creator_id": "c" * 128},
        {"duration_s": 1e9},  # a hint only: the media decides
        {"duration_s": 0},
        {"unknown_field": {"nested": ["x" * 10_000]}, "another": None},  # unknown fields are ignored
        {"published_at": "2026-11-22T10:00:00.123456+05:30"},
        {"published_at": "2026-11-22 10:00:00Z"},
        {"lowercase_time": True},  # 2026-11-22t10:00:09z: RFC 3339 allows it, retrieval must read it
    ]
    for i in range(count):
        quirk = dict(quirks[i % len(quirks)])
        clip = clips[i % len(clips)]
        payload = event(f"{id_prefix}-{i:05d}", clip.as_uri(), second=i, **quirk)
        if payload.pop("lowercase_time", False):
            payload["published_at"] = payload["published_at"].lower()
        yield _keyed(payload)


def write_clips(folder: Path, count: int, duration_s: float = 2.0) -> list[Path]:
    """`count` distinct short valid clips (video + audio), written once."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        path if (path := folder / f"clip{i:03d}.mp4").exists() else
        write_test_video(path, duration_s=duration_s, seed=i, tone_hz=220 + 40 * i)
        for i in range(count)
    ]  # fmt: skip
