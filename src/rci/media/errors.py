"""Typed media errors: every refusal of a media file is a `MediaRejected` with its RejectCode."""

from __future__ import annotations

from rci.core.errors import RejectCode, RejectedEvent


class MediaRejected(RejectedEvent):
    """The event's media cannot be used (disallowed, missing, over a limit, undecodable).

    The event's own fault, so it goes to the dead-letter topic with `code`; infrastructure
    failures while fetching (object store down) are `rci.storage.errors.StorageUnavailable` instead.
    """

    def __init__(self, code: RejectCode, detail: str) -> None:
        if not code.name.startswith("MEDIA_"):
            raise ValueError(f"{code} is not a media reject code")
        super().__init__(code, detail)

    def __reduce__(self) -> tuple:
        # Rebuilt from (code, detail), so a rejection raised in a process pool's worker survives pickling.
        return (type(self), (self.code, self.detail))
