"""Decode one media file with PyAV into the frozen encoders' input (`DecodedMedia`).

Frames (DESIGN.md, "Features": 1 fps, 224x224, up to a maximum count, zero padding and a mask)
  * For every whole second k = 0, 1, 2, ... that lies inside the video (k < end of the last
    frame), the decoded frame whose timestamp is nearest to k is kept; ties go to the earlier
    frame. The frame count is therefore ceil(video duration): 2.5 s -> 3 frames (0, 1, 2 s);
    3.0 s -> 3 frames (3.0 s is where the video ends, not a frame). Times are measured from
    the video stream's start. Only the first `max_frames` seconds are sampled; the remaining
    rows are zero with `frame_mask` False.
  * Aspect: the centred square of side min(width, height) is cut out and scaled to 224x224
    (area interpolation). This is the evaluation transform the Swin encoder was pretrained
    with (shorter side, centre crop), it never distorts shapes, and it spends all 224x224
    pixels on picture: letterboxing a 16:9 frame would waste 44% of them on bars whose size
    depends on the upload's aspect ratio, which differs between an original and its re-edits.
  * Whole frames (`DecodedMedia.wholes`): the same frames uncropped, scaled so the longer side is
    224 and the shorter keeps the aspect ratio (rounded to a multiple of 8; 224x128 for 16:9).
    The centre square alone loses what a vertical re-crop, a zoom or a picture-in-picture keeps
    of the source: matched across both views, SSCD finds those sources (docs/encoders.md). Every
    whole frame of a video has the first kept frame's size, so a stream changing size mid-way
    still gives one array.

Audio: the first 30 s of the best audio track, resampled by FFmpeg to 16 kHz mono float32,
clipped to [-1, 1] (`DecodedMedia.audio`, at most 480 000 samples), and Whisper's log-mel
of it (`rci.media.logmel`). No audio track -> audio None; no video track -> no frames (mask all
False); neither, or tracks that decode to nothing -> MEDIA_NO_STREAMS.

Limits (`MediaPolicy`), each checked as early as possible:
  * a local file is opened once, by descriptor, without blocking and without following a link,
    and that descriptor is checked (a regular file, its size) and decoded (`rci.media.localfile`);
  * resolution: FFmpeg's own decoders are given `max_pixels`, so not even the decoding that
    `av.open` does to probe the streams allocates a picture over the limit; the stream header's
    width x height is checked before any frame is decoded here, and every frame again (streams
    may change size mid-way);
  * codecs: only the chosen video and audio tracks' codecs in `allowed_codecs` are decoded, and
    `av.open`'s probing may open only their decoders (`codec_whitelist`); anything else is
    MEDIA_UNDECODABLE before a frame is decoded;
  * duration from the container/stream header before demuxing, then from the timestamps of
    every demuxed packet (all packets are read, only the needed ones are decoded), so a file
    whose header understates its length is still refused;
  * anything FFmpeg cannot parse or decode is MEDIA_UNDECODABLE. A file cut inside a packet
    fails to decode; one cut exactly at a packet boundary decodes as the shorter file it is;
  * time: a decode running longer than `decode_timeout_s` is MEDIA_UNDECODABLE. The deadline is
    checked between packets and on every read FFmpeg makes (a read past it returns end-of-file, so
    FFmpeg stops), so a decode overrunning it ends within one packet's work, which `max_pixels`
    bounds; `rci.media.reader` also stops waiting for it (a thread cannot be killed).

Safety: only plain media demuxers are enabled (`DEMUXERS`), so playlists and scripts (HLS,
concat, ...) cannot make FFmpeg open further files or URLs; FFmpeg reads the one descriptor opened
for the media (or its bytes) through PyAV, and `protocol_whitelist` stays `file`.

Limit: `max_pixels` reaches the decoders `av.open` probes with only for streams the container
declares before probing (MP4, Matroska, WebM, ...); a stream that MPEG-TS/PS reveals only while
probing is probed without it (the header and per-frame checks here still refuse it before its
frames are sampled).

Deterministic: single-threaded decoding and fixed conversions, so the same bytes always give
identical arrays. Synchronous, CPU-bound work: the worker runs `decode_media` in a pool.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatchcase
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from rci.media.decoded import FRAME_SIZE, SAMPLE_RATE, WHOLE_SIZE, DecodedMedia
from rci.media.errors import MediaRejected
from rci.media.logmel import N_SAMPLES, log_mel_spectrogram
from rci.media.localfile import check_size, open_media_file
from rci.media.policy import MediaPolicy, decoders_by_codec
from rci.core.errors import RejectCode

MediaSource = Path | bytes  # a local file decoded in place (a resolved path: a link is refused), or an object's bytes

# FFmpeg demuxer names allowed to open media (matched against each demuxer's name list).
DEMUXERS = (
    "mov", "mp4", "matroska", "webm", "avi", "flv", "mpegts", "mpeg", "asf", "ogg", "wav", "mp3", "aac", "flac",
)
_AV_TIME_BASE = 1_000_000  # container.duration / start_time are in microseconds


def decode_media(source: MediaSource, policy: MediaPolicy) -> DecodedMedia:
    """Decode frames at 1 fps and the first 30 s of audio; raise MediaRejected for bad media.

    StorageUnavailable when the local filesystem fails while the file is opened.
    """
    deadline = _Deadline(policy.decode_timeout_s)
    try:
        with _opened(source, policy) as file, _container(file, policy, deadline) as container:
            return _decode(container, policy, deadline)
    except FileNotFoundError as exc:  # av's FileNotFoundError is also an FFmpegError
        raise MediaRejected(RejectCode.MEDIA_NOT_FOUND, f"media vanished before decoding: {exc}") from exc
    except av.FFmpegError as exc:
        deadline.check()  # FFmpeg failing on the end-of-file a read past the deadline returned
        raise MediaRejected(RejectCode.MEDIA_UNDECODABLE, f"FFmpeg cannot decode the media: {exc}") from exc


@contextmanager
def _opened(source: MediaSource, policy: MediaPolicy) -> Iterator[BinaryIO]:
    if isinstance(source, Path):
        with open_media_file(source, policy) as file:  # checked by descriptor; decoded from that descriptor
            yield file
        return
    check_size(len(source), policy, "media")
    yield io.BytesIO(source)


def _container(file: BinaryIO, policy: MediaPolicy, deadline: _Deadline) -> av.container.InputContainer:
    container_options = {
        "format_whitelist": ",".join(DEMUXERS),
        "codec_whitelist": ",".join(_allowed_decoders(policy.allowed_codecs)),  # what av.open's probing may decode
        "protocol_whitelist": "file",  # nothing but this one file: no nested opens of other protocols
    }
    return av.open(
        _DeadlineReader(file, deadline),
        container_options=container_options,
        options={"max_pixels": str(policy.max_pixels)},  # the container's and av.open's probing decoders
        metadata_errors="replace",
    )


def _decode(container: av.container.InputContainer, policy: MediaPolicy, deadline: _Deadline) -> DecodedMedia:
    deadline.check()
    video, audio = _pick_streams(container, policy)
    _check_declared_duration(container, policy)
    if video is not None:
        _check_resolution(video.codec_context.width, video.codec_context.height, policy)
    sampler = _FrameSampler(video, policy) if video is not None else None
    collector = _AudioCollector() if audio is not None else None
    consumers = {s.index: c for s, c in ((video, sampler), (audio, collector)) if s is not None}
    clocks = _demux(container, policy, consumers, deadline)

    if sampler is not None:
        frames, wholes, mask = sampler.finish(clocks[video.index].end_s)
    else:
        (frames, mask), wholes = _empty_frames(policy.max_frames), None
    samples = collector.finish(clocks[audio.index].end_s) if collector else None
    if not mask.any() and samples is None:
        raise MediaRejected(RejectCode.MEDIA_NO_STREAMS, "the media's tracks contain no decodable frames or samples")
    return DecodedMedia(
        frames=frames,
        frame_mask=mask,
        wholes=wholes,
        audio=samples,
        log_mel=log_mel_spectrogram(samples) if samples is not None else None,
        duration_s=_duration(container, clocks.values()),
    )


def _pick_streams(
    container: av.container.InputContainer, policy: MediaPolicy
) -> tuple[av.VideoStream | None, av.AudioStream | None]:
    video, audio = _main_stream(container.streams.video), _main_stream(container.streams.audio)
    if video is None and audio is None:
        if container.streams.video or container.streams.audio:
            raise MediaRejected(RejectCode.MEDIA_UNDECODABLE, "no decoder for the media's video or audio tracks")
        raise MediaRejected(RejectCode.MEDIA_NO_STREAMS, "media has neither a video nor an audio track")
    for stream in (video, audio):
        if stream is not None:
            codec = stream.codec_context.codec.canonical_name  # the codec (av1), not its decoder (libdav1d)
            if not policy.allows_codec(codec):
                raise MediaRejected(
                    RejectCode.MEDIA_UNDECODABLE,
                    f"{stream.type} codec {codec!r} is not allowed (RCI_MEDIA_ALLOWED_CODECS: "
                    f"{','.join(policy.allowed_codecs)})",
                )
            stream.codec_context.thread_count = 1  # determinism; the caller parallelises across files
            if stream.type == "video" and policy.skip_nonref_frames:
                stream.codec_context.skip_frame = "NONREF"  # frames nothing refers to: never needed to decode others
            stream.codec_context.options = {"max_pixels": str(policy.max_pixels)}  # FFmpeg refuses larger pictures
    return video, audio


def _demux(
    container: av.container.InputContainer,
    policy: MediaPolicy,
    consumers: dict[int, _FrameSampler | _AudioCollector],
    deadline: _Deadline,
) -> dict[int, _StreamClock]:
    """Read every packet of the chosen streams, timing each stream; decode only what a consumer still wants."""
    streams = [container.streams[index] for index in consumers]
    clocks = {stream.index: _StreamClock(stream) for stream in streams}
    for packet in container.demux(*streams):
        deadline.check()
        end_s = clocks[packet.stream.index].observe(packet)
        if end_s > policy.max_duration_s:
            raise MediaRejected(
                RejectCode.MEDIA_TOO_LONG, f"media runs past {end_s:.2f} s, limit {policy.max_duration_s} s"
            )
        consumer = consumers[packet.stream.index]
        if consumer.wants_more:
            for frame in packet.decode():
                consumer.add(frame)
    deadline.check()
    return clocks


def _main_stream(streams: tuple) -> av.stream.Stream | None:
    """The first decodable stream of the kind, ignoring cover art (attached pictures) in audio files."""
    usable = [
        s for s in streams if s.codec_context is not None and not s.disposition & av.stream.Disposition.attached_pic
    ]
    return usable[0] if usable else None


def _check_declared_duration(container: av.container.InputContainer, policy: MediaPolicy) -> None:
    declared = [container.duration / _AV_TIME_BASE] if container.duration else []
    declared += [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    longest = max(declared, default=0.0)
    if longest > policy.max_duration_s:
        raise MediaRejected(
            RejectCode.MEDIA_TOO_LONG, f"media declares {longest:.2f} s, limit {policy.max_duration_s} s"
        )


def _check_resolution(width: int, height: int, policy: MediaPolicy) -> None:
    if width * height > policy.max_pixels:
        raise MediaRejected(
            RejectCode.MEDIA_RESOLUTION_TOO_HIGH,
            f"video is {width}x{height} = {width * height} pixels, limit {policy.max_pixels}",
        )


def _duration(container: av.container.InputContainer, clocks: object) -> float:
    observed = max((clock.end_s for clock in clocks), default=0.0)
    if observed > 0:
        return observed
    return container.duration / _AV_TIME_BASE if container.duration else 0.0


def _empty_frames(max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    frames = np.zeros((max_frames, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)  # [M, 224, 224, 3]
    return frames, np.zeros(max_frames, dtype=bool)  # [M]


@cache
def _allowed_decoders(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """This FFmpeg build's decoders of the codecs `patterns` allow (sorted: the same options every time)."""
    codecs = decoders_by_codec()
    return tuple(sorted({name for codec, names in codecs.items() for name in names
                         if any(fnmatchcase(codec, p) for p in patterns)}))  # fmt: skip


