"""Batched MatchLite scoring: one interface, an ONNX Runtime and a torch implementation.

    scorer = make_scorer("onnx", "model.onnx")            # or "torch", "ckpt.pt"
    scores = scorer.score_batch([(query, candidate), ...])  # list[PairScore], same order

Both share `collate_pairs`, which stacks VideoFeatures into the model's input arrays and trims
frames / tokens to the longest real ones in the batch (a 6 s video needs a 6 x N grid, not
32 x N). MatchLite keeps padded cells at zero, so a pair's score does not depend on its batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import onnxruntime as ort
import torch

from rci.inference.checkpoint import load_checkpoint
from rci.inference.evidence import EvidenceParams, matched_segments
from rci.inference.features import VideoFeatures
from rci.inference.matchlite import INPUT_NAMES, MatchLiteConfig
from rci.inference.onnx_export import OUTPUT_NAMES, read_metadata
from rci.inference.ort_session import Device, open_session, resolve_device, session_device
from rci.core.errors import ConfigError, ModelError
from rci.core.logs import get_logger
from rci.media.fingerprint import second_similarity

log = get_logger(__name__)

Pair = tuple[VideoFeatures, VideoFeatures]  # (query, candidate)


class InvalidFeatures(ModelError):
    """A pair's features do not fit the model (wrong widths, too long, not finite)."""


@dataclass(frozen=True)
class PairScore:
    score: float  # P(query reproduces candidate), in [0, 1]
    matched_segments: list[list[float]] = field(default_factory=list)  # [qs, qe, cs, ce] seconds
    embedding: np.ndarray | None = None  # [d] pair embedding z


class PairScorer(Protocol):
    """Scores batches of (query, candidate) pairs synchronously (call it off the event loop)."""

    config: MatchLiteConfig
    model_version: str
    threshold: float

    def check_pair(self, query: VideoFeatures, candidate: VideoFeatures) -> None:
        """Raise InvalidFeatures if the pair cannot be scored by this model."""
        ...

    def score_batch(self, pairs: Sequence[Pair]) -> list[PairScore]: ...


# --- shared by every implementation ---------------------------------------------------------


def check_features(features: VideoFeatures, config: MatchLiteConfig) -> None:
    """Raise InvalidFeatures naming the video and the problem."""
    problems = []
    m = features.visual.shape[0] if features.visual.ndim == 2 else -1
    length = features.text.shape[0] if features.text.ndim == 2 else -1
    if features.visual.shape != (m, config.visual_dim) or not 0 < m <= config.max_frames:
        problems.append(f"visual {features.visual.shape}, expected [1..{config.max_frames}, {config.visual_dim}]")
    if features.visual_views != config.visual_views:
        problems.append(f"{features.visual_views} views per frame, expected {config.visual_views}")
    if features.visual_mask.shape != (m,):
        problems.append(f"visual_mask {features.visual_mask.shape}, expected [{m}]")
    if features.audio.shape != (config.audio_dim,):
        problems.append(f"audio {features.audio.shape}, expected [{config.audio_dim}]")
    if features.text.shape != (length, config.text_dim) or not 0 < length <= config.text_tokens:
        problems.append(f"text {features.text.shape}, expected [1..{config.text_tokens}, {config.text_dim}]")
    if features.text_mask.shape != (length,):
        problems.append(f"text_mask {features.text_mask.shape}, expected [{length}]")
    fingerprint = np.asarray(features.audio_fingerprint)
    if fingerprint.dtype != np.uint32 or fingerprint.ndim != 1:
        problems.append(f"audio_fingerprint {fingerprint.dtype} {fingerprint.shape}, expected uint32 [T]")
    for name in ("visual", "audio", "text"):
        if not np.isfinite(getattr(features, name)).all():
            problems.append(f"{name} has NaN or infinite values")
    if problems:
        raise InvalidFeatures(f"video {features.video_id!r}: " + "; ".join(problems))


