"""One frozen settings object, read from `RCI_*` environment variables at entry points only.

Library code never reads the environment: the CLI builds `Settings` once with
`load_settings()` and passes it (or the parts it needs) down.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rci.core.errors import ConfigError

ENV_PREFIX = "RCI_"
CommaList = Annotated[tuple[str, ...], NoDecode]

# librdkafka keys RCI_KAFKA_EXTRA may not set: a dedicated setting, or the project itself (delivery
# guarantees, consumer groups), owns them. One way to set each thing.
KAFKA_EXTRA_RESERVED = {
    "bootstrap.servers": "RCI_KAFKA_BOOTSTRAP",
    "metadata.broker.list": "RCI_KAFKA_BOOTSTRAP",
    "security.protocol": "RCI_KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "RCI_KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "RCI_KAFKA_SASL_MECHANISM",
    "sasl.username": "RCI_KAFKA_SASL_USERNAME",
    "sasl.password": "RCI_KAFKA_SASL_PASSWORD",
    "sasl.oauthbearer.method": "RCI_KAFKA_SASL_MECHANISM=OAUTHBEARER",
    "sasl.oauthbearer.token.endpoint.url": "RCI_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL",
    "sasl.oauthbearer.client.id": "RCI_KAFKA_SASL_OAUTHBEARER_CLIENT_ID",
    "sasl.oauthbearer.client.secret": "RCI_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET",
    "sasl.oauthbearer.scope": "RCI_KAFKA_SASL_OAUTHBEARER_SCOPE",
    "ssl.ca.location": "RCI_KAFKA_SSL_CAFILE",
    "ssl.certificate.location": "RCI_KAFKA_SSL_CERTFILE",
    "ssl.key.location": "RCI_KAFKA_SSL_KEYFILE",
    "ssl.key.password": "RCI_KAFKA_SSL_KEY_PASSWORD",
    "auto.offset.reset": "RCI_KAFKA_AUTO_OFFSET_RESET",
    "group.id": "RCI_WORKER_GROUP / RCI_SHADOW_GROUP",
    "enable.auto.commit": "the project (offsets are committed after the outputs are acknowledged)",
    "enable.idempotence": "the project (producers are idempotent)",
    "acks": "the project (producers wait for all in-sync replicas)",
}
_OAUTHBEARER_FIELDS = (
    "kafka_sasl_oauthbearer_token_endpoint_url",
    "kafka_sasl_oauthbearer_client_id",
    "kafka_sasl_oauthbearer_client_secret",
)


class Settings(BaseSettings):
    """Every knob of the service. Field `x` is set by the environment variable `RCI_X`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # --- where local state lives -------------------------------------------------------
    data_dir: Path = Field(Path(".rci"), description="Root for local state: Milvus Lite file, objects, models.")

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", min_length=1, description="Comma-separated host:port list.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # OAUTHBEARER through OIDC client credentials (the token endpoint issues the tokens).
    kafka_sasl_oauthbearer_token_endpoint_url: str | None = None
    kafka_sasl_oauthbearer_client_id: str | None = None
    kafka_sasl_oauthbearer_client_secret: SecretStr | None = None
    kafka_sasl_oauthbearer_scope: str | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="Private key (PEM) of the client certificate.")
    kafka_ssl_key_password: SecretStr | None = None
    kafka_auto_offset_reset: Literal["earliest", "latest"] = Field(
        "latest", description="Where a consumer group with no committed offset starts (a new group on a live topic)."
    )
    kafka_extra: Annotated[dict[str, str | int | float | bool], NoDecode] = Field(
        default_factory=dict,
        repr=False,  # may carry values a team considers sensitive
        description="JSON object of librdkafka settings given to every Kafka client as is (rci.streams.kafka).",
    )
    topic_published: str = "video.published"
    topic_scores: str = "rci.scores"
    topic_dlq: str = "video.published.dlq"
    topic_shadow: str = "rci.shadow"
    topic_reviews: str = "rci.reviews"
    topic_partitions: int = Field(6, ge=1, description="Partitions used when the project creates the topics.")
    topic_replication_factor: int = Field(
        -1, ge=-1, description="Replicas when the project creates the topics; -1: the cluster's default.replication.factor."
    )
    topic_retention_ms: int | None = Field(
        None, ge=-1, description="retention.ms of the topics the project creates; unset: the cluster's default, -1: forever."
    )
    worker_group: str = "rci-worker"
    shadow_group: str = "rci-shadow"

    # --- Milvus --------------------------------------------------------------------------
    milvus_uri: str = Field("", description="Milvus server URI or a Milvus Lite file; empty = <data_dir>/milvus.db.")
    milvus_token: SecretStr | None = None
    milvus_collection: str = "rci_videos"
    retrieval_granularity: Literal["clip", "video"] = Field(
        "clip", description="Retrieval vectors per video: clip means (default) or one video mean."
    )
    retrieval_clip_frames: int = Field(
        1, ge=1, le=32, description="Frames per retrieval clip (1, the default: every frame is a vector); queries slide by half."
    )

    # --- object store (media and feature cache) -----------------------------------------
    object_store: Literal["local", "s3"] = "local"
    object_store_dir: Path | None = Field(None, description="Local store root; empty = <data_dir>/objects.")
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_bucket: str = Field("rci-features", description="Bucket for the feature cache.")
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None

    # --- media -----------------------------------------------------------------------------
    media_allowed_prefixes: CommaList = Field(
        (), description="Comma-separated URI prefixes media may come from; empty = file://<data_dir>/media/."
    )
    media_max_bytes: int = Field(512 * 1024 * 1024, ge=1)
    media_max_duration_s: float = Field(600.0, gt=0)
    media_max_pixels: int = Field(3840 * 2160 - 1, ge=1, description="Largest width*height accepted (4K refused).")
    media_max_frames: int = Field(32, ge=1, description="Frames kept per video at 1 fps (zero-padded, masked).")
    media_fetch_concurrency: int = Field(
        4, ge=1, description="Media fetched and decoded at once per process (the rest of a batch waits its turn)."
    )
    media_max_bytes_in_flight: int = Field(
        1024 * 1024 * 1024,
        ge=1,
        description="Bytes of fetched S3 media held in memory at once; an object larger than this is fetched alone.",
    )
    media_decode_timeout_s: float = Field(
        120.0, gt=0, description="Longest decode of one media file; a slower one is dead-lettered media_undecodable."
    )
    media_skip_nonref_frames: bool = Field(
        True, description="Do not decode video frames that no other frame references (35-40% less decode CPU "
        "on H.264 with B-frames; a sampled second may then be up to two frames off). false decodes every frame.")
    media_allowed_codecs: CommaList = Field(
        ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "aac", "mp3", "opus", "vorbis", "flac", "pcm_*"),
        description="Comma-separated FFmpeg codec names (`*` wildcards) a decoded video or audio track may use.",
    )

    # --- models and inference ------------------------------------------------------------
    model_dir: Path | None = Field(None, description="Directory of local model weights; empty = <data_dir>/models.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runtime: Literal["onnx", "torch"] = "onnx"
    ort_intra_op_threads: int = Field(0, ge=0, description="0 lets ONNX Runtime decide.")
    ort_inter_op_threads: int = Field(0, ge=0)
    batch_max_size: int = Field(16, ge=1)
    batch_max_wait_ms: int = Field(
        50, ge=1, description="Longest wait for a batch to fill, ms; at least 1 (faust reads 0 as wait forever)."
    )
    worker_drain_timeout_s: float = Field(
        40.0, gt=0, le=3600,
        description="On SIGTERM or SIGINT, how long the batch in flight may take to finish before the worker exits "
                    "without acknowledging it (it is re-delivered); keep it below the supervisor's grace period.",
    )
    ready_stall_s: float = Field(
        120.0, gt=0, le=86400,
        description="/ready answers 503 while one batch has been in flight this long (and while any batch retries "
                    "an outage), until it finishes, and while a partition the worker owns has records waiting and "
                    "no commit for this long: the worker is alive but stuck.",
    )
    poison_max_attempts: int = Field(
        3, ge=1, description="Unexpected failures of one record, alone, before it is dead-lettered as internal_error."
    )
    retrieval_top_k: int = Field(
        8, ge=1, le=64, description="Shortlist per query from the index, re-ranked on frame sets (rci.retrieval.similarity)."
    )
    retrieval_score_top: int = Field(
        3, ge=1, le=16,
        description="Best re-ranked candidates MatchLite scores per query; the earliest it flags among those about "
                    "as similar as the best is the evidence, and the credit follows MatchLite's flags among these "
                    "candidates back to the earliest of the evidence's family: the original, not a copy of it.",
    )
    retrieval_credit_margin: float = Field(
        0.15, ge=0.0, le=2.0,
        description="'About as similar': within this much frame-set similarity of the best candidate.",
    )

    # --- shadow -------------------------------------------------------------------------------
    shadow_sample_rate: float = Field(0.01, ge=0.0, le=1.0)

    # --- review page (rci review) --------------------------------------------------------------
    review_host: str = Field("127.0.0.1", description="Bind address of `rci review` (loopback unless told otherwise).")
    review_port: int = Field(8088, ge=0, le=65535, description="Port of `rci review`; 0 picks a free one.")
    review_token: SecretStr | None = Field(
        None, description="Bearer token a verdict must carry; unset, the review page is read-only.")
    review_max_scores: int = Field(100_000, ge=100, description="Scores the review page keeps in memory (the newest).")
    review_frames: bool = Field(
        True, description="Store a small JPEG sheet of each video's sampled frames beside its features, "
        "for the review page (~5 ms and ~50-120 kB per video, benchmarks.bench_review); false stores none.")

    # --- observability ----------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="Bind address of the Prometheus endpoint (loopback by default).")
    metrics_port: int = Field(9464, ge=0, le=65535, description="0 disables the endpoint.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("media_allowed_prefixes", "media_allowed_codecs", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("media_allowed_prefixes")
    @classmethod
    def _prefixes_are_uris(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            if not (prefix.startswith("file:///") or prefix.startswith("s3://")):
                raise ValueError(f"{prefix!r} must start with file:/// or s3://")
        return value

    @field_validator("media_allowed_codecs")
    @classmethod
    def _codecs_are_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Only the spelling is checked here (core does not import FFmpeg); rci.media.policy checks
        # that each entry names a decoder FFmpeg has.
        if not value:
            raise ValueError("at least one codec must be allowed")
        for name in value:
            if not re.fullmatch(r"[a-z0-9_*-]+", name):
                raise ValueError(f"{name!r} is not an FFmpeg codec name (lower case, digits, _ - and * wildcards)")
        return value

    @field_validator("kafka_extra", mode="before")
    @classmethod
    def _extra_from_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError(f"not JSON ({exc.msg}): give a JSON object of librdkafka settings") from exc
        return value

    @field_validator("kafka_extra")
    @classmethod
    def _extra_leaves_dedicated_keys_alone(cls, value: dict[str, object]) -> dict[str, object]:
        for key in value:
            if key in KAFKA_EXTRA_RESERVED:
                raise ValueError(f"key {key!r} is set by {KAFKA_EXTRA_RESERVED[key]}, not through RCI_KAFKA_EXTRA")
        return value

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL")
        if sasl and self.kafka_sasl_mechanism == "OAUTHBEARER":
            missing = [env_name(f) for f in _OAUTHBEARER_FIELDS if not getattr(self, f)]
            if missing:
                raise ValueError(f"RCI_KAFKA_SASL_MECHANISM=OAUTHBEARER needs {', '.join(missing)}")
        elif sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError("SASL protocols need RCI_KAFKA_SASL_USERNAME and RCI_KAFKA_SASL_PASSWORD")
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError("a client certificate needs both RCI_KAFKA_SSL_CERTFILE and RCI_KAFKA_SSL_KEYFILE")
        if self.topic_replication_factor == 0:
            raise ValueError("RCI_TOPIC_REPLICATION_FACTOR must be -1 (the cluster's default) or at least 1")
        if self.kafka_ssl_certfile and not self.kafka_security_protocol.endswith("SSL"):
            raise ValueError("RCI_KAFKA_SSL_CERTFILE needs RCI_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
        if self.object_store == "s3" and not self.s3_bucket:
            raise ValueError("RCI_OBJECT_STORE=s3 needs RCI_S3_BUCKET")
        return self

    # --- derived paths: defaults that hang off data_dir -------------------------------------
    @property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or str((self.data_dir / "milvus.db").absolute())

    @property
    def resolved_object_store_dir(self) -> Path:
        return (self.object_store_dir or self.data_dir / "objects").absolute()

    @property
    def resolved_model_dir(self) -> Path:
        return (self.model_dir or self.data_dir / "models").absolute()

    @property
    def media_dir(self) -> Path:
        return (self.data_dir / "media").absolute()

    @property
    def resolved_media_prefixes(self) -> tuple[str, ...]:
        return self.media_allowed_prefixes or (self.media_dir.as_uri() + "/",)


def env_name(field: str) -> str:
    """The environment variable that sets a settings field."""
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; on bad values raise ConfigError naming the variables."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            where = env_name(field) if field else "RCI_* settings"
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from exc
