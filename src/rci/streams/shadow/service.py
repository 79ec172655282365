"""Entry point of the shadow consumer process: metrics, teacher, catalog, media, writer, consumer loop."""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

from rci.core.errors import ConfigError, ModelError
from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.features.cache import FeatureCache
from rci.media.policy import media_policy
from rci.storage.objects import make_object_store
from rci.storage.s3 import S3Client, s3_config
from rci.streams.catalog import PublishedCatalog
from rci.streams.kafka import make_consumer, make_producer
from rci.streams.metrics import serve_metrics
from rci.streams.retry import retry_transient
from rci.media.reader import MediaReader
from rci.streams.shadow.components import CatalogLookup, KafkaShadowWriter, load_installed_teacher
from rci.streams.shadow.loop import ShadowLoop
from rci.streams.shadow.metrics import ShadowMetrics
from rci.streams.shadow.runner import DecodedInputs, ShadowRunner, StoredFeatures
from rci.streams.sink import AcknowledgedWriter

log = get_logger(__name__)

EXIT_BUG = 70  # EX_SOFTWARE: unexpected error, the batch left uncommitted
EXIT_CONFIG = 78  # EX_CONFIG: no teacher, bad settings
MAX_POLL_INTERVAL_MS = 30 * 60 * 1000  # a teacher batch may take minutes on a CPU


async def serve_shadow(settings: Settings, stop: asyncio.Event, metrics: ShadowMetrics | None = None) -> None:
    """Load the teacher, catch the catalog up, then consume `rci.scores` until `stop` is set."""
    metrics = metrics or ShadowMetrics()
    loop = asyncio.get_running_loop()
    teacher = await loop.run_in_executor(None, load_installed_teacher, settings)
    lookup = CatalogLookup(await loop.run_in_executor(None, PublishedCatalog.open, settings))
    decode_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")
    s3 = S3Client(s3_config(settings)) if any(p.startswith("s3://") for p in settings.resolved_media_prefixes) else None
    if teacher.inputs == "features":  # MatchLMF: what the worker stored, under the teacher's encoders
        inputs = StoredFeatures(FeatureCache(make_object_store(settings)), teacher.encoder_version)
    else:  # MatchLM: the media itself
        inputs = DecodedInputs(MediaReader(media_policy(settings), s3, decode_pool))
    writer = KafkaShadowWriter(AcknowledgedWriter(make_producer(settings)), settings.topic_shadow)
    runner = ShadowRunner(lookup, inputs, teacher, writer, metrics, settings.shadow_sample_rate)
    consumer = make_consumer(settings, settings.shadow_group, max_poll_interval_ms=MAX_POLL_INTERVAL_MS)
    shadow_loop = ShadowLoop(consumer, runner, settings.batch_max_size)
    try:
        known = await retry_transient(lookup.catch_up, what="catalog catch-up")
        consumer.subscribe([settings.topic_scores])
        log.info("shadow ready", group=settings.shadow_group, topic=settings.topic_scores,
                 sample_rate=settings.shadow_sample_rate, teacher=teacher.model_version, catalog_read=known)  # fmt: skip
        metrics.mark_ready()  # /ready answers 200 from now on
        await shadow_loop.run(stop)
    finally:
        metrics.mark_ready(False)
        await shadow_loop.aclose()
        runner.close()
        lookup.close()
        decode_pool.shutdown(wait=False)
        if s3 is not None:
            await s3.close()


def run_shadow(settings: Settings) -> int:
    """Block serving until SIGTERM / SIGINT; -> the process exit code."""
    metrics = ShadowMetrics()
    serve_metrics(metrics, settings.metrics_host, settings.metrics_port)
    return asyncio.run(_main(settings, metrics))


async def _main(settings: Settings, metrics: ShadowMetrics) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve_shadow(settings, stop, metrics)
    except (ConfigError, ModelError) as exc:
        log.error("shadow cannot start", error=str(exc))
        return EXIT_CONFIG
    except Exception:
        log.exception("unexpected error in the shadow consumer; exiting without committing the batch")
        return EXIT_BUG
    log.info("shadow stopped")
    return 0
