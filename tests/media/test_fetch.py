from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from rci.media.decode import decode_media
from rci.media.errors import MediaRejected
from rci.media.fetch import LocalMedia, S3Media, fetch_media, parse_media_uri
from rci.media.policy import MediaPolicy, media_policy
from rci.media.synth import write_test_video
from rci.core.errors import ConfigError, RejectCode
from rci.services.ports import free_port
from rci.core.settings import Settings
from rci.storage.errors import StorageUnavailable
from rci.storage.s3 import S3Client, S3Config


async def rejected(uri: str, policy: MediaPolicy, s3: S3Client | None = None) -> RejectCode:
    with pytest.raises(MediaRejected) as caught:
        await fetch_media(uri, policy, s3)
    return caught.value.code


@pytest.fixture
def video(media_root: Path) -> Path:
    return write_test_video(media_root / "clip.mp4", duration_s=1.0, width=32, height=32)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"outside the media folder")
    return secret


# --- local files ---------------------------------------------------------------------------


async def test_allowed_local_file_is_returned_as_its_real_path(video: Path, policy: MediaPolicy) -> None:
    source = await fetch_media(video.as_uri(), policy)
    assert source == video.resolve()
    assert decode_media(source, policy).frame_mask.sum() == 1


async def test_percent_encoded_names_are_decoded(media_root: Path, policy: MediaPolicy) -> None:
    spaced = write_test_video(media_root / "my clip.mp4", duration_s=0.5, width=32, height=32)
    assert await fetch_media(spaced.as_uri(), policy) == spaced.resolve()  # as_uri() writes %20


@pytest.mark.parametrize(
    "uri",
    ["http://example.com/a.mp4", "https://example.com/a.mp4", "ftp://example.com/a.mp4",
     "data:video/mp4;base64,AAAA", "gopher://x/a", "/etc/passwd", "etc/passwd", ""],
)
async def test_other_schemes_are_refused(uri: str, policy: MediaPolicy) -> None:
    assert await rejected(uri, policy) == RejectCode.MEDIA_SCHEME_NOT_ALLOWED


async def test_etc_passwd_is_refused(policy: MediaPolicy) -> None:
    assert await rejected("file:///etc/passwd", policy) == RejectCode.MEDIA_NOT_ALLOWED


async def test_path_outside_the_prefix_is_refused(outside: Path, policy: MediaPolicy) -> None:
    assert await rejected(outside.as_uri(), policy) == RejectCode.MEDIA_NOT_ALLOWED


async def test_sibling_folder_sharing_the_prefix_text_is_refused(media_root: Path, policy: MediaPolicy) -> None:
    sibling = media_root.parent / (media_root.name + "-private")
    sibling.mkdir()
    clip = write_test_video(sibling / "c.mp4", duration_s=0.5, width=32, height=32)
    assert await rejected(clip.as_uri(), policy) == RejectCode.MEDIA_NOT_ALLOWED


@pytest.mark.parametrize("dots", ["..", "%2e%2e", "%2E%2e", "./.."])
async def test_dot_dot_traversal_is_refused(media_root: Path, outside: Path, policy: MediaPolicy, dots: str) -> None:
    uri = f"{media_root.as_uri()}/{dots}/{outside.name}"  # names a file that exists, outside the prefix
    assert await rejected(uri, policy) == RejectCode.MEDIA_NOT_ALLOWED


async def test_dot_dot_staying_inside_is_refused_too(video: Path, media_root: Path, policy: MediaPolicy) -> None:
    uri = f"{media_root.as_uri()}/../{media_root.name}/{video.name}"
    assert await rejected(uri, policy) == RejectCode.MEDIA_NOT_ALLOWED


async def test_symlink_escaping_the_prefix_is_refused(media_root: Path, outside: Path, policy: MediaPolicy) -> None:
    link = media_root / "innocent.mp4"
    link.symlink_to(outside)
    assert await rejected(link.as_uri(), policy) == RejectCode.MEDIA_NOT_ALLOWED


