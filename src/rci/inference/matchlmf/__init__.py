"""MatchLMF, a feature-level teacher: one transformer reads both videos' frame, audio and text
feature tokens jointly, its attention steered by the pair's frame and audio similarity maps.

    config = MatchLMFConfig()                      # hyper-parameters, saved with the weights
    model = MatchLMF(config).eval()
    out = model(build_batch([(query, candidate)], config))   # VideoFeatures pairs -> MatchLMOutput
    out.score                                      # [B] P(query reproduces candidate)

Modules: config (hyper-parameters), batch (VideoFeatures pairs -> padded tensors), layers (the biased
attention block), model (the nn.Module). Pure torch and numpy: no file or network I/O.
"""

from rci.inference.matchlmf.batch import MatchLMFBatch, build_batch, fingerprint_seconds
from rci.inference.matchlmf.config import MatchLMFConfig
from rci.inference.matchlmf.model import MatchLMF, count_parameters

__all__ = ["MatchLMF", "MatchLMFBatch", "MatchLMFConfig", "build_batch", "count_parameters", "fingerprint_seconds"]