def check_pair(query: VideoFeatures, candidate: VideoFeatures, config: MatchLiteConfig) -> None:
    check_features(query, config)
    check_features(candidate, config)


def _used_length(masks: Sequence[np.ndarray]) -> int:
    """Length covering the last True of every mask (at least 1, so every grid has a cell)."""
    last = [int(np.flatnonzero(m)[-1]) + 1 for m in masks if m.any()]
    return max(last, default=1)


def _stack_side(videos: Sequence[VideoFeatures], prefix: str) -> dict[str, np.ndarray]:
    frames = _used_length([v.visual_mask for v in videos])
    tokens = _used_length([v.text_mask for v in videos])
    visual = np.zeros((len(videos), frames, videos[0].visual.shape[1]), np.float32)
    visual_mask = np.zeros((len(videos), frames), bool)
    text = np.zeros((len(videos), tokens, videos[0].text.shape[1]), np.float32)
    text_mask = np.zeros((len(videos), tokens), bool)
    for b, v in enumerate(videos):
        fm, tm = v.visual_mask[:frames].astype(bool), v.text_mask[:tokens].astype(bool)
        visual_mask[b, : len(fm)], text_mask[b, : len(tm)] = fm, tm
        visual[b, : len(fm)] = np.where(fm[:, None], v.visual[:frames], 0.0)  # masked rows are zero
        text[b, : len(tm)] = np.where(tm[:, None], v.text[:tokens], 0.0)
    has_audio = np.array([v.has_audio for v in videos], bool)
    audio = np.stack([v.audio for v in videos]).astype(np.float32) * has_audio[:, None]
    return {
        f"{prefix}_visual": visual,  # [B,M,Dv]
        f"{prefix}_visual_mask": visual_mask,  # [B,M]
        f"{prefix}_audio": audio,  # [B,Da]
        f"{prefix}_has_audio": has_audio,  # [B]
        f"{prefix}_text": text,  # [B,L,Dt]
        f"{prefix}_text_mask": text_mask,  # [B,L]
    }


def _audio_maps(pairs: Sequence[Pair], m: int, n: int) -> np.ndarray:
    """[B,M,N] Chromaprint per-second agreement of each pair (0 where either video has no audio)."""
    out = np.zeros((len(pairs), m, n), np.float32)
    for b, (query, candidate) in enumerate(pairs):
        out[b] = second_similarity(query.audio_fingerprint, candidate.audio_fingerprint, m, n)
    return out


def collate_pairs(pairs: Sequence[Pair]) -> dict[str, np.ndarray]:
    """Stack pairs into the model inputs (INPUT_NAMES), trimmed to the batch's real lengths."""
    if not pairs:
        raise ValueError("collate_pairs needs at least one pair")
    arrays = _stack_side([q for q, _ in pairs], "q") | _stack_side([c for _, c in pairs], "c")
    arrays["audio_map"] = _audio_maps(pairs, arrays["q_visual"].shape[1], arrays["c_visual"].shape[1])
    return {name: arrays[name] for name in INPUT_NAMES}


def _pair_scores(
    pairs: Sequence[Pair],
    batch: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    evidence: EvidenceParams,
) -> list[PairScore]:
    """Model outputs -> one PairScore per pair, with matched segments from S^v."""
    results = []
    for b, (query, candidate) in enumerate(pairs):
        segments = matched_segments(
            outputs["visual_similarity"][b],
            batch["q_visual_mask"][b],
            batch["c_visual_mask"][b],
            evidence,
            query_duration_s=query.duration_s,
            candidate_duration_s=candidate.duration_s,
        )
        score = float(np.clip(outputs["score"][b], 0.0, 1.0))
        results.append(PairScore(score=score, matched_segments=segments, embedding=outputs["embedding"][b].copy()))
    return results


def cuda_available() -> bool:
    return torch.cuda.is_available()


# --- ONNX Runtime -------------------------------------------------------------------------------