class _Deadline:
    """The monotonic time a decode must end by, from when it starts (not from when it was queued)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._end = time.monotonic() + timeout_s

    @property
    def passed(self) -> bool:
        return time.monotonic() > self._end

    def check(self) -> None:
        if self.passed:
            raise MediaRejected(
                RejectCode.MEDIA_UNDECODABLE,
                f"decoding took longer than {self.timeout_s:g} s (RCI_MEDIA_DECODE_TIMEOUT_S)",
            )


class _DeadlineReader:
    """The file object FFmpeg reads through: past the deadline a read returns end-of-file, so FFmpeg stops.

    (Not an exception: PyAV keeps an exception raised in a read callback per thread and raises it
    from the next FFmpeg call on that thread, possibly another file's decode if FFmpeg shrugged the
    failed read off; `decode_media` checks the deadline itself after FFmpeg returns.)
    """

    def __init__(self, file: BinaryIO, deadline: _Deadline) -> None:
        self._file = file
        self._deadline = deadline
        self.name = str(getattr(file, "name", "media"))

    def read(self, size: int = -1) -> bytes:
        return b"" if self._deadline.passed else self._file.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True


class _StreamClock:
    """Seconds since the stream's start covered by the packets demuxed so far."""

    def __init__(self, stream: av.stream.Stream) -> None:
        self._time_base = stream.time_base or Fraction(1, _AV_TIME_BASE)
        self._origin = stream.start_time or 0
        self.end_s = 0.0

    def observe(self, packet: av.Packet) -> float:
        if packet.pts is not None:  # the flush packet at the end has no timestamp
            end = packet.pts + (packet.duration or 0) - self._origin
            self.end_s = max(self.end_s, float(end * self._time_base))
        return self.end_s


