"""One reusable aiobotocore S3 client, and the translation of its failures into typed errors.

Shared by `rci.storage.objects.S3ObjectStore` (the feature cache) and `rci.media.fetch` (s3:// media),
so a process opens one connection pool per endpoint and maps S3 failures the same way everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from rci.core.settings import Settings
from rci.storage.errors import ObjectNotFound, StorageUnavailable

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None  # None = AWS itself
    region: str = "us-east-1"
    access_key: str | None = None  # None = botocore's default credential chain
    secret_key: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_attempts: int = 3  # botocore's own retries (standard mode) before StorageUnavailable


def s3_config(settings: Settings) -> S3Config:
    """The S3 endpoint and credentials configured by `RCI_S3_*`."""
    secret = settings.s3_secret_access_key
    access = settings.s3_access_key_id
    return S3Config(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key=access.get_secret_value() if access else None,
        secret_key=secret.get_secret_value() if secret else None,
    )


class S3Client:
    """Opens one aiobotocore client on first use and reuses it until `close()`.

    Use it inside the event loop that will call it (aiobotocore clients belong to one loop).
    """

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._stack: AsyncExitStack | None = None
        self._client = None
        self._lock = asyncio.Lock()

    async def client(self):  # -> aiobotocore S3 client
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._open()
        return self._client

    async def _open(self):
        cfg = self.config
        stack = AsyncExitStack()
        session = get_session()
        client = await stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=cfg.endpoint_url,
                region_name=cfg.region,
                aws_access_key_id=cfg.access_key,
                aws_secret_access_key=cfg.secret_key,
                config=AioConfig(
                    connect_timeout=cfg.connect_timeout_s,
                    read_timeout=cfg.read_timeout_s,
                    retries={"max_attempts": cfg.max_attempts, "mode": "standard"},
                    s3={"addressing_style": "path"},  # works with any S3-compatible endpoint
                ),
            )
        )
        self._stack = stack
        return client

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    async def __aenter__(self) -> S3Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def is_not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or error.get("Code") in _NOT_FOUND_CODES


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Translate S3 failures while doing `what`: 404 -> ObjectNotFound, the rest -> StorageUnavailable.

    Anything but "not found" (5xx, throttling, refused credentials, unreachable endpoint,
    timeouts) is the infrastructure's fault, so it is retried rather than blamed on the event.
    """
    try:
        yield
    except ClientError as exc:
        if is_not_found(exc):
            raise ObjectNotFound(what) from exc
        code = exc.response.get("Error", {}).get("Code", "?")
        raise StorageUnavailable(f"S3 failed on {what}: {code}") from exc
    except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise StorageUnavailable(f"S3 unreachable on {what}: {exc}") from exc
