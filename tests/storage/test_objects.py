from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rci.services.ports import free_port
from rci.core.settings import Settings
from rci.storage.errors import InvalidObjectKey, ObjectNotFound, StorageUnavailable
from rci.storage.objects import LocalObjectStore, ObjectStore, S3ObjectStore, make_object_store, validate_key

# --- the contract, for every backend ----------------------------------------------------------


async def test_put_get_exists_delete_round_trip(store: ObjectStore) -> None:
    key = "features/enc-1/video:42.npz"
    assert not await store.exists(key)
    await store.put(key, b"\x00payload\xff")
    assert await store.exists(key)
    assert await store.get(key) == b"\x00payload\xff"
    await store.delete(key)
    assert not await store.exists(key)


async def test_missing_key_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get("features/enc-1/absent.npz")


async def test_put_overwrites(store: ObjectStore) -> None:
    await store.put("a/b", b"old")
    await store.put("a/b", b"new")
    assert await store.get("a/b") == b"new"


async def test_delete_of_a_missing_key_is_fine(store: ObjectStore) -> None:
    await store.delete("never/written")
    assert not await store.exists("never/written")


async def test_empty_and_large_objects(store: ObjectStore) -> None:
    big = bytes(range(256)) * 20_000  # 5 MB
    await store.put("empty", b"")
    await store.put("big", big)
    assert await store.get("empty") == b""
    assert await store.get("big") == big


async def test_concurrent_writers_leave_one_whole_value(store: ObjectStore) -> None:
    values = [bytes([i]) * 100_000 for i in range(8)]
    await asyncio.gather(*(store.put("race", v) for v in values))
    assert await store.get("race") in values


async def test_list_keys_by_string_prefix_and_by_folder(store: ObjectStore) -> None:
    for key in ["f/e1/a.1.npz", "f/e1/a.2.npz", "f/e1/ab.1.npz", "f/e1/latest/a.key", "f/e2/a.1.npz", "g/x"]:
        await store.put(key, b"x")
    assert await store.list_keys("f/e1/a.") == ["f/e1/a.1.npz", "f/e1/a.2.npz"]
    assert await store.list_keys("f/e1/") == ["f/e1/a.1.npz", "f/e1/a.2.npz", "f/e1/ab.1.npz", "f/e1/latest/a.key"]
    assert await store.list_keys("f/", delimiter="/") == ["f/e1/", "f/e2/"]
    assert await store.list_keys("f/e1/", delimiter="/") == ["f/e1/a.1.npz", "f/e1/a.2.npz", "f/e1/ab.1.npz", "f/e1/latest/"]
    assert await store.list_keys("absent/") == [] and await store.list_keys("f/e9/a.") == []


@pytest.mark.parametrize(
    "key",
    [
        "", "/abs", "../up", "a/../b", "a//b", "a/./b", "a/", "a/..",
        "back\\slash", "tilde~tmp", "nul\x00", "sp ace", "x" * 1025,
    ],
)
@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_unsafe_keys_are_refused_before_any_io(tmp_path: Path, backend: str, key: str) -> None:
    # The S3 store points at a port nobody listens on: reaching the network would raise
    # StorageUnavailable instead, so InvalidObjectKey proves the key was refused first.
    store = (
        LocalObjectStore(tmp_path / "nothing-here")
        if backend == "local"
        else S3ObjectStore(f"http://127.0.0.1:{free_port()}", "bucket", connect_timeout_s=1, max_attempts=1)
    )
    for operation in (store.get(key), store.put(key, b"x"), store.exists(key), store.delete(key)):
        with pytest.raises(InvalidObjectKey):
            await operation
    assert not (tmp_path / "nothing-here").exists()
    await store.close()


def test_video_id_characters_are_valid_key_segments() -> None:
    assert validate_key("features/enc=1+2/A-z_0.9:x.npz")


# --- local directory ------------------------------------------------------------------------


async def test_local_writes_are_files_under_root_without_leftovers(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "root")
    await store.put("features/v1/abc.npz", b"data")
    await store.put("features/v1/abc.npz", b"data2")
    files = sorted(p.relative_to(tmp_path / "root").as_posix() for p in (tmp_path / "root").rglob("*") if p.is_file())
    assert files == ["features/v1/abc.npz"]  # no temporary files left behind
    assert (tmp_path / "root/features/v1/abc.npz").read_bytes() == b"data2"


async def test_local_symlink_out_of_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret").write_bytes(b"secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)
    store = LocalObjectStore(root)
    with pytest.raises(InvalidObjectKey):
        await store.get("escape/secret")
    with pytest.raises(InvalidObjectKey):
        await store.put("escape/planted", b"x")
    assert not (tmp_path / "outside/planted").exists()


async def test_local_key_naming_a_folder_is_not_found(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    await store.put("folder/item", b"x")
    with pytest.raises(ObjectNotFound):
        await store.get("folder")
    assert not await store.exists("folder")


async def test_local_unwritable_root_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")  # a file where the store wants a folder
    with pytest.raises(StorageUnavailable):
        await LocalObjectStore(blocker).put("a/b", b"x")


# --- S3 -------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_s3_objects_land_in_the_bucket_under_their_key(s3_store: S3ObjectStore) -> None:
    await s3_store.put("features/v1/abc.npz", b"data")
    client = await s3_store.s3.client()
    listed = await client.list_objects_v2(Bucket=s3_store.bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["features/v1/abc.npz"]


@pytest.mark.integration
async def test_s3_ensure_bucket_is_idempotent(s3_store: S3ObjectStore) -> None:
    await s3_store.put("k", b"v")
    await s3_store.ensure_bucket()
    assert await s3_store.get("k") == b"v"  # the bucket was not recreated


@pytest.mark.integration
async def test_s3_missing_bucket_reads_as_not_found(s3_server) -> None:
    store = S3ObjectStore(
        s3_server.endpoint_url, "no-such-bucket-here", s3_server.region, s3_server.access_key, s3_server.secret_key
    )
    try:
        with pytest.raises(ObjectNotFound):
            await store.get("k")
    finally:
        await store.close()


async def test_s3_unreachable_is_transient() -> None:
    store = S3ObjectStore(
        f"http://127.0.0.1:{free_port()}", "bucket", access_key="k", secret_key="s", connect_timeout_s=1, max_attempts=1
    )
    try:
        for operation in (store.get("k"), store.put("k", b"v"), store.exists("k"), store.delete("k")):
            with pytest.raises(StorageUnavailable):
                await operation
    finally:
        await store.close()


# --- factory --------------------------------------------------------------------------------


def test_factory_builds_the_configured_store(tmp_path: Path) -> None:
    local = make_object_store(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalObjectStore) and local.root == (tmp_path / "objects").resolve()
    s3 = make_object_store(
        Settings(data_dir=tmp_path, object_store="s3", s3_endpoint_url="http://127.0.0.1:9", s3_bucket="feats",
                 s3_access_key_id="id", s3_secret_access_key="secret")
    )
    assert isinstance(s3, S3ObjectStore) and s3.bucket == "feats"
    assert s3.s3.config.endpoint_url == "http://127.0.0.1:9" and s3.s3.config.secret_key == "secret"
    assert "secret" not in repr(s3.s3.config)
