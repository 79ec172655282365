"""The worker's start-up check: configuration faults fail fast, outages are waited out (issue 15).

Run before the worker joins its consumer group (`rci.streams.service`), so nothing is consumed by
a worker that cannot score:

* a configuration fault stops the process with one message naming the setting: no models in
  RCI_MODEL_DIR (`ModelError`); no S3 credentials, an unknown access key, a wrong secret, a bucket
  that does not exist (`rci.storage.errors.StorageConfigError`, a `ConfigError`), a codec in
  RCI_MEDIA_ALLOWED_CODECS that FFmpeg has no decoder for. `rci worker` exits 2.
* the broker refusing the worker's credentials is a configuration fault too (naming the Kafka settings);
* an outage (the object store unreachable, 5xx; no Kafka broker answering) is not the configuration's fault: the check is
  retried with backoff for as long as it lasts (`retry_transient`, each retry logged), and SIGTERM or
  SIGINT meanwhile cancels it at once, sleeps and requests in flight included (`until_stopped`).

The check reads one absent key per bucket (`rci.storage.s3.check_bucket`): the bucket of the feature
cache when RCI_OBJECT_STORE=s3, and each bucket named by an s3:// RCI_MEDIA_ALLOWED_PREFIXES entry.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace
from urllib.parse import urlsplit

from rci.core.errors import ConfigError, ModelError
from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.inference.encoders.bundle import MODALITIES, encoders_dir
from rci.inference.encoders.checkpoint import is_encoder_dir
from rci.inference.model_dir import matchlite_checkpoint, matchlite_onnx
from rci.media.policy import media_policy
from rci.storage.s3 import S3Client, check_bucket, s3_config
from rci.streams.kafka import KafkaAuthError, check_client_config, cluster_metadata
from rci.streams.retry import Stopped, retry_transient, stop_on_signals, until_stopped

log = get_logger(__name__)


def check_model_dir(settings: Settings) -> None:
    """ModelError naming RCI_MODEL_DIR when the models the worker serves are not there (a cheap look at
    the files; loading them later still checks their contents)."""
    model_dir = settings.resolved_model_dir
    root = encoders_dir(model_dir)
    missing = [m for m in MODALITIES if not is_encoder_dir(root / m)]
    matchlite = matchlite_onnx(model_dir) if settings.runtime == "onnx" else matchlite_checkpoint(model_dir)
    if not matchlite.is_file():
        missing.append(f"MatchLite ({matchlite.relative_to(model_dir)})")
    if missing:
        raise ModelError(
            f"RCI_MODEL_DIR={model_dir} has no {', '.join(missing)} model: point RCI_MODEL_DIR at a model "
            "directory (`rci demo` or `rci report` writes one)"
        )


def buckets_to_check(settings: Settings) -> dict[str, str]:
    """Bucket -> the setting that names it: the feature cache's, then the media prefixes' buckets."""
    buckets = {}
    if settings.object_store == "s3":
        buckets[settings.s3_bucket] = "RCI_S3_BUCKET"
    for prefix in settings.resolved_media_prefixes:
        if prefix.startswith("s3://"):
            buckets.setdefault(urlsplit(prefix).netloc, "RCI_MEDIA_ALLOWED_PREFIXES")
    return buckets


async def check_storage(settings: Settings) -> None:
    """Each bucket the worker reads, once, with the worker's own S3 settings (raises on the first fault)."""
    buckets = buckets_to_check(settings)
    if not buckets:
        return
    # One attempt per check: the retry loop around it backs off and logs each one (botocore's own
    # retries would spend seconds per check on a refused connection).
    async with S3Client(replace(s3_config(settings), max_attempts=1)) as s3:
        for bucket, setting in buckets.items():
            await check_bucket(s3, bucket, bucket_setting=setting)


BROKER_CHECK_TIMEOUT_S = 5.0  # one metadata round trip; the retry loop around it backs off and logs


async def check_broker(settings: Settings) -> None:
    """One metadata request: BrokerUnavailable (retried) while no broker answers, ConfigError when the
    broker refuses the credentials. Without it faust gave up after about 20 s and the worker exited 1."""
    try:
        await asyncio.to_thread(cluster_metadata, settings, BROKER_CHECK_TIMEOUT_S)
    except KafkaAuthError as exc:
        raise ConfigError(f"{exc} (RCI_KAFKA_SECURITY_PROTOCOL, RCI_KAFKA_SASL_* or RCI_KAFKA_SSL_*)") from exc


async def preflight(settings: Settings) -> None:
    """Kafka client settings and models first (no retry can fix them), then storage and the broker,
    each retried while it is unreachable."""
    check_client_config(settings)
    media_policy(settings)  # RCI_MEDIA_ALLOWED_CODECS naming a codec this FFmpeg cannot decode
    check_model_dir(settings)
    await retry_transient(lambda: check_storage(settings), what="start-up check")
    await retry_transient(lambda: check_broker(settings), what="start-up check: Kafka broker")
    log.info("start-up check passed", object_store=settings.object_store)


def run_preflight(settings: Settings) -> bool:
    """`preflight` on its own event loop; False when SIGTERM/SIGINT stopped it (then exit quietly).
    ConfigError / ModelError propagate."""

    async def main() -> bool:
        with stop_on_signals(signal.SIGTERM, signal.SIGINT) as stop:
            try:
                await until_stopped(preflight(settings), stop)
            except Stopped:
                log.info("stopped during the start-up check")
                return False
        return True

    return asyncio.run(main())