class _FrameSampler:
    """Keeps, for each whole second k, the decoded frame nearest to k (see the module docstring)."""

    def __init__(self, stream: av.VideoStream, policy: MediaPolicy) -> None:
        self._time_base = stream.time_base
        self._origin = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate
        self._frame_s = float(1 / rate) if rate else 0.0  # fallback spacing for frames without pts
        self._policy = policy
        self._next_second = 0
        self._previous: tuple[float, av.VideoFrame] | None = None
        self._last_end_s = 0.0
        self._rows: list[tuple[np.ndarray, np.ndarray]] = []  # (centre square, whole frame) per second
        self._whole_size: tuple[int, int] | None = None  # (width, height) of every whole frame: the first's
        self._converted: tuple[av.VideoFrame, tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def wants_more(self) -> bool:
        return self._next_second < self._policy.max_frames

    def add(self, frame: av.VideoFrame) -> None:
        _check_resolution(frame.width, frame.height, self._policy)  # streams may change size mid-way
        t = self._time(frame)
        while self.wants_more and t >= self._next_second:
            k = self._next_second
            earlier_is_nearer = self._previous is not None and k - self._previous[0] <= t - k
            self._rows.append(self._convert(self._previous[1] if earlier_is_nearer else frame))
            self._next_second += 1
        self._previous = (t, frame)
        shown_s = float(frame.duration * self._time_base) if frame.duration else self._frame_s
        self._last_end_s = max(self._last_end_s, t + shown_s)

    def finish(self, packets_end_s: float) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """-> frames [M, 224, 224, 3], wholes [M, h, w, 3] (None without frames), mask [M].

        Seconds after the last decoded frame but before the video ends show that last frame."""
        end_s = max(packets_end_s, self._last_end_s)
        while self.wants_more and self._previous is not None and self._next_second < end_s:
            self._rows.append(self._convert(self._previous[1]))
            self._next_second += 1
        frames, mask = _empty_frames(self._policy.max_frames)
        if not self._rows:
            return frames, None, mask
        frames[: len(self._rows)] = np.stack([square for square, _ in self._rows])
        mask[: len(self._rows)] = True
        first = self._rows[0][1]
        wholes = np.zeros((self._policy.max_frames, *first.shape), dtype=np.uint8)  # [M, h, w, 3]
        wholes[: len(self._rows)] = np.stack([whole for _, whole in self._rows])
        return frames, wholes, mask

    def _time(self, frame: av.VideoFrame) -> float:
        if frame.pts is None:
            return (self._previous[0] + self._frame_s) if self._previous else 0.0
        return float((frame.pts - self._origin) * self._time_base)

    def _convert(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray]:
        # A frame kept for several seconds (slideshows, frozen pictures) is converted once.
        if self._converted is None or self._converted[0] is not frame:
            rgb = frame.to_ndarray(format="rgb24")  # [H, W, 3]
            self._whole_size = self._whole_size or whole_size(rgb.shape[1], rgb.shape[0])
            self._converted = (frame, (square_rgb(rgb), _scaled(rgb, *self._whole_size)))
        return self._converted[1]


def square_rgb(rgb: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """[H, W, 3] -> [size, size, 3] uint8 RGB: the centred square of side min(H, W), scaled to size."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return _scaled(np.ascontiguousarray(rgb[top : top + side, left : left + side]), size, size)


def whole_size(width: int, height: int, longer: int = WHOLE_SIZE) -> tuple[int, int]:
    """(width, height) of a whole frame scaled so its longer side is `longer`, the shorter a multiple of 8."""
    scale = longer / max(width, height)
    shorter = max(8, int(round(min(width, height) * scale / 8)) * 8)
    return (longer, shorter) if width >= height else (shorter, longer)


def _scaled(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """[H, W, 3] uint8 -> [height, width, 3] (area interpolation; unchanged when already that size)."""
    if rgb.shape[:2] == (height, width):
        return rgb
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()


class _AudioCollector:
    """Resamples decoded audio to 16 kHz mono float32 until 30 s (Whisper's window) are held."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self._chunks: list[np.ndarray] = []
        self._count = 0

    @property
    def wants_more(self) -> bool:
        return self._count < N_SAMPLES

    def add(self, frame: av.AudioFrame) -> None:
        self._take(frame)

    def finish(self, track_end_s: float) -> np.ndarray | None:
        """[S] float32 in [-1, 1], S <= 480 000; None when the track held no samples.

        The decoder's output is cut at the track's end as the container times it (`track_end_s`,
        when known): codecs such as AAC decode whole frames and would otherwise append up to
        one frame of padding.
        """
        self._take(None)  # flush the resampler's buffered tail
        if self._count == 0:
            return None
        keep = min(N_SAMPLES, round(track_end_s * SAMPLE_RATE)) if track_end_s > 0 else N_SAMPLES
        samples = np.concatenate(self._chunks)[:keep]
        return np.clip(samples, -1.0, 1.0).astype(np.float32)

    def _take(self, frame: av.AudioFrame | None) -> None:
        try:
            resampled = self._resampler.resample(frame)
        except ValueError as exc:  # e.g. the sample rate or layout changes mid-stream
            raise MediaRejected(RejectCode.MEDIA_UNDECODABLE, f"audio cannot be resampled: {exc}") from exc
        for out in resampled:
            chunk = out.to_ndarray().reshape(-1)  # packed mono flt: [1, n] -> [n]
            self._chunks.append(chunk)
            self._count += len(chunk)


__all__ = ["DEMUXERS", "MediaSource", "decode_media", "square_rgb"]
