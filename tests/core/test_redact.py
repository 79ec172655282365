"""redact_uri: credentials in configured URIs never reach a log line (issue 15)."""

from __future__ import annotations

import pytest

from rci.core.redact import redact_uri


@pytest.mark.parametrize(
    ("uri", "redacted"),
    [
        ("http://user:pass@host:19530", "http://user:***@host:19530"),
        ("https://root:Milvus@milvus.internal:443/db?timeout=5", "https://root:***@milvus.internal:443/db?timeout=5"),
        ("s3://AKIAXXX:wJalr/Kx@minio:9000/bucket", "s3://AKIAXXX:***@minio:9000/bucket"),  # unencoded `/`
        ("http://user:p@ss@host:19530", "http://user:***@host:19530"),  # unencoded `@` in the password
        ("https://sk-live-token@host/x", "https://***@host/x"),  # user-only userinfo is often a token
        ("user:pass@host:19530", "user:***@host:19530"),  # no scheme
        ("https://b.s3.amazonaws.com/k.mp4?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc&x-id=GetObject",
         "https://b.s3.amazonaws.com/k.mp4?X-Amz-Credential=***&X-Amz-Signature=***&x-id=GetObject"),
        ("http://host:19530?token=root:Milvus", "http://host:19530?token=***"),
    ],
)
def test_credentials_are_redacted(uri: str, redacted: str) -> None:
    assert redact_uri(uri) == redacted


@pytest.mark.parametrize(
    "uri",
    ["http://milvus:19530", "/work/.rci/milvus.db", "s3://media-in/videos/a@b.mp4", "file:///media/x.mp4",
     "http://host/path?page=2&key_frame=1", "http://host:19530/path/a@b.mp4", "s3://bucket/a/b@c.mp4", ""],
)
def test_uris_without_credentials_are_unchanged(uri: str) -> None:
    assert redact_uri(uri) == uri
