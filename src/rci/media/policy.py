"""What media the service accepts: where it may come from and how big it may be."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from rci.core.settings import Settings


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

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_duration_s <= 0 or self.max_pixels < 1 or self.max_frames < 1:
            raise ValueError(f"media limits must be positive: {self}")

    def admitting(self, prefixes: Iterable[str]) -> MediaPolicy:
        """This policy with more allowed prefixes: folders an operator named (a media folder given to
        `rci features extract`, a training corpus), on top of the configured ones."""
        return replace(self, allowed_prefixes=(*self.allowed_prefixes, *prefixes))


def media_policy(settings: Settings) -> MediaPolicy:
    """The policy configured by `RCI_MEDIA_*` settings."""
    return MediaPolicy(
        allowed_prefixes=settings.resolved_media_prefixes,
        max_bytes=settings.media_max_bytes,
        max_duration_s=settings.media_max_duration_s,
        max_pixels=settings.media_max_pixels,
        max_frames=settings.media_max_frames,
    )
