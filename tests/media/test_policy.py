"""MediaPolicy from RCI_MEDIA_* settings: the resource bounds and the codec allow-list."""

from __future__ import annotations

import os
from dataclasses import fields

import pytest

from rci.core.errors import ConfigError
from rci.core.settings import load_settings
from rci.media.policy import DEFAULT_CODECS, MediaPolicy, decoders_by_codec, media_policy


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("RCI_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_policy_defaults_are_the_settings_defaults() -> None:
    configured = media_policy(load_settings())
    default = MediaPolicy(configured.allowed_prefixes)
    assert configured == default  # every field, the new bounds included
    assert default.allowed_codecs == DEFAULT_CODECS
    assert {f.name for f in fields(MediaPolicy)} >= {"fetch_concurrency", "max_bytes_in_flight", "decode_timeout_s"}


def test_bounds_are_read_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_MEDIA_FETCH_CONCURRENCY", "2")
    clean_env.setenv("RCI_MEDIA_MAX_BYTES_IN_FLIGHT", "1000000")
    clean_env.setenv("RCI_MEDIA_DECODE_TIMEOUT_S", "7.5")
    clean_env.setenv("RCI_MEDIA_ALLOWED_CODECS", " h264, pcm_* ,,aac ")
    policy = media_policy(load_settings())
    assert (policy.fetch_concurrency, policy.max_bytes_in_flight, policy.decode_timeout_s) == (2, 1_000_000, 7.5)
    assert policy.allowed_codecs == ("h264", "pcm_*", "aac")
    assert policy.allows_codec("pcm_s24le") and policy.allows_codec("h264") and not policy.allows_codec("hevc")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RCI_MEDIA_FETCH_CONCURRENCY", "0"),
        ("RCI_MEDIA_MAX_BYTES_IN_FLIGHT", "0"),
        ("RCI_MEDIA_DECODE_TIMEOUT_S", "0"),
        ("RCI_MEDIA_ALLOWED_CODECS", "H.264"),
        ("RCI_MEDIA_ALLOWED_CODECS", " , "),
    ],
)
def test_bad_bounds_name_their_variable(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert name in str(caught.value)


def test_a_codec_ffmpeg_cannot_decode_is_a_config_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_MEDIA_ALLOWED_CODECS", "h264,h265")  # FFmpeg calls it hevc
    with pytest.raises(ConfigError) as caught:
        media_policy(load_settings())
    assert "RCI_MEDIA_ALLOWED_CODECS" in str(caught.value) and "h265" in str(caught.value)


def test_every_default_codec_has_a_decoder_here() -> None:
    known = decoders_by_codec()
    assert "libdav1d" in known["av1"] or "av1" in known["av1"]  # a codec maps to all of its decoders
    for codec in DEFAULT_CODECS:
        assert codec.endswith("*") or codec in known, codec
