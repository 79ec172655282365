"""Runs the review page: the topic reader in a thread, the web app on the event loop, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import numpy as np
from aiohttp import web

from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.features.cache import FeatureCache
from rci.storage.objects import make_object_store
from rci.review.app import kafka_verdict_sink, make_app
from rci.review.index import ReviewIndex
from rci.review.maps import heatmap_png
from rci.review.reader import TopicReader

log = get_logger(__name__)


async def serve_review(settings: Settings, on_listening: Callable[[str], None] | None = None) -> None:
    """Serve until a signal; `on_listening(url)` once the port is bound (port 0 picks a free one)."""
    # the colour map's lookup (matplotlib's first import, ~1 s): paid at start, not by the first reviewer's heat map
    await asyncio.to_thread(heatmap_png, "warm-up", "warm-up", np.eye(2, dtype=np.float32))
    index = ReviewIndex(settings.review_max_scores)
    reader = TopicReader(settings, index)
    reader.start()
    cache = FeatureCache(make_object_store(settings))
    app = make_app(settings, index, kafka_verdict_sink(settings), ready=reader.is_alive, features=cache.get,
                   frames=cache.frames)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.review_host, settings.review_port)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/"
    log.info("review page ready", url=url, read_only=settings.review_token is None)
    if on_listening:
        on_listening(url)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()
        await asyncio.to_thread(reader.stop)
