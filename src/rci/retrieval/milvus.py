"""`VectorStore` on Milvus through `pymilvus.MilvusClient`: Milvus Lite file or Milvus server.

The same code serves both backends; only `index_profile(uri)` differs. One row per retrieval
vector (rci.retrieval.vectors): primary key `<video_id>#<clip_index>`, so a video-level store has
one row per video and a clip-level store C rows, and upserts stay idempotent by primary key.

Search (`search`), per batch of queries:
1. All queries' vectors go to Milvus in ONE call, with one filter shared by the batch
   (`published_at_ms < latest query`; Milvus expressions cannot differ per query vector and
   Milvus Lite has no expression templates), over-fetching `top_k + overfetch` hits each.
2. Client side, per query: drop the query itself and anything not published before it,
   keep each video's best similarity, rank. The result is exactly what a per-query filter
   would give unless a hit list was full of dropped rows; those queries alone are searched
   again one by one with their own exact filter. The benchmark compares this with a
   per-query filter for every query (`batched_filter=False`).

Visibility: searches run at consistency level Strong by default, so a video upserted by any
client is searched by the next query; Milvus Lite searches its in-memory table synchronously
and is read-your-writes anyway. Lite stores are flushed every `flush_every_rows` upserted
rows so that searches hit indexed segments rather than a large brute-force memtable.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from rci.core.logs import get_logger
from rci.core.settings import Settings
from rci.retrieval.errors import InvalidRecord, RetrievalError, SchemaMismatch, StoreClosed
from rci.retrieval.retry import RetryPolicy, call_with_retries
from rci.retrieval.store import Hit, SearchQuery, VideoRecord, checked_embeddings, from_epoch_ms, to_epoch_ms
from rci.retrieval.vectors import VectorSpec

T = TypeVar("T")
log = get_logger(__name__)

MAX_ID = 128  # CONTRACT.md: video_id is 1-128 chars, creator_id at most 128
MAX_URI = 2048  # CONTRACT.md: media_uri at most 2048 chars; feature_key (features/<enc>/<video_id>.<16 hex>.npz) fits too
CLIP_SUFFIX = 8  # vector_id is `<video_id>#<clip_index>`
UTF8_MAX_BYTES = 4  # the most UTF-8 bytes one character (code point) takes


def varchar_length(chars: int) -> int:
    """A VARCHAR's `max_length` that holds any `chars` characters.

    The limits above (and the checks in `_rows`, and the contract's) count characters, as Python and
    Milvus Lite do; a Milvus server counts UTF-8 bytes, so 128 emoji (512 bytes) overflow a
    VARCHAR(128) there and the upsert fails after the score was written. Each field is declared with
    4 bytes per allowed character, so every contract-valid value fits either backend.

    Collections created before this keep their narrower VARCHARs (a Milvus schema cannot be widened in
    place; `_check_schema` logs it): each encoder version gets a new collection anyway
    (`collection_name`), and `rci index rebuild` fills a new one from `video.published`.
    """
    return UTF8_MAX_BYTES * chars


# field -> max_length in bytes
_VARCHARS = {
    "vector_id": varchar_length(MAX_ID + CLIP_SUFFIX),
    "video_id": varchar_length(MAX_ID),
    "creator_id": varchar_length(MAX_ID),
    "media_uri": varchar_length(MAX_URI),
    "feature_key": varchar_length(MAX_URI),
}
_KIND_PROPERTY = "rci.vector_kind"  # collection property: which rci.retrieval.vectors kind the rows hold
_OUTPUT_FIELDS = ["video_id", "published_at_ms", "creator_id", "media_uri", "feature_key"]

# gRPC keepalive that both servers accept. pymilvus pings every 10 s, idle or not; Milvus Lite's gRPC
# server (milvus_lite.adapter.grpc.server, gRPC's defaults) allows a ping on an idle connection only every
# 2 hours and, during calls, every 5 minutes, and answers the third early ping with GOAWAY `too_many_pings`
# (ENHANCE_YOUR_CALM): a worker idle between events lost its connection in long runs. A Milvus server
# (Go gRPC) accepts pings every 5 s, with or without calls. So: ping only during calls, at most every
# 5 minutes; an idle connection that died is found by the next call's deadline and retried (RetryPolicy).
GRPC_KEEPALIVE = {
    "grpc.keepalive_time_ms": 300_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": False,
}


# --- backend choice ------------------------------------------------------------------------


def collection_name(base: str, encoder_version: str | None) -> str:
    """`rci_videos` + `_enc_3fa9...` : one collection per encoder version, so that vectors of different
    encoders never meet in one search and a new encoder starts an index of its own (`rci index rebuild`)."""
    if not encoder_version:
        return base
    return f"{base}_{re.sub(r'[^0-9A-Za-z_]', '_', encoder_version)}"


def is_lite(uri: str) -> bool:
    """pymilvus opens a URI ending in .db as an embedded Milvus Lite database."""
    return uri.endswith(".db")


@dataclass(frozen=True)
class IndexProfile:
    """How a backend indexes and searches the embedding field."""

    index_type: str
    build_params: dict[str, Any]
    search_params: dict[str, Any]
    flush_every_rows: int  # 0: leave sealing to the server


def index_profile(uri: str) -> IndexProfile:
    """HNSW on both backends, tuned so recall@1 vs exact search is >= 0.99 at 100k vectors.

    Milvus Lite (3.x, pure Python + faiss) supports FLAT/BRUTE_FORCE, HNSW, HNSW_SQ,
    IVF_FLAT, IVF_SQ8 and AUTOINDEX (= HNSW with defaults). It builds one index per sealed
    segment and brute-forces its memtable, so it is flushed periodically. A Milvus server
    seals growing segments itself; manual flushes there only create small segments.
    """
    hnsw = {"M": 16, "efConstruction": 200}
    if is_lite(uri):
        return IndexProfile("HNSW", hnsw, {"ef": 128}, flush_every_rows=20_000)
    return IndexProfile("HNSW", hnsw, {"ef": 128}, flush_every_rows=0)


# --- Milvus Lite servers are per process: stop one when its last store closes ---------------

_lite_lock = threading.Lock()
_lite_users: Counter[str] = Counter()


def _lite_opened(path: str) -> None:
    with _lite_lock:
        _lite_users[path] += 1


def _lite_closed(path: str) -> None:
    # pymilvus keeps the embedded server (and its file lock) alive for the whole process;
    # stopping it on the last close persists everything and lets a later open re-read the file.
    from milvus_lite import server_manager_instance

    with _lite_lock:
        _lite_users[path] -= 1
        last = _lite_users[path] <= 0
        if last:
            del _lite_users[path]
    if last:
        server_manager_instance.release_server(path)


# --- the store -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One returned vector hit, flattened from Milvus' result dict."""

    video_id: str
    similarity: float
    published_at_ms: int
    creator_id: str
    media_uri: str
    feature_key: str

    def to_hit(self) -> Hit:
        return Hit(self.video_id, self.similarity, from_epoch_ms(self.published_at_ms), self.creator_id,
                   self.media_uri, self.feature_key)


@dataclass
class SearchStats:
    """Counters a benchmark or a test can read: how often the exact fallback ran."""

    searches: int = 0
    queries: int = 0
    fallback_queries: int = 0


class MilvusVectorStore:
    """`VectorStore` on one Milvus collection (created on first open, loaded on every open)."""

    def __init__(
        self,
        uri: str,
        *,
        token: str = "",
        collection: str = "rci_videos",
        dim: int = 128,
        vector_kind: str = VectorSpec().kind,
        profile: IndexProfile | None = None,
        consistency_level: str = "Strong",
        timeout_s: float = 10.0,
        overfetch: int = 8,
        batched_filter: bool = True,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.collection = collection
        self.dim = dim
        self.vector_kind = vector_kind
        self.profile = profile or index_profile(uri)
        self.stats = SearchStats()
        self._consistency = consistency_level
        self._timeout_s = timeout_s
        self._overfetch = overfetch
        self._batched_filter = batched_filter
        self._retry = retry
        self._unflushed_rows = 0
        self._lite_path = str(Path(uri).absolute()) if is_lite(uri) else None
        if self._lite_path:
            Path(self._lite_path).parent.mkdir(parents=True, exist_ok=True)
            uri = self._lite_path
        self._client: MilvusClient | None = self._call(
            "connect", lambda: MilvusClient(uri=uri, token=token, timeout=timeout_s, grpc_options=dict(GRPC_KEEPALIVE))
        )
        if self._lite_path:
            _lite_opened(self._lite_path)
        try:
            self._open_collection()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_settings(cls, settings: Settings, encoder_version: str | None = None, **overrides: Any) -> MilvusVectorStore:
        """The store the service uses: RCI_MILVUS_URI (default <data_dir>/milvus.db), token, vector kind from
        RCI_RETRIEVAL_GRANULARITY, and RCI_MILVUS_COLLECTION suffixed with `encoder_version` when given."""
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        overrides.setdefault("vector_kind", VectorSpec.from_settings(settings).kind)
        collection = collection_name(settings.milvus_collection, encoder_version)
        return cls(settings.resolved_milvus_uri, token=token, collection=collection, **overrides)

    # --- VectorStore --------------------------------------------------------------------

    def upsert(self, records: Sequence[VideoRecord]) -> None:
        """Insert or replace by video_id (the last record wins within one call)."""
        latest = {r.video_id: r for r in records}
        if not latest:
            return
        rows = [row for record in latest.values() for row in self._rows(record)]
        self._call("upsert", lambda: self._live().upsert(self.collection, rows, timeout=self._timeout_s))
        self._drop_stale_vectors(latest.values())
        self._unflushed_rows += len(rows)
        if self.profile.flush_every_rows and self._unflushed_rows >= self.profile.flush_every_rows:
            self.flush()

    def search(self, queries: Sequence[SearchQuery], top_k: int = 1) -> list[list[Hit]]:
        """Per query, in order: up to top_k videos published before it (never itself), best first."""
        if top_k < 1:
            raise InvalidRecord(f"top_k must be >= 1, got {top_k}")
        if not queries:
            return []
        vectors = [checked_embeddings(q.video_id, q.embeddings, self.dim) for q in queries]
        times = [to_epoch_ms(q.published_at) for q in queries]
        self.stats.searches += 1
        self.stats.queries += len(queries)
        if not self._batched_filter:
            return [self._search_exact(q, v, t, top_k) for q, v, t in zip(queries, vectors, times, strict=True)]
        limit = top_k + self._overfetch
        rows = self._search_vectors(np.concatenate(vectors), f"published_at_ms < {max(times)}", limit)
        results: list[list[Hit]] = []
        start = 0
        for query, vecs, t in zip(queries, vectors, times, strict=True):
            per_vector = rows[start : start + len(vecs)]
            start += len(vecs)
            hits, certain = best_earlier(per_vector, query.video_id, t, top_k, limit)
            if not certain:
                self.stats.fallback_queries += 1
                hits = self._search_exact(query, vecs, t, top_k)
            results.append(hits)
        return results

    def count(self) -> int:
        """Distinct videos: rows of their first vector."""
        res = self._call(
            "count",
            lambda: self._live().query(self.collection, filter="clip_index == 0", output_fields=["count(*)"],
                                       consistency_level=self._consistency, timeout=self._timeout_s),
        )
        return int(res[0]["count(*)"])

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._lite_path and self._unflushed_rows:
                client.flush(self.collection, timeout=self._timeout_s)  # persist segments, shorten WAL replay
        finally:
            client.close()
            if self._lite_path:
                _lite_closed(self._lite_path)

    # --- extras ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Seal what was upserted into a segment (Lite: indexed in the background)."""
        self._call("flush", lambda: self._live().flush(self.collection, timeout=self._timeout_s))
        self._unflushed_rows = 0

    def drop(self) -> None:
        """Delete the collection and all its rows, then close (re-indexing with other vectors, tests)."""
        self._call("drop", lambda: self._live().drop_collection(self.collection, timeout=self._timeout_s))
        self._unflushed_rows = 0
        self.close()

    def __enter__(self) -> MilvusVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- collection set-up -------------------------------------------------------------------

    def _open_collection(self) -> None:
        client = self._live()
        exists = self._call("has_collection", lambda: client.has_collection(self.collection, timeout=self._timeout_s))
        if not exists and not self._create_collection():
            exists = True
        if exists:
            self._check_schema()
            self._wait_for_index()
        self._call("load", lambda: client.load_collection(self.collection, timeout=self._timeout_s))

    def _create_collection(self) -> bool:
        """Create the collection with its index; False when another process created it first.

        Workers of one group start together against one server: each may find no collection and
        create it, and all but the first are then told it exists, which is what they wanted.
        """
        client = self._live()
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("vector_id", DataType.VARCHAR, is_primary=True, max_length=_VARCHARS["vector_id"])
        schema.add_field("video_id", DataType.VARCHAR, max_length=_VARCHARS["video_id"])
        schema.add_field("clip_index", DataType.INT64)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("published_at_ms", DataType.INT64)
        schema.add_field("creator_id", DataType.VARCHAR, max_length=_VARCHARS["creator_id"])
        schema.add_field("media_uri", DataType.VARCHAR, max_length=_VARCHARS["media_uri"])
        schema.add_field("feature_key", DataType.VARCHAR, max_length=_VARCHARS["feature_key"])
        index = client.prepare_index_params()
        index.add_index("embedding", index_type=self.profile.index_type, metric_type="COSINE",
                        params=self.profile.build_params)
        try:
            self._call(
                "create_collection",
                lambda: client.create_collection(self.collection, schema=schema, index_params=index,
                                                 consistency_level=self._consistency, timeout=self._timeout_s,
                                                 properties={_KIND_PROPERTY: self.vector_kind}),
            )
        except RetrievalError as exc:
            if not _already_exists(exc):
                raise
            log.info("milvus collection created meanwhile by another process", collection=self.collection)
            return False
        log.info("created milvus collection", collection=self.collection, dim=self.dim, kind=self.vector_kind,
                 index=self.profile.index_type)
        return True

    def _wait_for_index(self) -> None:
        """A collection another process has just created gets its index a moment later; loading it
        before then fails, so wait for the index (bounded by the store's timeout)."""
        deadline = time.monotonic() + self._timeout_s
        while not self._call("list_indexes", lambda: self._live().list_indexes(self.collection)):
            if time.monotonic() > deadline:
                raise RetrievalError(f"collection {self.collection!r} has no index after {self._timeout_s:.0f} s; "
                                     "was its creation interrupted? Rebuild the index into a new collection")
            time.sleep(0.2)

    def _check_schema(self) -> None:
        info = self._call("describe", lambda: self._live().describe_collection(self.collection, timeout=self._timeout_s))
        fields = {f["name"]: f for f in info["fields"]}
        dim = int(fields.get("embedding", {}).get("params", {}).get("dim", -1))
        kind = info.get("properties", {}).get(_KIND_PROPERTY)
        if dim != self.dim or kind != self.vector_kind or "clip_index" not in fields:
            raise SchemaMismatch(
                f"collection {self.collection!r} holds {kind!r} vectors of dim {dim}; this store needs "
                f"{self.vector_kind!r} of dim {self.dim}: use another collection name"
            )
        narrow = {name: _max_length(fields.get(name, {})) for name, need in _VARCHARS.items()
                  if _max_length(fields.get(name, {})) < need}
        if narrow:  # an older collection: values of many-byte characters may not fit on a Milvus server
            log.warning("milvus collection has VARCHARs narrower than 4 bytes per character; "
                        "rebuild the index into a new collection to widen them",
                        collection=self.collection, max_length=narrow)

    # --- rows in, hits out ---------------------------------------------------------------------

    def _rows(self, record: VideoRecord) -> list[dict[str, Any]]:
        if not 1 <= len(record.video_id) <= MAX_ID:
            raise InvalidRecord(f"video_id must be 1-{MAX_ID} chars: {record.video_id!r}")
        vectors = checked_embeddings(record.video_id, record.embeddings, self.dim)
        published = to_epoch_ms(record.published_at)
        return [
            {
                "vector_id": f"{record.video_id}#{i}",
                "video_id": record.video_id,
                "clip_index": i,
                "embedding": vec,
                "published_at_ms": published,
                "creator_id": record.creator_id,
                "media_uri": record.media_uri,
                "feature_key": record.feature_key,
            }
            for i, vec in enumerate(vectors)
        ]

    def _drop_stale_vectors(self, records: Iterable[VideoRecord]) -> None:
        """A re-upserted video with fewer vectors than before must not keep the old extra rows."""
        by_count: dict[int, list[str]] = {}
        for record in records:
            by_count.setdefault(len(record.embeddings), []).append(record.video_id)
        for n, ids in by_count.items():
            expr = f"video_id in [{', '.join(quote(i) for i in ids)}] and clip_index >= {n}"
            self._call("delete", lambda expr=expr: self._live().delete(self.collection, filter=expr,
                                                                       timeout=self._timeout_s))

    def _search_exact(self, query: SearchQuery, vectors: np.ndarray, t: int, top_k: int) -> list[Hit]:
        """One query with its own filter; grouping by video guarantees top_k distinct videos per vector."""
        expr = f"published_at_ms < {t} and video_id != {quote(query.video_id)}"
        rows = self._search_vectors(vectors, expr, top_k, group_by_video=True)
        hits, _ = best_earlier(rows, query.video_id, t, top_k, limit=math.inf)
        return hits

    def _search_vectors(self, vectors: np.ndarray, expr: str, limit: int, group_by_video: bool = False) -> list[list[_Row]]:
        extra = {"group_by_field": "video_id"} if group_by_video else {}
        raw = self._call(
            "search",
            lambda: self._live().search(
                self.collection, data=list(vectors), filter=expr, limit=limit, output_fields=_OUTPUT_FIELDS,
                search_params={"metric_type": "COSINE", "params": self.profile.search_params},
                anns_field="embedding", consistency_level=self._consistency, timeout=self._timeout_s, **extra,
            ),
        )
        return [[_row(hit) for hit in hits] for hits in raw]

    # --- plumbing ------------------------------------------------------------------------------

    def _live(self) -> MilvusClient:
        if self._client is None:
            raise StoreClosed(f"milvus store for {self.collection!r} is closed")
        return self._client

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        return call_with_retries(operation, what=what, policy=self._retry)


def _already_exists(exc: RetrievalError) -> bool:
    return isinstance(exc.__cause__, MilvusException) and "already exist" in str(exc.__cause__.message).lower()


def _max_length(field: dict[str, Any]) -> int:
    try:
        return int(field.get("params", {}).get("max_length", 0))
    except (TypeError, ValueError):
        return 0


def _row(hit: Any) -> _Row:
    entity = hit["entity"]
    return _Row(
        video_id=entity["video_id"],
        similarity=float(hit["distance"]),  # COSINE: Milvus returns the similarity itself
        published_at_ms=int(entity["published_at_ms"]),
        creator_id=entity["creator_id"],
        media_uri=entity["media_uri"],
        feature_key=entity["feature_key"],
    )


def best_earlier(
    per_vector: Sequence[Sequence[_Row]], query_id: str, query_ms: int, top_k: int, limit: float
) -> tuple[list[Hit], bool]:
    """Rank videos by their best hit over the query's vectors, keeping only earlier, other videos.

    Returns (top_k hits, certain). `certain` is False when a video missing from the hit lists
    could still belong in the top_k: a list that came back full (`limit` hits) hides rows
    scoring up to its last similarity.
    """
    hidden_up_to = -math.inf
    best: dict[str, _Row] = {}
    for rows in per_vector:
        if len(rows) >= limit:
            hidden_up_to = max(hidden_up_to, rows[-1].similarity)
        for row in rows:
            if row.video_id == query_id or row.published_at_ms >= query_ms:
                continue
            if row.video_id not in best or row.similarity > best[row.video_id].similarity:
                best[row.video_id] = row
    ranked = sorted(best.values(), key=lambda r: (-r.similarity, r.video_id))
    certain = hidden_up_to == -math.inf or (len(ranked) >= top_k and ranked[top_k - 1].similarity >= hidden_up_to)
    return [r.to_hit() for r in ranked[:top_k]], certain


def quote(value: str) -> str:
    """A Milvus expression string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
