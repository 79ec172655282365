"""A CPU-sized MatchLM built from scratch, in the same directory layout as the real 0.5B one.

Nothing comes from a hub: the tokenizer is a byte-level BPE trained here on a few hundred
generated sentences (so any text encodes, no unknown token), SigLIP / Qwen2 / Whisper are
random-initialised from tiny configs. Scores are meaningless until trained; shapes, the
prompt, slots, LoRA, saving and loading are exactly the real model's.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlavaOnevisionForConditionalGeneration, PreTrainedTokenizerFast, WhisperModel

from rci.inference.matchlm.config import MatchLMConfig
from rci.inference.matchlm.loader import PREPROCESSOR_FILE, WHISPER_SUBDIR, init_matchlm, save_matchlm
from rci.inference.matchlm.prompt import CHAT_CLOSE, CHAT_OPEN, ntp_question
from rci.inference.matchlm.shapes import TINY_AUDIO_DIM, tiny_backbone_config, tiny_whisper_config

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
IMAGE, VIDEO, AUDIO = "<image>", "<video>", "<audio>"
SPECIAL_TOKENS = (PAD, IM_START, IM_END, IMAGE, VIDEO, AUDIO)
TINY_VOCAB = 512

_SUBJECTS = ("cat", "dog", "chef", "drone", "street", "guitar", "match", "dance", "recipe", "car", "beach", "game")
_ACTIONS = ("plays", "cooks", "jumps", "reviews", "films", "remixes", "explains", "races", "edits", "sings")
_EXTRAS = ("in slow motion", "with subtitles", "part 2", "full video", "reupload", "original", "#fyp", "2024")


def tokenizer_corpus(config: MatchLMConfig) -> list[str]:
    """A few hundred sentences: the prompt's fixed text and title-like lines."""
    fixed = [CHAT_OPEN + config.instruction, CHAT_CLOSE, ntp_question(config), "\nVideo 1 text: ", "\nVideo 2:"]
    fixed += ["\nAudio: ", *config.ntp_choices]
    titles = [f"the {s} {a} {e}" for s, a, e in itertools.product(_SUBJECTS, _ACTIONS, _EXTRAS)]
    return fixed * 20 + titles[::3]


def build_tiny_tokenizer(config: MatchLMConfig) -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(tokenizer_corpus(config), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token=PAD,
        eos_token=IM_END,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )


def build_tiny_matchlm(out_dir: str | Path, config: MatchLMConfig | None = None, seed: int = 0) -> Path:
    """Write a complete tiny MatchLM directory (base + whisper/ + matchlm/) and return its path."""
    out = Path(out_dir)
    config = config or MatchLMConfig.tiny()
    if config.audio_dim != TINY_AUDIO_DIM:
        raise ValueError(f"the tiny Whisper is {TINY_AUDIO_DIM}-d; config.audio_dim is {config.audio_dim}")
    tokenizer = build_tiny_tokenizer(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone_config = tiny_backbone_config(
            len(tokenizer), tokenizer.convert_tokens_to_ids(IMAGE), tokenizer.convert_tokens_to_ids(VIDEO)
        )
        backbone = LlavaOnevisionForConditionalGeneration(backbone_config)
        whisper = WhisperModel(tiny_whisper_config())
    out.mkdir(parents=True, exist_ok=True)
    backbone.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / PREPROCESSOR_FILE).write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    whisper.save_pretrained(out / WHISPER_SUBDIR)
    model, _ = init_matchlm(out, config, seed=seed)
    save_matchlm(model, out, {"model_version": f"matchlm-tiny-{seed}"})
    return out
