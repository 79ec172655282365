"""Fetch the media an event points at, refusing anything outside the allow-list before any I/O.

Two steps, so that the decision about a URI never depends on what is on disk or in a bucket:

1. `parse_media_uri` (pure): scheme must be `file` or `s3` and used by an allowed prefix
   (else MEDIA_SCHEME_NOT_ALLOWED); no host, query or fragment; no `.` / `..` segments;
   the path or bucket/key must lie in an allowed prefix folder (else MEDIA_NOT_ALLOWED).
2. `fetch_media`: for file://, resolve the real path (symlinks) and check it is still inside
   the real prefix folder, that it is a regular file, then its size; for s3://, GET the object
   and check its ContentLength before the body is read.

Local files are returned as their resolved `Path` (decoded in place, no copy; the decoder opens it
once by descriptor and checks that descriptor again, `rci.media.localfile`); S3 objects as `bytes`
(PyAV reads them from memory; `max_bytes` bounds one, `rci.media.reader` all those in flight).
Either is a `rci.media.decode.MediaSource`.

Failures are split by whose fault they are, because a TransientError is retried without limit:
an error about this one path or key (missing, name too long, symlink loop, not a regular file,
permission denied; S3 404, a malformed key, AccessDenied, an archived object) is the event's
fault and a MediaRejected (dead-lettered); only the storage itself failing (EIO, stale NFS
handle, timeouts; S3 unreachable, 5xx, throttled, credentials refused) is `StorageUnavailable`.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from rci.media.decode import MediaSource
from rci.media.errors import MediaRejected
from rci.media.localfile import check_size, local_error
from rci.media.policy import MediaPolicy
from rci.core.errors import ConfigError, RejectCode
from rci.core.logs import get_logger
from rci.storage.errors import ObjectNotFound
from rci.storage.s3 import ObjectRefused, S3Client, s3_errors

log = get_logger(__name__)

SCHEMES = ("file", "s3")
Reserve = Callable[[int], Awaitable[None]]
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class LocalMedia:
    path: PurePosixPath  # absolute, no `.`/`..` segments, inside `root`
    root: PurePosixPath  # the allowed prefix folder it lies in


@dataclass(frozen=True)
class S3Media:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


async def fetch_media(
    uri: str, policy: MediaPolicy, s3: S3Client | None = None, *, reserve: Reserve | None = None
) -> MediaSource:
    """The media behind `uri`: a resolved local Path or an S3 object's bytes.

    `reserve(size)` is awaited with an S3 object's size after its headers and before its body is
    read (rci.media.reader holds the bytes in flight to a budget with it); local files are not read here.

    Raises MediaRejected (disallowed, missing, unreadable, empty, too large), StorageUnavailable
    (the filesystem or S3 failing),
    ConfigError when an s3:// prefix is allowed but no S3 client was given.
    """
    target = parse_media_uri(uri, policy)
    if isinstance(target, LocalMedia):
        return await asyncio.to_thread(_check_local_file, target, policy)
    if s3 is None:
        raise ConfigError(f"media prefix allows {target.uri} but no S3 endpoint is configured")
    return await _fetch_s3(target, policy, s3, reserve)


def parse_media_uri(uri: str, policy: MediaPolicy) -> LocalMedia | S3Media:
    """Check `uri` against the policy's prefixes without touching any file or bucket."""
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"unparseable media URI {uri!r}") from exc
    scheme = parts.scheme.lower()
    prefixes = [urlsplit(p) for p in policy.allowed_prefixes if urlsplit(p).scheme.lower() == scheme]
    if scheme not in SCHEMES or not prefixes:
        raise MediaRejected(RejectCode.MEDIA_SCHEME_NOT_ALLOWED, f"media scheme {scheme or 'none'!r} is not allowed")
    if parts.query or parts.fragment:
        raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"media URI may not carry a query or fragment: {uri!r}")
    if scheme == "file":
        return _parse_file(parts, prefixes, uri)
    return _parse_s3(parts, prefixes, uri)


def _parse_file(parts, prefixes: list, uri: str) -> LocalMedia:
    if parts.netloc:  # not even `localhost`: the contract's form is file:///absolute/path
        raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"file URI names a host: {uri!r}")
    raw = unquote(parts.path)  # %2e%2e decodes to `..` here, before the segment check
    _reject_relative_segments(raw, uri)
    path = PurePosixPath(raw)
    if not path.is_absolute():
        raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"file URI path is not absolute: {uri!r}")
    for prefix in prefixes:
        root = PurePosixPath(os.path.normpath(unquote(prefix.path)))
        if path.is_relative_to(root) and path != root:
            return LocalMedia(path=path, root=root)
    raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"{uri!r} is outside the allowed media prefixes")


def _parse_s3(parts, prefixes: list, uri: str) -> S3Media:
    bucket, key = parts.netloc, parts.path.removeprefix("/")
    if not _BUCKET.fullmatch(bucket) or not key:
        raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"malformed s3 URI {uri!r}")
    _reject_relative_segments(key, uri)  # some S3-compatible servers normalise `..` in paths
    for prefix in prefixes:
        folder = prefix.path.removeprefix("/")
        folder = folder if not folder or folder.endswith("/") else folder + "/"
        if prefix.netloc == bucket and key.startswith(folder):
            return S3Media(bucket=bucket, key=key)
    raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"{uri!r} is outside the allowed media prefixes")


def _reject_relative_segments(path: str, uri: str) -> None:
    if "\x00" in path or any(segment in (".", "..") for segment in path.split("/")):
        raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"media URI has `.`/`..` segments or NUL: {uri!r}")


def _check_local_file(target: LocalMedia, policy: MediaPolicy) -> Path:
    real = Path(os.path.realpath(target.path))  # non-strict: a loop or a long name fails in stat below
    if not real.is_relative_to(os.path.realpath(target.root)):
        raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"{target.path} resolves outside its prefix (symlink)")
    try:
        # stat, never open() here: the decoder opens the file once, by descriptor and without blocking,
        # and checks that descriptor again (rci.media.localfile), so what is checked is what is decoded.
        info = os.stat(real)
    except OSError as exc:
        raise local_error(exc, target.path) from exc
    if not stat.S_ISREG(info.st_mode):  # a folder, FIFO, socket or device: never handed to the decoder
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"{target.path} is {kind}")
    check_size(info.st_size, policy, str(target.path))
    return real


async def _fetch_s3(target: S3Media, policy: MediaPolicy, s3: S3Client, reserve: Reserve | None) -> bytes:
    # One GET; ContentLength is checked from the response headers before the body is read,
    # which also rules out the object changing between a HEAD and the GET.
    client = await s3.client()
    try:
        with s3_errors(target.uri):
            response = await client.get_object(Bucket=target.bucket, Key=target.key)
            async with response["Body"] as body:
                check_size(response["ContentLength"], policy, target.uri)
                if reserve is not None:
                    await reserve(response["ContentLength"])
                data = await body.read()
    except ObjectRefused as exc:  # the same answer on every retry: the event's fault
        code = RejectCode.MEDIA_NOT_ALLOWED if exc.code == "AccessDenied" else RejectCode.MEDIA_NOT_FOUND
        raise MediaRejected(code, f"S3 refused {target.uri}: {exc.code}") from exc
    except ObjectNotFound as exc:
        raise MediaRejected(RejectCode.MEDIA_NOT_FOUND, f"no object at {target.uri}") from exc
    log.debug("media fetched", uri=target.uri, bytes=len(data))
    return data
