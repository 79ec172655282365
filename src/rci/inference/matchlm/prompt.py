"""The two-video prompt of MatchLM (paper 3.2, appendix A.2, B.1).

    <chat open> instruction
    Video 1 text: <title 1 + sticker 1>          Video 2 text: <title 2 + sticker 2>
    Video 1: <video x n1>  Audio: <audio>
    Video 2: <video x n2>  Audio: <audio>
    [NTP only: Choose the correct option from the given options: A) Normal B) Reproduced. Answer:]
    <chat close>                                  <- last token: its final state is the pair representation

i.e. Prompt + [Video1] + [Audio1] + [Video2] + [Audio2]. `<video>` / `<audio>` are placeholder
tokens whose embeddings the model replaces (projected frames + one image newline; one audio token).
Titles and stickers are untrusted: they are tokenized with special tokens split, so a title that
says "<audio>" is text, never a slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rci.inference.matchlm.config import MatchLMConfig

CHAT_OPEN = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
CHAT_CLOSE = "<|im_end|>\n<|im_start|>assistant\n"
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")


class Tokenizer(Protocol):
    """The slice of a transformers tokenizer this module uses."""

    def __call__(self, text: str, **kwargs: object) -> object: ...

    def convert_tokens_to_ids(self, tokens: str) -> int: ...


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids the model needs, resolved once from the tokenizer."""

    pad: int
    video: int  # placeholder of projected frame tokens (the backbone's video_token_index)
    audio: int  # placeholder of the audio token
    answers: tuple[int, int]  # NTP: ids of the "Normal" and "Reproduced" choices


@dataclass(frozen=True)
class UserText:
    """Untrusted text (title, sticker): special-token strings inside stay plain text."""

    text: str


@dataclass(frozen=True)
class Slot:
    """`count` copies of a placeholder token, filled with modality embeddings by the model."""

    token_id: int
    count: int


Segment = str | UserText | Slot


def ntp_question(config: MatchLMConfig) -> str:
    normal, reproduced = config.ntp_choices
    return f"\nChoose the correct option from the given options: {normal}) Normal {reproduced}) Reproduced. Answer:"


def pair_segments(
    config: MatchLMConfig,
    tokens: SpecialTokens,
    texts: tuple[str, str],
    video_tokens: tuple[int, int],
) -> list[Segment]:
    """The prompt of one (query, candidate) pair as text pieces and placeholder slots."""
    segments: list[Segment] = [CHAT_OPEN + config.instruction]
    for i, text in enumerate(texts, start=1):
        segments += [f"\nVideo {i} text: ", UserText(text)]
    for i, n_video in enumerate(video_tokens, start=1):
        segments += [f"\nVideo {i}:", Slot(tokens.video, n_video)]
        if config.uses_audio_slot:
            segments += ["\nAudio: ", Slot(tokens.audio, 1)]
    if config.objective == "ntp":
        segments.append(ntp_question(config))
    segments.append(CHAT_CLOSE)
    return segments


def _ids(tokenizer: Tokenizer, text: str, split_special: bool) -> list[int]:
    encoded = tokenizer(text, add_special_tokens=False, split_special_tokens=split_special)
    return list(encoded["input_ids"])  # type: ignore[index]


def encode_segments(tokenizer: Tokenizer, segments: list[Segment], max_user_tokens: int) -> list[int]:
    """Token ids of the whole prompt; each UserText is cut to `max_user_tokens`."""
    ids: list[int] = []
    for segment in segments:
        if isinstance(segment, Slot):
            ids += [segment.token_id] * segment.count
        elif isinstance(segment, UserText):
            ids += _ids(tokenizer, segment.text, split_special=True)[:max_user_tokens]
        else:
            ids += _ids(tokenizer, segment, split_special=False)
    return ids


def resolve_special_tokens(tokenizer: Tokenizer, config: MatchLMConfig, video_token_id: int) -> SpecialTokens:
    """Look the ids up; raise ValueError when the tokenizer cannot express the prompt."""
    audio = tokenizer.convert_tokens_to_ids(config.audio_token)
    answers = tuple(_ids(tokenizer, choice, split_special=True) for choice in config.ntp_choices)
    if any(len(a) != 1 for a in answers):
        raise ValueError(f"NTP choices {config.ntp_choices} must each be one token, got {answers}")
    for marker in CHAT_TOKENS:
        if len(_ids(tokenizer, marker, split_special=False)) != 1:
            raise ValueError(f"tokenizer lacks the chat token {marker}")
    if len(_ids(tokenizer, config.audio_token, split_special=False)) != 1 or audio == video_token_id:
        raise ValueError(f"tokenizer lacks a distinct {config.audio_token} token")
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise ValueError("tokenizer has no pad token")
    return SpecialTokens(pad=pad, video=video_token_id, audio=audio, answers=(answers[0][0], answers[1][0]))
