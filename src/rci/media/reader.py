"""Fetch a media URI under the policy and decode it off the event loop: what the worker's features
path and the shadow consumer both need before their models run."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from rci.media.decode import decode_media
from rci.media.decoded import DecodedMedia
from rci.media.fetch import fetch_media
from rci.media.policy import MediaPolicy
from rci.storage.s3 import S3Client


class MediaReader:
    """Fetch (allow-list, size limits) on the loop, decode in `executor` (PyAV releases the GIL while it decodes)."""

    def __init__(self, policy: MediaPolicy, s3: S3Client | None = None, executor: Executor | None = None) -> None:
        self.policy = policy
        self.s3 = s3
        self._executor = executor  # None: the event loop's default executor

    async def decode(self, media_uri: str) -> DecodedMedia:
        """Raises MediaRejected for media the event is to blame for, TransientError for infrastructure."""
        source = await fetch_media(media_uri, self.policy, self.s3)
        return await asyncio.get_running_loop().run_in_executor(self._executor, decode_media, source, self.policy)
