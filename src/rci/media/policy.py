"""What media the service accepts: where it may come from and how big it may be."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cache

import av

from rci.core.errors import ConfigError
from rci.core.settings import Settings

# What real uploads use; RCI_MEDIA_ALLOWED_CODECS replaces it.
DEFAULT_CODECS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "aac", "mp3", "opus", "vorbis", "flac", "pcm_*")


@dataclass(frozen=True)
class MediaPolicy:
    """Limits applied while fetching (`rci.media.fetch`) and decoding (`rci.media.decode`).

    `allowed_prefixes` are `file:///dir/` or `s3://bucket/dir/` URIs and always name folders:
    `file:///srv/media` admits `/srv/media/a.mp4` but not `/srv/media-private/a.mp4`.
    """

    allowed_prefixes: tuple[str, ...]
    max_bytes: int = 512 * 1024 * 1024
    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160 - 1  # width * height; 4K is refused by default
    max_frames: int = 32  # frames kept at 1 fps; later seconds are not sampled
    # Resource bounds (docs/reliability.md, "Resource bounds"): media fetched and decoded at once by one
    # MediaReader, bytes of fetched S3 bodies it holds at once, the longest decode of one file, and
    # the codecs (FFmpeg codec names, fnmatch wildcards) the chosen video and audio tracks may use.
    fetch_concurrency: int = 4
    max_bytes_in_flight: int = 1024 * 1024 * 1024
    decode_timeout_s: float = 120.0
    allowed_codecs: tuple[str, ...] = DEFAULT_CODECS
    # Skip decoding the video frames no other frame references (FFmpeg's skip_frame=NONREF): 35-40% less
    # decode CPU on an H.264 upload with B-frames (benchmarks.bench_uploads); a kept second may then be
    # the frame one or two frames (33-66 ms at 30 fps) from the one nearest the second, which no
    # descriptor of a second's content tells apart (bench_quality with it on: RESULTS.md).
    skip_nonref_frames: bool = True

    def __post_init__(self) -> None:
        limits = (self.max_bytes, self.max_duration_s, self.max_pixels, self.max_frames, self.fetch_concurrency,
                  self.max_bytes_in_flight, self.decode_timeout_s)  # fmt: skip
        if any(limit <= 0 for limit in limits) or not self.allowed_codecs:
            raise ValueError(f"media limits must be positive: {self}")

    def allows_codec(self, codec: str) -> bool:
        """Whether a track in the FFmpeg codec `codec` (a codec id's name: h264, pcm_s16le) may be decoded."""
        return any(fnmatch.fnmatchcase(codec, pattern) for pattern in self.allowed_codecs)

    def admitting(self, prefixes: Iterable[str]) -> MediaPolicy:
        """This policy with more allowed prefixes: folders an operator named (a media folder given to
        `rci features extract`, a training corpus), on top of the configured ones."""
        return replace(self, allowed_prefixes=(*self.allowed_prefixes, *prefixes))


def media_policy(settings: Settings) -> MediaPolicy:
    """The policy configured by `RCI_MEDIA_*` settings; ConfigError for a codec FFmpeg has no decoder for."""
    known = decoders_by_codec()
    unknown = [pattern for pattern in settings.media_allowed_codecs if not fnmatch.filter(known, pattern)]
    if unknown:
        raise ConfigError(f"RCI_MEDIA_ALLOWED_CODECS: FFmpeg has no decoder for {', '.join(unknown)}")
    return MediaPolicy(
        allowed_prefixes=settings.resolved_media_prefixes,
        max_bytes=settings.media_max_bytes,
        max_duration_s=settings.media_max_duration_s,
        max_pixels=settings.media_max_pixels,
        max_frames=settings.media_max_frames,
        fetch_concurrency=settings.media_fetch_concurrency,
        max_bytes_in_flight=settings.media_max_bytes_in_flight,
        decode_timeout_s=settings.media_decode_timeout_s,
        allowed_codecs=settings.media_allowed_codecs,
        skip_nonref_frames=settings.media_skip_nonref_frames,
    )


@cache
def decoders_by_codec() -> dict[str, frozenset[str]]:
    """FFmpeg codec name (h264, av1, pcm_s16le) -> the names of this FFmpeg build's decoders for it
    (av1: libdav1d, av1, ...): what `codec_whitelist` needs to confine FFmpeg's own probing to them."""
    found: dict[str, set[str]] = {}
    for name in av.codecs_available:
        try:
            decoder = av.Codec(name, "r")
        except (av.FFmpegError, ValueError):  # an encoder-only name
            continue
        found.setdefault(decoder.canonical_name, set()).add(decoder.name)
    return {codec: frozenset(names) for codec, names in found.items()}
