"""Does each modality help where it decides the label? MatchLite V, V+A, V+T and V+A+T on real-media pairs
where only the sound or only the text tells a reproduction from a normal upload (the paper's claim (a) and
its Figure 4 subsets), with at least 100 reproduced pairs per subset.

    python -m benchmarks.bench_modalities                                        # 100 sources per subset
    python -m benchmarks.bench_modalities --sources 12 --epochs 3 --no-record    # a quick look

1. The serving models of `rci demo` (trained once into the work dir, or `--model-dir`): their encoders,
   their generated corpus and the real-media training pool, encoded.
2. The modality set (rci.training.realset.modalities) from the benchmark's pools (photos, music and voices
   that no training or threshold pair uses), rendered once under the pool's cache dir and encoded with the
   serving encoders once per model dir: per subset, `--sources` sources, each with a reproduced and a
   normal pair over a template picture that both sides share.
3. The four variants trained by the serving recipe (rci.training.serving.train_serving_head) on the
   served student's pairs; each scored by its head (the served calibration adds the frame-set similarity,
   the same for every variant, so the head is what a modality changes).
4. Per subset and variant: AP, R@P80 and the mean score of the reproduced and the normal pairs; the
   difference the modality makes (V+A minus V on the audio-dependent subset, V+T minus V on the
   text-dependent one, V+A+T minus V on both) with its 95% paired bootstrap interval.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.bench_teacher import METRICS, MODALITY_ID_PREFIX, compare, serving_models
from benchmarks.record import markdown_table, publish
from rci.core.settings import Settings
from rci.inference.encoders.extract import FeatureExtractor
from rci.media.policy import media_policy
from rci.training.corpus.manifest import CorpusManifest
from rci.training.data import PairDataset
from rci.training.evaluate import matchlite_forward, predict
from rci.training.realpairs import modality_pairs
from rci.training.realset.pools import BENCH
from rci.training.realset.modalities import AUDIO_SUBSET, TEXT_SUBSET
from rci.training.serving import ServingRecipe, serving_extractor, serving_training_pairs, train_serving_head
from rci.training.stage1 import VARIANTS

RESULTS = Path(__file__).parent / "results"
# the modality that decides each subset, and the variant that adds it to the visual-only one
DECIDES = {AUDIO_SUBSET: "V+A", TEXT_SUBSET: "V+T"}


def variant_scores(model_dir: Path, extractor: FeatureExtractor, recipe: ServingRecipe, test: PairDataset,
                   ) -> tuple[dict[str, np.ndarray], int, float]:  # fmt: skip
    """Each variant's head score on the test pairs; the training pairs' count; seconds of training."""
    policy = media_policy(Settings())
    manifest = CorpusManifest.load(model_dir / "training-corpus")
    examples, features, _ = serving_training_pairs(model_dir, manifest, extractor, policy, recipe, progress=False)
    train = PairDataset(examples, features)
    started, scores = time.monotonic(), {}
    for variant in VARIANTS:
        model = train_serving_head(model_dir, manifest, extractor, policy, recipe, train, variant, progress=False)
        scores[variant] = predict(matchlite_forward(model), test).scores
        print(f"{variant}: trained and scored", flush=True)
    return scores, len(examples), time.monotonic() - started


def tables(scores: dict[str, np.ndarray], labels: np.ndarray, subsets: np.ndarray) -> tuple[str, list[list[object]]]:
    """Per-variant figures per subset (markdown) and the modality comparisons' rows."""
    rows = []
    for subset in (AUDIO_SUBSET, TEXT_SUBSET):
        keep = subsets == subset
        y = labels[keep]
        for variant, s in scores.items():
            rows.append([subset, variant, *(f"{100 * metric(s[keep], y):.1f}" for metric in METRICS.values()),
                         f"{s[keep][y == 1].mean():.3f}", f"{s[keep][y == 0].mean():.3f}"])  # fmt: skip
    per_variant = markdown_table(["subset", "variant", *METRICS, "mean score: reproduced", "normal"], rows)
    comparisons = []
    for subset, with_it in DECIDES.items():
        keep = subsets == subset
        for candidate in dict.fromkeys((with_it, "V+A+T")):
            comparisons += [[subset, f"{candidate} vs V", *row] for row in compare(scores["V"], scores[candidate], labels, keep)]
    return per_variant, comparisons


def run(args: argparse.Namespace) -> tuple[str, dict]:
    started = time.monotonic()
    model_dir = serving_models(args.model_dir)
    recipe = replace(ServingRecipe(), epochs=args.epochs) if args.epochs else ServingRecipe()
    extractor = serving_extractor(model_dir, recipe)
    test, subsets, info = modality_pairs(model_dir, extractor, media_policy(Settings()), BENCH, sources=args.sources,
                                         seed=args.seed, id_prefix=MODALITY_ID_PREFIX, split="test", jobs=args.jobs)
    set_s = time.monotonic() - started
    scores, train_pairs, train_s = variant_scores(model_dir, extractor, recipe, test)
    labels = test.labels
    per_variant, comparisons = tables(scores, labels, subsets)
    counts = {s: (int((subsets == s).sum()), int(labels[subsets == s].sum())) for s in (AUDIO_SUBSET, TEXT_SUBSET)}
    body = (
        f"Held-out: the modality set of the bench pools (seed {args.seed}; {info['templates']} template photos, "
        f"{info['per_template']} sources each): audio-dependent {counts[AUDIO_SUBSET][0]} pairs "
        f"({counts[AUDIO_SUBSET][1]} reproduced), text-dependent {counts[TEXT_SUBSET][0]} "
        f"({counts[TEXT_SUBSET][1]} reproduced). Each variant MatchLite small, trained by the serving recipe "
        f"({recipe.epochs} epochs) on the served student's {train_pairs} training pairs; its head's score. Percent.\n\n"
        + per_variant
        + "\n\nWhat the deciding modality adds (base = V; the difference with its 95% paired bootstrap interval):\n\n"
        + markdown_table(["subset", "comparison", "metric", "V (base)", "with it", "difference [95% CI]"], comparisons)
        + f"\n\nTime: the set rendered and encoded {set_s:.0f} s (render {info.get('render_s', 0):.0f} s when first "
        f"built), the four variants trained {train_s:.0f} s; whole run {time.monotonic() - started:.0f} s."
    )
    summary = {"counts": counts, "comparisons": comparisons, "train_pairs": train_pairs, "set": info,
               "train_s": train_s}  # fmt: skip
    return body, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sources", type=int, default=100, help="sources per subset: one reproduced and one normal pair each")
    p.add_argument("--seed", type=int, default=0, help="the modality set's seed")
    p.add_argument("--epochs", type=int, default=0, help="training epochs per variant (default: the serving recipe's)")
    p.add_argument("--jobs", type=int, default=2, help="render processes")
    p.add_argument("--model-dir", type=Path, default=None, help="serving models whose encoders and training pairs "
                   "to use (default: trained once under ~/.cache/rci/bench_teacher)")
    p.add_argument("--no-record", action="store_true", help="print only: nothing is written under benchmarks/")
    args = p.parse_args()
    body, summary = run(args)
    publish("Modalities where they decide, on held-out real media (benchmarks.bench_modalities)", body,
            dry_run=args.no_record)
    if not args.no_record:
        (RESULTS / "modalities.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
