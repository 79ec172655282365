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
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from rci.core.settings import Settings
from rci.core.redact import redact_uri
from rci.storage.errors import ObjectNotFound, StorageConfigError, StorageUnavailable

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
# Answers about one key that no retry can change, so retrying them would stall the record forever:
# the key cannot name an object (400), this key may not be read (403 AccessDenied, which is also
# what S3 answers for a missing key when the caller may not list the bucket), or the object is
# archived and needs a restore first. Matched by error code, never by bare status: other 400s and
# 403s (RequestTimeout, ExpiredToken, SignatureDoesNotMatch, RequestTimeTooSkewed) are about the
# request or the credentials, not the key, and stay retried. A HEAD answer carries no code, only
# "400"/"403", so it cannot be told apart and stays retried too.
_REFUSED_CODES = frozenset({
    "KeyTooLongError", "InvalidArgument", "InvalidURI", "XMinioInvalidObjectName",  # 400: the key itself
    "AccessDenied",  # 403 for this key
    "InvalidObjectState",  # 403: archived (Glacier, Deep Archive)
})


class ObjectRefused(ObjectNotFound):
    """S3 will never return this key's object (malformed key, access denied, archived).

    An `ObjectNotFound`, so every caller that handles "nothing readable under this key" (media
    fetch dead-letters the event, the feature cache recomputes) handles it without a retry loop.
    """

    def __init__(self, key: str, code: str) -> None:
        super().__init__(key)
        self.args = (f"S3 refused {key!r}: {code}",)
        self.code = code

    def __reduce__(self) -> tuple:
        return (type(self), (self.key, self.code))


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


def classify_client_error(exc: ClientError, what: str) -> ObjectNotFound | StorageUnavailable:
    """The typed error for an S3 error answer about `what`: the one place that decides.

    404 -> ObjectNotFound; a per-key refusal (`_REFUSED_CODES`) -> ObjectRefused, both answers
    about this key alone; anything else (5xx, SlowDown/throttling, refused credentials) ->
    StorageUnavailable, the store's fault, retried rather than blamed on the record.
    """
    if is_not_found(exc):
        return ObjectNotFound(what)
    code = exc.response.get("Error", {}).get("Code", "?")
    if code in _REFUSED_CODES:
        return ObjectRefused(what, code)
    return StorageUnavailable(f"S3 failed on {what}: {code}")


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Translate S3 failures while doing `what` (see `classify_client_error`).

    Connection failures and timeouts never reach an answer: always StorageUnavailable, retried.
    """
    try:
        yield
    except ClientError as exc:
        raise classify_client_error(exc, what) from exc
    except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise StorageUnavailable(f"S3 unreachable on {what}: {exc}") from exc


# Answers to the start-up probe that only a change of settings can fix, and the settings to look at.
_CONFIG_CODES = {
    "NoSuchBucket": "RCI_S3_BUCKET",
    "InvalidBucketName": "RCI_S3_BUCKET",
    "InvalidAccessKeyId": "RCI_S3_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "RCI_S3_SECRET_ACCESS_KEY",
    "AuthorizationHeaderMalformed": "RCI_S3_REGION",  # signed for another region
    "PermanentRedirect": "RCI_S3_REGION / RCI_S3_ENDPOINT_URL",  # the bucket lives elsewhere
}
_TRANSIENT_CODES = frozenset({"RequestTimeout", "SlowDown", "Throttling", "ThrottlingException",
                              "RequestLimitExceeded", "InternalError", "ServiceUnavailable"})
PROBE_KEY = "rci-start-up-probe"  # never written: the answer for a missing key is what is checked


async def check_bucket(s3: S3Client, bucket: str, *, bucket_setting: str = "RCI_S3_BUCKET") -> None:
    """Start-up check: the credentials work and `bucket` exists, by reading a key that is not there.

    Raises StorageConfigError naming the setting for what only a change of settings can fix: no
    credentials, an unknown access key, a wrong secret, no such bucket, a malformed endpoint.
    Raises StorageUnavailable (retry) when the endpoint cannot be reached or answers 5xx. A
    missing key (NoSuchKey) or AccessDenied (the usual answer for a missing key without ListBucket
    permission) passes: the bucket and the credentials are known to S3.
    """
    endpoint = redact_uri(s3.config.endpoint_url or "AWS S3")
    try:
        client = await s3.client()
    except ValueError as exc:  # botocore: "Invalid endpoint: ..." when the client is created
        raise StorageConfigError(f"RCI_S3_ENDPOINT_URL is not a usable S3 endpoint: {exc}") from exc
    try:
        response = await client.get_object(Bucket=bucket, Key=PROBE_KEY)
        response["Body"].close()  # someone wrote the probe key: readable is all that is asked
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise StorageConfigError(
            f"no S3 credentials for {endpoint}: set RCI_S3_ACCESS_KEY_ID and RCI_S3_SECRET_ACCESS_KEY "
            f"(or AWS credentials in botocore's default chain) ({exc})"
        ) from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in ("NoSuchKey", "AccessDenied", "404", "403"):
            return
        if code in _CONFIG_CODES:
            setting = bucket_setting if _CONFIG_CODES[code] == "RCI_S3_BUCKET" else _CONFIG_CODES[code]
            raise StorageConfigError(
                f"S3 at {endpoint} refused bucket {bucket!r}: {code}; check {setting}"
            ) from exc
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status >= 500 or code in _TRANSIENT_CODES:
            raise StorageUnavailable(f"S3 at {endpoint} failed on bucket {bucket!r}: {code}") from exc
        raise StorageConfigError(  # another 4xx on a plain read: the request as configured cannot work
            f"S3 at {endpoint} answered {code} for bucket {bucket!r}; check the RCI_S3_* settings"
        ) from exc
    except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise StorageUnavailable(f"S3 unreachable at {endpoint} (bucket {bucket!r}): {exc}") from exc