async def test_symlinked_folder_escaping_the_prefix_is_refused(
    media_root: Path, outside: Path, policy: MediaPolicy
) -> None:
    (media_root / "shared").symlink_to(outside.parent, target_is_directory=True)
    assert await rejected(f"{media_root.as_uri()}/shared/{outside.name}", policy) == RejectCode.MEDIA_NOT_ALLOWED


async def test_symlink_staying_inside_the_prefix_is_fine(video: Path, media_root: Path, policy: MediaPolicy) -> None:
    link = media_root / "alias.mp4"
    link.symlink_to(video)
    assert await fetch_media(link.as_uri(), policy) == video.resolve()


async def test_prefix_that_is_itself_a_symlink_works(video: Path, tmp_path: Path) -> None:
    linked_root = tmp_path / "linked"
    linked_root.symlink_to(video.parent, target_is_directory=True)
    policy = MediaPolicy(allowed_prefixes=(linked_root.as_uri() + "/",))
    assert await fetch_media(f"{linked_root.as_uri()}/{video.name}", policy) == video.resolve()


@pytest.mark.parametrize("suffix", ["?x=1", "#frag"])
async def test_query_and_fragment_are_refused(video: Path, policy: MediaPolicy, suffix: str) -> None:
    assert await rejected(video.as_uri() + suffix, policy) == RejectCode.MEDIA_NOT_ALLOWED


async def test_file_uri_with_a_host_is_refused(video: Path, policy: MediaPolicy) -> None:
    assert await rejected(f"file://evil.example{video}", policy) == RejectCode.MEDIA_NOT_ALLOWED


async def test_missing_file_is_not_found(media_root: Path, policy: MediaPolicy) -> None:
    assert await rejected(f"{media_root.as_uri()}/nope.mp4", policy) == RejectCode.MEDIA_NOT_FOUND


async def test_directory_or_fifo_is_refused(media_root: Path, policy: MediaPolicy) -> None:
    (media_root / "folder").mkdir()
    os.mkfifo(media_root / "pipe")  # reading a FIFO would block the worker forever
    assert await rejected(f"{media_root.as_uri()}/folder", policy) == RejectCode.MEDIA_NOT_ALLOWED
    assert await rejected(f"{media_root.as_uri()}/pipe", policy) == RejectCode.MEDIA_NOT_ALLOWED


async def test_zero_byte_file_is_empty(media_root: Path, policy: MediaPolicy) -> None:
    (media_root / "empty.mp4").write_bytes(b"")
    assert await rejected(f"{media_root.as_uri()}/empty.mp4", policy) == RejectCode.MEDIA_EMPTY


async def test_file_over_max_bytes_is_too_large_before_reading(video: Path, policy: MediaPolicy) -> None:
    small = replace(policy, max_bytes=video.stat().st_size - 1)
    assert await rejected(video.as_uri(), small) == RejectCode.MEDIA_TOO_LARGE
    assert await fetch_media(video.as_uri(), replace(policy, max_bytes=video.stat().st_size)) == video.resolve()


# --- the decision is made before any I/O ----------------------------------------------------


def test_parse_decides_without_touching_the_filesystem(tmp_path: Path) -> None:
    policy = MediaPolicy(allowed_prefixes=("file:///no/such/root/", "s3://media-in/videos/"))
    assert parse_media_uri("file:///no/such/root/a/b.mp4", policy) == LocalMedia(
        path=Path("/no/such/root/a/b.mp4"), root=Path("/no/such/root")
    )
    assert parse_media_uri("s3://media-in/videos/x.mp4", policy) == S3Media("media-in", "videos/x.mp4")


@pytest.mark.parametrize(
    "uri",
    ["s3://other-bucket/videos/x.mp4", "s3://media-in/private/x.mp4", "s3://media-in/videos-old/x.mp4",
     "s3://media-in/videos/../private/x.mp4", "s3://media-in/", "s3://Media-In/videos/x.mp4"],
)
async def test_s3_outside_the_allowed_bucket_or_folder_is_refused_without_a_client(uri: str) -> None:
    policy = MediaPolicy(allowed_prefixes=("s3://media-in/videos/",))
    assert await rejected(uri, policy, s3=None) == RejectCode.MEDIA_NOT_ALLOWED


