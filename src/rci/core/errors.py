"""The project's exception tree.

Every error raised on purpose derives from `RCIError`. What the streaming worker does
with an error depends only on which branch it is on:

* `RejectedEvent`: the event's own fault (bad JSON, bad schema, disallowed or broken
  media). It goes to the dead-letter topic with its machine-readable `code` and the
  worker carries on.
* `TransientError`: the infrastructure's fault (broker, Milvus, object store down). It is
  retried with backoff and never dead-lettered.
* anything else (`ConfigError`, `ModelError`, bugs): stop loudly at start-up. Raised while the
  worker scores a batch, it is isolated to the record that raises it (rci.streams.isolation), which
  after a bounded number of tries is dead-lettered as `internal_error`.
"""

from __future__ import annotations

from enum import StrEnum


class RejectCode(StrEnum):
    """Machine-readable reasons carried by `video.published.dlq` records in `error`."""

    INVALID_JSON = "invalid_json"  # value is not UTF-8 JSON, or not a JSON object
    INVALID_KEY = "invalid_key"  # key missing or not the event's video_id
    SCHEMA_VIOLATION = "schema_violation"  # JSON object that breaks CONTRACT.md field rules
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    MEDIA_SCHEME_NOT_ALLOWED = "media_scheme_not_allowed"  # http://, ftp://, ...
    MEDIA_NOT_ALLOWED = "media_not_allowed"  # outside the allowed prefixes / bucket, or escapes via .. or symlink
    MEDIA_NOT_FOUND = "media_not_found"
    MEDIA_EMPTY = "media_empty"  # zero bytes
    MEDIA_TOO_LARGE = "media_too_large"  # over RCI_MEDIA_MAX_BYTES
    MEDIA_TOO_LONG = "media_too_long"  # over RCI_MEDIA_MAX_DURATION_S
    MEDIA_RESOLUTION_TOO_HIGH = "media_resolution_too_high"  # over RCI_MEDIA_MAX_PIXELS
    MEDIA_UNDECODABLE = "media_undecodable"  # not a container FFmpeg can read, truncated, corrupt; a codec not
    # in RCI_MEDIA_ALLOWED_CODECS; a decode over RCI_MEDIA_DECODE_TIMEOUT_S
    MEDIA_NO_STREAMS = "media_no_streams"  # neither a video nor an audio track
    # Not the event's fault as far as anyone knows: its processing raised something unexpected (a bug)
    # RCI_POISON_MAX_ATTEMPTS times on its own; detail names the exception (rci.streams.isolation).
    INTERNAL_ERROR = "internal_error"


class RCIError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(RCIError):
    """Settings are missing or invalid; raised at start-up, names the variable."""


class ModelError(RCIError):
    """A model or checkpoint cannot be loaded or does not match its configuration."""


class RejectedEvent(RCIError):
    """The event cannot be scored through its own fault: it belongs on the dead-letter topic."""

    def __init__(self, code: RejectCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail

    def __reduce__(self) -> tuple:
        # Rebuild from (code, detail) so rejections cross process pools intact.
        return (type(self), (self.code, self.detail))


class TransientError(RCIError):
    """An infrastructure failure that is worth retrying (never dead-lettered)."""
