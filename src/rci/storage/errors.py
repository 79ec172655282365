"""Typed object-store errors.

`ObjectNotFound` and `InvalidObjectKey` are answers about one key; `StorageUnavailable` is the
store itself failing (unreachable, 5xx, refused credentials, disk full) and derives from
`TransientError`, so the worker retries it instead of dead-lettering the event.
`StorageConfigError` is what the start-up check (`rci.storage.s3.check_bucket`) finds wrong with the
settings themselves (no credentials, an unknown key or bucket): a `ConfigError`, never retried.
"""

from __future__ import annotations

from rci.core.errors import ConfigError, RCIError, TransientError


class StorageError(RCIError):
    """Root of the object-store errors that are not transient."""


class ObjectNotFound(StorageError):
    """No object under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object {key!r}")
        self.key = key


class InvalidObjectKey(StorageError, ValueError):
    """The key could name something outside the store (`..`, absolute, odd characters)."""


class StorageUnavailable(TransientError):
    """The object store cannot be reached or failed; worth retrying."""


class StorageConfigError(ConfigError):
    """The object-store settings cannot work (no credentials, unknown access key, no such bucket);
    the message names the RCI_S3_* setting to fix."""