async def test_s3_is_refused_when_no_s3_prefix_is_configured(policy: MediaPolicy) -> None:
    assert await rejected("s3://media-in/videos/x.mp4", policy) == RejectCode.MEDIA_SCHEME_NOT_ALLOWED


async def test_allowed_s3_without_a_client_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        await fetch_media("s3://media-in/x.mp4", MediaPolicy(allowed_prefixes=("s3://media-in",)), s3=None)


def test_policy_comes_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, media_max_bytes=123, media_max_frames=5)
    policy = media_policy(settings)
    assert policy.allowed_prefixes == ((tmp_path / "media").absolute().as_uri() + "/",)
    assert (policy.max_bytes, policy.max_frames) == (123, 5)


# --- S3, against a real S3 server -----------------------------------------------------------

BUCKET = "media-in"


@pytest.fixture
async def s3(s3_server) -> AsyncIterator[S3Client]:
    config = S3Config(s3_server.endpoint_url, s3_server.region, s3_server.access_key, s3_server.secret_key)
    async with S3Client(config) as client:
        yield client


@pytest.fixture
async def uploaded(s3: S3Client, tmp_path: Path) -> dict[str, bytes]:
    """Objects in the media bucket: a real clip, an empty object, and one in a folder that is not allowed."""
    objects = {
        "videos/clip.mp4": write_test_video(tmp_path / "c.mp4", duration_s=1.0, width=32, height=32).read_bytes(),
        "videos/empty.mp4": b"",
        "private/clip.mp4": b"not for us",
    }
    client = await s3.client()
    try:
        await client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    for key, data in objects.items():
        await client.put_object(Bucket=BUCKET, Key=key, Body=data)
    return objects


S3_POLICY = MediaPolicy(allowed_prefixes=(f"s3://{BUCKET}/videos/",), max_frames=4)


@pytest.mark.integration
async def test_s3_media_is_fetched_and_decodes(s3: S3Client, uploaded: dict[str, bytes]) -> None:
    data = await fetch_media(f"s3://{BUCKET}/videos/clip.mp4", S3_POLICY, s3)
    assert data == uploaded["videos/clip.mp4"]
    assert decode_media(data, S3_POLICY).frame_mask.sum() == 1


@pytest.mark.integration
async def test_s3_missing_key_is_not_found(s3: S3Client, uploaded: dict[str, bytes]) -> None:
    assert await rejected(f"s3://{BUCKET}/videos/nope.mp4", S3_POLICY, s3) == RejectCode.MEDIA_NOT_FOUND


@pytest.mark.integration
async def test_s3_empty_and_oversized_objects_are_refused(s3: S3Client, uploaded: dict[str, bytes]) -> None:
    assert await rejected(f"s3://{BUCKET}/videos/empty.mp4", S3_POLICY, s3) == RejectCode.MEDIA_EMPTY
    tight = replace(S3_POLICY, max_bytes=len(uploaded["videos/clip.mp4"]) - 1)
    assert await rejected(f"s3://{BUCKET}/videos/clip.mp4", tight, s3) == RejectCode.MEDIA_TOO_LARGE


@pytest.mark.integration
async def test_s3_object_outside_the_allowed_folder_is_refused(s3: S3Client, uploaded: dict[str, bytes]) -> None:
    assert await rejected(f"s3://{BUCKET}/private/clip.mp4", S3_POLICY, s3) == RejectCode.MEDIA_NOT_ALLOWED


async def test_unreachable_s3_is_transient() -> None:
    dead = S3Config(
        f"http://127.0.0.1:{free_port()}", access_key="k", secret_key="s", connect_timeout_s=1, max_attempts=1
    )
    async with S3Client(dead) as client:
        with pytest.raises(StorageUnavailable):
            await fetch_media(f"s3://{BUCKET}/videos/clip.mp4", S3_POLICY, client)

