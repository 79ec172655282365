"""Device choice, batching and config (de)serialisation shared by every encoder."""

from __future__ import annotations

import pytest
import torch

from rci.inference.encoders.base import batches, config_from_dict, pick_device
from rci.inference.encoders.visual import VisualEncoderConfig
from rci.core.errors import ConfigError, ModelError


def test_pick_device_auto_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected
    assert pick_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_pick_device_cuda_without_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="no CUDA"):
        pick_device("cuda")


def test_pick_device_rejects_unknown_names():
    with pytest.raises(ConfigError):
        pick_device("tpu")


@pytest.mark.parametrize(("n", "size"), [(0, 3), (1, 3), (7, 3), (9, 3), (5, 10)])
def test_batches_cover_the_range_once_in_order(n, size):
    parts = list(batches(n, size))
    covered = [i for part in parts for i in range(n)[part]]
    assert covered == list(range(n))
    assert all(part.stop - part.start <= size for part in parts)


def test_config_round_trips_through_json_types():
    config = VisualEncoderConfig.small()
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()}
    assert config_from_dict(VisualEncoderConfig, as_json) == config


def test_config_with_unknown_fields_is_refused():
    with pytest.raises(ModelError, match="unknown fields"):
        config_from_dict(VisualEncoderConfig, {"image_size": 224, "from_the_future": 1})


def test_visual_config_refuses_stages_smaller_than_the_window():
    with pytest.raises(ValueError, match="smaller than window_size"):
        VisualEncoderConfig(image_size=112, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))


def test_paper_visual_config_is_swin_t():
    c = VisualEncoderConfig.paper()
    assert (c.image_size, c.embed_dim, c.depths, c.num_heads, c.out_dim) == (224, 96, (2, 2, 6, 2), (3, 6, 12, 24), 128)
    assert c.hidden_size == 768
