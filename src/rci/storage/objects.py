"""Object storage behind one small async interface: a local directory (default) or S3.

Keys are `/`-separated relative names (`features/<encoder_version>/<video_id>.<16 hex>.npz`). Both
backends accept exactly the same keys (`validate_key`), so nothing written to one can be
unreadable from the other, and no key can name a file outside a local store's root.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path
from typing import Protocol, runtime_checkable

from rci.core.settings import Settings
from rci.storage.errors import InvalidObjectKey, ObjectNotFound, StorageUnavailable
from rci.storage.s3 import S3Client, S3Config, s3_config, s3_errors

MAX_KEY_LENGTH = 1024  # S3's limit
MAX_SEGMENT_LENGTH = 255  # a file name on common filesystems
# The characters of video ids (CONTRACT.md) plus `/` between segments and `=`/`+`; never `~`,
# which marks a local store's temporary files, so a key can never name one.
_SEGMENT = re.compile(r"[A-Za-z0-9._:=+-]+")


@runtime_checkable
class ObjectStore(Protocol):
    """Bytes by key. Writes are atomic: a reader sees the whole old or the whole new object."""

    async def get(self, key: str) -> bytes:
        """The object's bytes; raises ObjectNotFound."""
        ...

    async def put(self, key: str, data: bytes) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    async def list_keys(self, prefix: str, delimiter: str | None = None) -> list[str]:
        """Keys starting with `prefix` (a string prefix, not only a folder), sorted. With `delimiter`
        ("/"), keys that go on past a further "/" are rolled up into that folder, ending in "/" (S3's
        common prefixes): a listing of what a folder holds, one level deep."""
        ...

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative object name, else raise InvalidObjectKey."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidObjectKey(f"object key must be 1-{MAX_KEY_LENGTH} characters: {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", "..") or len(segment) > MAX_SEGMENT_LENGTH or not _SEGMENT.fullmatch(segment):
            raise InvalidObjectKey(f"object key {key!r} has an empty, relative or invalid segment {segment!r}")
    return key


class LocalObjectStore:
    """Objects as files under `root`; writes go to a temporary file in the same folder, then rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path_for(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        # Keys cannot climb out lexically; a symlink planted inside the root must not either.
        if not path.resolve().is_relative_to(self.root):
            raise InvalidObjectKey(f"object key {key!r} resolves outside the store")
        return path

    async def get(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}: {exc}") from exc

    async def put(self, key: str, data: bytes) -> None:
        path = self.path_for(key)
        try:
            await asyncio.to_thread(_write_atomically, path, data)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {path}: {exc}") from exc

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_for(key).is_file)

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {path}: {exc}") from exc

    async def list_keys(self, prefix: str, delimiter: str | None = None) -> list[str]:
        if delimiter not in (None, "/"):
            raise ValueError(f"only '/' delimits a local store's keys, not {delimiter!r}")
        folder, _, start = prefix.rpartition("/")
        base = self.path_for(folder) if folder else self.root
        try:
            return sorted(await asyncio.to_thread(self._list, base, folder, start, delimiter is not None))
        except OSError as exc:
            raise StorageUnavailable(f"cannot list {base}: {exc}") from exc

    @staticmethod
    def _list(base: Path, folder: str, start: str, rolled_up: bool) -> list[str]:
        if not base.is_dir():
            return []
        found = []
        for entry in os.scandir(base):
            if not entry.name.startswith(start) or not _SEGMENT.fullmatch(entry.name):
                continue  # `~` temporaries of a write in progress are never keys
            key = f"{folder}/{entry.name}" if folder else entry.name
            if entry.is_dir(follow_symlinks=False):
                if rolled_up:
                    found.append(key + "/")
                else:
                    found += [f"{key}/{p.relative_to(entry.path).as_posix()}" for p in Path(entry.path).rglob("*")
                              if p.is_file() and all(_SEGMENT.fullmatch(s) for s in p.relative_to(entry.path).parts)]
            elif entry.is_file(follow_symlinks=False):
                found.append(key)
        return found

    async def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}~{secrets.token_hex(8)}")  # `~`: never a valid key
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class S3ObjectStore:
    """Objects in one S3 bucket through a single reused aiobotocore client."""

    def __init__(
        self,
        endpoint_url: str | None,
        bucket: str,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        connect_timeout_s: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        self.bucket = bucket
        self.s3 = S3Client(
            S3Config(
                endpoint_url, region, access_key, secret_key,
                connect_timeout_s=connect_timeout_s, max_attempts=max_attempts,
            )
        )

    async def get(self, key: str) -> bytes:
        client = await self._client_for(key)
        with s3_errors(self._uri(key)):
            response = await client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                return await body.read()

    async def put(self, key: str, data: bytes) -> None:
        client = await self._client_for(key)
        with s3_errors(self._uri(key)):
            await client.put_object(Bucket=self.bucket, Key=key, Body=data)

    async def exists(self, key: str) -> bool:
        client = await self._client_for(key)
        try:
            with s3_errors(self._uri(key)):
                await client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        client = await self._client_for(key)
        with s3_errors(self._uri(key)):
            await client.delete_object(Bucket=self.bucket, Key=key)

    async def list_keys(self, prefix: str, delimiter: str | None = None) -> list[str]:
        client = await self.s3.client()
        found: list[str] = []
        extra = {"Delimiter": delimiter} if delimiter else {}
        with s3_errors(self._uri(prefix)):
            async for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, **extra):
                found += [item["Key"] for item in page.get("Contents", [])]
                found += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
        return sorted(found)

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (service start-up, tests)."""
        client = await self.s3.client()
        try:
            with s3_errors(f"s3://{self.bucket}"):
                await client.head_bucket(Bucket=self.bucket)
            return
        except ObjectNotFound:
            pass
        region = self.s3.config.region
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        with s3_errors(f"s3://{self.bucket}"):
            try:
                await client.create_bucket(Bucket=self.bucket, **location)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass  # created concurrently by another process: fine

    async def close(self) -> None:
        await self.s3.close()

    async def _client_for(self, key: str):
        validate_key(key)  # before any connection is opened
        return await self.s3.client()

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, endpoint={self.s3.config.endpoint_url!r})"


def make_object_store(settings: Settings) -> ObjectStore:
    """The store `RCI_OBJECT_STORE` selects: `local` (under RCI_OBJECT_STORE_DIR) or `s3`."""
    if settings.object_store == "s3":
        cfg = s3_config(settings)
        return S3ObjectStore(cfg.endpoint_url, settings.s3_bucket, cfg.region, cfg.access_key, cfg.secret_key)
    return LocalObjectStore(settings.resolved_object_store_dir)


__all__ = [
    "LocalObjectStore",
    "ObjectStore",
    "S3ObjectStore",
    "make_object_store",
    "validate_key",
]
