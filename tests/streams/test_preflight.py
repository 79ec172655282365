"""The worker's start-up check (issue 15): configuration faults fail fast naming the setting; an
outage is retried and a stop ends the retries at once. S3 cases run against the real local S3 server."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import pytest

from rci.core.errors import ConfigError, ModelError
from rci.core.settings import Settings
from rci.services.ports import free_port
from rci.services.s3server import S3Server
from rci.storage.errors import StorageConfigError, StorageUnavailable
from rci.streams import preflight as preflight_module
from rci.streams.preflight import buckets_to_check, check_model_dir, check_storage, preflight
from rci.streams.retry import Stopped, until_stopped


def fake_model_dir(root: Path) -> Path:
    """The files the start-up check looks for (their contents are checked when they are loaded)."""
    for modality in ("visual", "audio", "text"):
        (root / "encoders" / modality).mkdir(parents=True)
        (root / "encoders" / modality / "encoder.json").write_text("{}")
    (root / "matchlite").mkdir()
    (root / "matchlite" / "model.onnx").write_bytes(b"")
    return root


@pytest.fixture
def no_default_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore's default chain finds nothing: no AWS_* keys, no files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def s3_settings(tmp_path: Path, endpoint: str, bucket: str, **update: object) -> Settings:
    fields: dict = dict(data_dir=tmp_path / "rci", object_store="s3", s3_endpoint_url=endpoint, s3_bucket=bucket,
                        s3_access_key_id="test", s3_secret_access_key="test")
    return Settings(**{**fields, **update})


# --- models -------------------------------------------------------------------------------------


def test_a_model_dir_without_models_names_rci_model_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, model_dir=tmp_path / "empty")
    with pytest.raises(ModelError, match="RCI_MODEL_DIR=.*empty.* has no visual, audio, text, MatchLite"):
        check_model_dir(settings)
    check_model_dir(Settings(data_dir=tmp_path, model_dir=fake_model_dir(tmp_path / "models")))


# --- S3: configuration faults -------------------------------------------------------------------


async def test_a_codec_ffmpeg_cannot_decode_fails_naming_rci_media_allowed_codecs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, media_allowed_codecs=("h264", "h265"))  # FFmpeg calls it hevc
    with pytest.raises(ConfigError, match="RCI_MEDIA_ALLOWED_CODECS: FFmpeg has no decoder for h265"):
        await preflight(settings)


def test_buckets_checked_are_the_feature_cache_and_the_media_prefixes(tmp_path: Path) -> None:
    settings = s3_settings(tmp_path, "http://127.0.0.1:1", "features",
                           media_allowed_prefixes=("file:///srv/media/", "s3://media/uploads/", "s3://features/m/"))
    assert buckets_to_check(settings) == {"features": "RCI_S3_BUCKET", "media": "RCI_MEDIA_ALLOWED_PREFIXES"}
    assert buckets_to_check(Settings(data_dir=tmp_path)) == {}  # local store, file:// media: nothing to reach


@pytest.mark.integration
async def test_missing_credentials_fail_naming_the_s3_key_settings(
    s3_server: S3Server, tmp_path: Path, no_default_credentials: None
) -> None:
    bucket = f"rci-pre-{uuid.uuid4().hex[:8]}"
    s3_server.create_bucket(bucket)
    settings = s3_settings(tmp_path, s3_server.endpoint_url, bucket, s3_access_key_id=None, s3_secret_access_key=None)
    with pytest.raises(StorageConfigError, match="RCI_S3_ACCESS_KEY_ID and RCI_S3_SECRET_ACCESS_KEY") as raised:
        await check_storage(settings)
    assert isinstance(raised.value, ConfigError)


@pytest.mark.integration
async def test_an_unknown_bucket_fails_naming_its_setting(s3_server: S3Server, tmp_path: Path) -> None:
    settings = s3_settings(tmp_path, s3_server.endpoint_url, f"rci-absent-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StorageConfigError, match="NoSuchBucket; check RCI_S3_BUCKET"):
        await check_storage(settings)

    bucket = f"rci-pre-{uuid.uuid4().hex[:8]}"
    s3_server.create_bucket(bucket)
    await check_storage(s3_settings(tmp_path, s3_server.endpoint_url, bucket))  # all there: passes
    media = s3_settings(tmp_path, s3_server.endpoint_url, bucket, media_allowed_prefixes=("s3://rci-no-media/x/",))
    with pytest.raises(StorageConfigError, match="NoSuchBucket; check RCI_MEDIA_ALLOWED_PREFIXES"):
        await check_storage(media)


@pytest.fixture(scope="module")
def checking_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, str, str]]:
    """A second S3 server that checks credentials (moto's IAM authentication, switched on after 2
    free calls, used to create one access key). Yields the server, the key id and its secret."""
    log_path = tmp_path_factory.mktemp("checking-s3") / "s3server.log"
    with S3Server(log_path=log_path) as server:
        reset = urllib.request.Request(server.endpoint_url + "/moto-api/reset-auth", data=b"2", method="POST",
                                       headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(reset, timeout=10).close()
        iam = botocore.session.get_session().create_client(
            "iam", endpoint_url=server.endpoint_url, region_name="us-east-1",
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="rci")
        key = iam.create_access_key(UserName="rci")["AccessKey"]
        iam.close()
        yield server, key["AccessKeyId"], key["SecretAccessKey"]


@pytest.mark.integration
async def test_a_refused_key_or_secret_fails_naming_it(checking_s3: tuple[S3Server, str, str], tmp_path: Path) -> None:
    server, key_id, secret = checking_s3
    unknown = s3_settings(tmp_path, server.endpoint_url, "rci-features",
                          s3_access_key_id="AKIANOSUCHKEY0000000", s3_secret_access_key=secret)
    with pytest.raises(StorageConfigError, match="InvalidAccessKeyId; check RCI_S3_ACCESS_KEY_ID"):
        await check_storage(unknown)
    wrong_secret = s3_settings(tmp_path, server.endpoint_url, "rci-features",
                               s3_access_key_id=key_id, s3_secret_access_key="not-" + secret)
    with pytest.raises(StorageConfigError, match="SignatureDoesNotMatch; check RCI_S3_SECRET_ACCESS_KEY"):
        await check_storage(wrong_secret)
    # The right key without read permission is answered AccessDenied: known to S3, so it passes
    # (a worker without ListBucket is answered that way for every missing key).
    await check_storage(s3_settings(tmp_path, server.endpoint_url, "rci-features",
                                    s3_access_key_id=key_id, s3_secret_access_key=secret))


# --- S3: an outage is retried, and a stop ends the retries ------------------------------------


async def test_an_unreachable_endpoint_is_an_outage_not_a_configuration_fault(tmp_path: Path) -> None:
    settings = s3_settings(tmp_path, f"http://127.0.0.1:{free_port('127.0.0.1')}", "rci-features")
    with pytest.raises(StorageUnavailable):
        await check_storage(settings)


async def test_start_up_retries_an_outage_until_stopped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = s3_settings(tmp_path, f"http://127.0.0.1:{free_port('127.0.0.1')}", "rci-features",
                           model_dir=fake_model_dir(tmp_path / "models"))
    attempts = 0
    real_check = preflight_module.check_storage

    async def counted(settings: Settings) -> None:
        nonlocal attempts
        attempts += 1
        await real_check(settings)

    monkeypatch.setattr(preflight_module, "check_storage", counted)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(4.0, stop.set)
    with pytest.raises(Stopped):
        await until_stopped(preflight(settings), stop)
    stopped_at = time.monotonic()
    assert attempts >= 2  # retried during the outage, not given up on
    assert time.monotonic() - stopped_at < 1.0
