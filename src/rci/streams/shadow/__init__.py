"""`rci shadow`: re-score a deterministic sample of `rci.scores` with the teacher MatchLM.

Per sampled score record (CONTRACT.md `rci.shadow`, default 1% by a hash of `video_id`):
look up what both videos were published with (`rci.streams.catalog`), fetch and decode their
media under the same allow-list and limits as the worker, score the pair with MatchLM, write
one `rci.shadow` record keyed by `video_id`, and export agreement metrics on Prometheus.
Records without a candidate are skipped (there is no pair; the student's 0 is a rule, not a
prediction), as are pairs whose video is unknown to the catalog or whose media is now rejected;
each skip is counted under its reason.

Laid out like the worker (`rci.streams.pipeline`, `worker`, `components`, `sink`, `metrics`,
`service`):

* `logic`: sampling, agreement and aggregates, pure and I/O free;
* `runner`: one batch of score records -> shadow records, against structural interfaces;
* `loop`: the confluent-kafka poll / commit loop around the runner;
* `components`: the concrete parts (catalog lookup, media reader, Kafka writer, the teacher);
* `metrics`: the shadow's Prometheus registry;
* `service`: wiring and the process entry point (`run_shadow`, exit codes).

Why a plain confluent-kafka loop and not faust like the worker: the shadow commits offsets
itself, after its records are acknowledged, which a poll loop says in three lines; it also
reads `video.published` across all partitions with `assign()`, which faust would only do as a
GlobalTable with a changelog topic and local RocksDB state.

It never slows the main path: its own process and consumer group (the worker's offsets and
lag are untouched), at most `batch_max_size` score records in flight per batch, and all
blocking work off the event loop: the consumer on one thread, the catalog on another, decoding
on a small pool, the teacher on its own thread. `max.poll.interval.ms` is raised so that a
slow teacher batch (CPU, large model) does not cost the group membership.

Delivery: offsets are committed only after the batch's shadow records were acknowledged, so a
crash re-delivers at most the batch in flight (at least once; sampling by hash picks the same
records again). Transient failures (broker, S3, catalog lag) retry the batch with backoff;
any other exception exits with code 70 without committing. SIGTERM / SIGINT: the batch in
flight finishes and is committed, then the consumer leaves the group and the process exits 0.
"""
