"""Per-record storage faults dead-letter the event; only the storage failing is retried (issue 15)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from rci.core.errors import RejectCode
from rci.media.errors import MediaRejected
from rci.media.fetch import fetch_media
from rci.media.policy import MediaPolicy
from rci.storage.errors import StorageUnavailable
from rci.storage.s3 import S3Client, S3Config


async def rejected(uri: str, policy: MediaPolicy, s3: S3Client | None = None) -> MediaRejected:
    with pytest.raises(MediaRejected) as caught:
        await fetch_media(uri, policy, s3)
    return caught.value


# --- local files ---------------------------------------------------------------------------


async def test_name_too_long_is_not_found_not_an_outage(media_root: Path, policy: MediaPolicy) -> None:
    error = await rejected(f"{media_root.as_uri()}/{'a' * 300}.mp4", policy)  # stat: ENAMETOOLONG
    assert error.code == RejectCode.MEDIA_NOT_FOUND
    assert "too long" in error.detail


async def test_symlink_loop_is_not_found_not_an_outage(media_root: Path, policy: MediaPolicy) -> None:
    (media_root / "a.mp4").symlink_to(media_root / "b.mp4")
    (media_root / "b.mp4").symlink_to(media_root / "a.mp4")
    (media_root / "self.mp4").symlink_to(media_root / "self.mp4")
    for name in ("a.mp4", "self.mp4"):
        error = await rejected(f"{media_root.as_uri()}/{name}", policy)  # stat: ELOOP
        assert error.code == RejectCode.MEDIA_NOT_FOUND
        assert "symbolic links" in error.detail


async def test_file_used_as_a_folder_is_not_found(media_root: Path, policy: MediaPolicy) -> None:
    (media_root / "plain").write_bytes(b"x")
    assert (await rejected(f"{media_root.as_uri()}/plain/x.mp4", policy)).code == RejectCode.MEDIA_NOT_FOUND


async def test_folder_and_fifo_are_refused_without_opening(
    media_root: Path, policy: MediaPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    (media_root / "dir.mp4").mkdir()
    os.mkfifo(media_root / "pipe.mp4")
    real_open = os.open

    def no_blocking_open(path, flags, *args, **kwargs):
        assert not str(path).endswith("pipe.mp4") or flags & os.O_NONBLOCK, "FIFO opened in blocking mode"
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_blocking_open)
    folder = await rejected(f"{media_root.as_uri()}/dir.mp4", policy)
    assert folder.code == RejectCode.MEDIA_NOT_ALLOWED and folder.detail.endswith("is a folder")
    fifo = await rejected(f"{media_root.as_uri()}/pipe.mp4", policy)
    assert fifo.code == RejectCode.MEDIA_NOT_ALLOWED and "regular file" in fifo.detail


@pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN, errno.EBUSY])
async def test_filesystem_failing_stays_transient(
    media_root: Path, policy: MediaPolicy, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    clip = media_root / "clip.mp4"
    clip.write_bytes(b"not read")
    real_stat, target = os.stat, str(clip.resolve())

    def failing_stat(path, *args, **kwargs):
        if os.fspath(path) == target:
            raise OSError(code, os.strerror(code), str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", failing_stat)
    with pytest.raises(StorageUnavailable):
        await fetch_media(clip.as_uri(), policy)


# --- S3: a stub client that answers like S3 would, so no server is needed -------------------

BUCKET = "media-in"
S3_POLICY = MediaPolicy(allowed_prefixes=(f"s3://{BUCKET}/videos/",))


class _AnsweringClient:
    def __init__(self, error: ClientError) -> None:
        self.error = error
        self.calls = 0

    async def get_object(self, **_: object) -> dict:
        self.calls += 1
        raise self.error


class _StubS3(S3Client):
    def __init__(self, error: ClientError) -> None:
        super().__init__(S3Config(endpoint_url="http://127.0.0.1:1"))
        self._client = _AnsweringClient(error)


def answer(code: str, status: int) -> _StubS3:
    error = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return _StubS3(ClientError(error, "GetObject"))


@pytest.mark.parametrize(
    ("s3_code", "status", "reject"),
    [("KeyTooLongError", 400, RejectCode.MEDIA_NOT_FOUND), ("InvalidArgument", 400, RejectCode.MEDIA_NOT_FOUND),
     ("InvalidObjectState", 403, RejectCode.MEDIA_NOT_FOUND), ("AccessDenied", 403, RejectCode.MEDIA_NOT_ALLOWED)],
)
async def test_s3_per_key_refusal_is_the_events_fault(s3_code: str, status: int, reject: RejectCode) -> None:
    error = await rejected(f"s3://{BUCKET}/videos/{'k' * 20}.mp4", S3_POLICY, answer(s3_code, status))
    assert error.code == reject
    assert s3_code in error.detail


@pytest.mark.parametrize(("s3_code", "status"), [("InternalError", 500), ("SlowDown", 503), ("ExpiredToken", 400)])
async def test_s3_store_failures_stay_transient(s3_code: str, status: int) -> None:
    with pytest.raises(StorageUnavailable):
        await fetch_media(f"s3://{BUCKET}/videos/x.mp4", S3_POLICY, answer(s3_code, status))