class OnnxPairScorer:
    """MatchLite exported by `rci export`, on ONNX Runtime (CUDA EP when available, else CPU EP)."""

    def __init__(
        self,
        model_path: str | Path,
        device: Device = "auto",
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        evidence: EvidenceParams = EvidenceParams(),
    ) -> None:
        self._evidence = evidence
        self._session = open_session(model_path, device, intra_op_threads, inter_op_threads)
        self.config, meta = read_metadata(self._session)
        self.model_version: str = meta["model_version"]
        self.threshold: float = meta["threshold"]
        self._inputs = {i.name for i in self._session.get_inputs()}  # unused inputs are pruned
        self._device = session_device(self._session)
        log.info(
            "onnx scorer ready",
            model=str(model_path),
            providers=self._session.get_providers(),
            precision=meta["precision"],
            model_version=self.model_version,
        )

    @property
    def device(self) -> str:
        return self._device

    def check_pair(self, query: VideoFeatures, candidate: VideoFeatures) -> None:
        check_pair(query, candidate, self.config)

    def score_batch(self, pairs: Sequence[Pair]) -> list[PairScore]:
        batch = collate_pairs(pairs)
        binding = self._session.io_binding()
        for name in self._inputs:  # one host->device copy per input per batch
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(batch[name], self._device, 0))
        for name in OUTPUT_NAMES:
            binding.bind_output(name, self._device, 0)
        self._session.run_with_iobinding(binding)
        outputs = dict(zip(OUTPUT_NAMES, binding.copy_outputs_to_cpu(), strict=True))
        return _pair_scores(pairs, batch, outputs, self._evidence)


# --- torch ---------------------------------------------------------------------------------------


class TorchPairScorer:
    """MatchLite from a checkpoint in torch; fp16/bf16 autocast on CUDA."""

    def __init__(
        self,
        checkpoint: str | Path,
        device: Device = "auto",
        dtype: Literal["fp32", "fp16", "bf16"] = "fp32",
        evidence: EvidenceParams = EvidenceParams(),
    ) -> None:
        self._device = torch.device(resolve_device(device))
        if dtype != "fp32" and self._device.type != "cuda":
            raise ConfigError(f"dtype {dtype} needs a CUDA device; use fp32 on CPU")
        self._autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype)
        self._evidence = evidence
        model, meta = load_checkpoint(checkpoint)
        self._model = model.to(self._device).eval()
        self.config: MatchLiteConfig = model.config
        self.model_version: str = meta["model_version"]
        self.threshold: float = meta["threshold"]
        log.info("torch scorer ready", checkpoint=str(checkpoint), device=str(self._device), dtype=dtype)

    @property
    def device(self) -> str:
        return self._device.type

    def check_pair(self, query: VideoFeatures, candidate: VideoFeatures) -> None:
        check_pair(query, candidate, self.config)

    @torch.inference_mode()
    def score_batch(self, pairs: Sequence[Pair]) -> list[PairScore]:
        batch = collate_pairs(pairs)
        inputs = {k: torch.from_numpy(v).to(self._device, non_blocking=True) for k, v in batch.items()}
        autocast = torch.autocast(self._device.type, self._autocast) if self._autocast else contextlib.nullcontext()
        with autocast:
            out = self._model(inputs)
        outputs = {
            "score": out.score.float().cpu().numpy(),
            "embedding": out.embedding.float().cpu().numpy(),
            "visual_similarity": out.visual_similarity.float().cpu().numpy(),
        }
        return _pair_scores(pairs, batch, outputs, self._evidence)


def make_scorer(
    kind: Literal["onnx", "torch"],
    path: str | Path,
    device: Device = "auto",
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32",
) -> PairScorer:
    """The scorer for RCI_RUNTIME: `path` is an .onnx file (onnx) or a checkpoint (torch)."""
    if kind == "onnx":
        return OnnxPairScorer(path, device, intra_op_threads, inter_op_threads)
    if kind == "torch":
        return TorchPairScorer(path, device, dtype)
    raise ConfigError(f"unknown runtime {kind!r}: expected 'onnx' or 'torch'")
