"""Real local services for development, tests and the demo, started as plain processes (no Docker).

* `kafka_jars` / `kafka_broker`: Apache Kafka 4.x from Maven jars, KRaft single node.
* `s3server`: an S3-compatible HTTP server (moto) for the object store's S3 backend.
* `stack`: all of them together, plus the topics and buckets the service expects.
"""
