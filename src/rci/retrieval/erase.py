"""Removing videos from the index for good (`rci forget`): every vector of the ids, in every collection.

The worker's collection is named per encoder version (`collection_name`: `<base>_<encoder version>`),
and an index rebuilt for new encoders leaves the older collection behind; a takedown or an erasure
request has to reach all of them, so this walks every collection whose name is the base or starts
with `<base>_`, not only the one the current encoders search.

A Milvus Lite file is held by one process at a time (see rci.retrieval.milvus): stop the worker that
serves it, or use a Milvus server (`rci services up`), before erasing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pymilvus import MilvusClient

from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.retrieval.milvus import GRPC_KEEPALIVE, _lite_closed, _lite_opened, is_lite, quote
from rci.retrieval.retry import RetryPolicy, call_with_retries

log = get_logger(__name__)

_CHUNK = 256  # ids per expression: a long `in [...]` list is one query, not one per id


def erase_videos(
    uri: str,
    base_collection: str,
    video_ids: Sequence[str],
    *,
    token: str = "",
    timeout_s: float = 10.0,
    retry: RetryPolicy = RetryPolicy(),
) -> dict[str, list[str]]:
    """Delete every row of `video_ids` from each collection of `base_collection`; returns, per
    collection, the ids that had rows there (sorted; collections without any are left out).
    Idempotent: a second call finds nothing."""
    ids = sorted(set(video_ids))
    lite_path = str(Path(uri).absolute()) if is_lite(uri) else None
    if lite_path is not None and not Path(lite_path).exists():
        return {}  # no index was ever written there: nothing to remove, and nothing to create
    call = lambda what, op: call_with_retries(op, what=what, policy=retry)  # noqa: E731
    # pymilvus shares one channel per address between clients: the same keepalive as the store's (see there)
    client = call("connect", lambda: MilvusClient(uri=lite_path or uri, token=token, timeout=timeout_s,
                                                  grpc_options=dict(GRPC_KEEPALIVE)))  # fmt: skip
    if lite_path:
        _lite_opened(lite_path)
    removed: dict[str, list[str]] = {}
    try:
        names = call("list_collections", lambda: client.list_collections(timeout=timeout_s))
        for name in sorted(n for n in names if n == base_collection or n.startswith(f"{base_collection}_")):
            call("load", lambda name=name: client.load_collection(name, timeout=timeout_s))
            found: set[str] = set()
            for start in range(0, len(ids), _CHUNK):
                expr = f"video_id in [{', '.join(quote(i) for i in ids[start : start + _CHUNK])}]"
                rows = call("query", lambda expr=expr, name=name: client.query(
                    name, filter=expr, output_fields=["video_id"], consistency_level="Strong", timeout=timeout_s))
                hit = {row["video_id"] for row in rows}
                if hit:
                    call("delete", lambda expr=expr, name=name: client.delete(name, filter=expr, timeout=timeout_s))
                found |= hit
            if found:
                if lite_path:  # persist the deletion in the file before the embedded server stops
                    call("flush", lambda name=name: client.flush(name, timeout=timeout_s))
                removed[name] = sorted(found)
                log.info("index.erased", collection=name, videos=len(found))
    finally:
        client.close()
        if lite_path:
            _lite_closed(lite_path)
    return removed


def erase_from_settings(settings: Settings, video_ids: Sequence[str]) -> dict[str, list[str]]:
    """`erase_videos` on the service's Milvus (RCI_MILVUS_URI, its token, RCI_MILVUS_COLLECTION)."""
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    return erase_videos(settings.resolved_milvus_uri, settings.milvus_collection, video_ids, token=token)
