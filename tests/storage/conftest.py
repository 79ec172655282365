from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rci.storage.objects import LocalObjectStore, ObjectStore, S3ObjectStore


async def open_s3_store(s3_server) -> S3ObjectStore:
    """An S3ObjectStore on a fresh bucket of the session's real S3 server."""
    store = S3ObjectStore(
        s3_server.endpoint_url, f"rci-test-{uuid.uuid4().hex[:12]}", s3_server.region,
        s3_server.access_key, s3_server.secret_key,
    )
    await store.ensure_bucket()
    return store


@pytest.fixture
async def s3_store(s3_server) -> AsyncIterator[S3ObjectStore]:
    store = await open_s3_store(s3_server)
    yield store
    await store.close()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    """Each backend in turn: the contract tests must hold for both."""
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "objects")
        return
    store = await open_s3_store(request.getfixturevalue("s3_server"))  # started only when needed
    yield store
    await store.close()
