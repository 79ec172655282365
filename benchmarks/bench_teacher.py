"""The feature-level teacher MatchLMF against the MatchLite the worker serves, on held-out real media.

    python -m benchmarks.bench_teacher                      # this machine's scale: ~35 minutes on 2 cores
    python -m benchmarks.bench_teacher --scale paper        # twice the held-out pairs, longer training
    python -m benchmarks.bench_teacher --size tiny --epochs 2 --seeds 0 --modality-sources 8 --teacher-sources 8 \
        --unlabelled-sources 8 --distil-epochs 1 --no-record                # a quick look

1. The serving models of `rci demo` (trained once into the work dir, or `--model-dir`): the student.
2. MatchLMF trained on the pairs and features the student learned from, with the student's background
   (rci.training.matchlmf.install_feature_teacher: the multi-task loss, the same labels: the generated
   corpus's and the real-media training pool's), plus what only the teacher is taught: the training
   pool's modality set (`--teacher-sources`; rci.training.realset.modalities: same template picture,
   only the voice-over's words or the caption decide), labelled. Its threshold is chosen on the real
   validation pairs; it is installed in the model dir, where `rci shadow` serves it.
3. Held-out pairs from the benchmark's pools (rci.training.realset: photos, music and voices that neither
   model nor the student's threshold ever saw): the bench sets as the worker would score them
   (rci.training.realpairs.pairs_as_served: each later upload with its most similar earlier originals,
   plus each copy with its source and each template with the original it borrows from), and the bench
   pools' modality set (`--modality-sources`), its audio- and text-dependent subsets.
4. Both scored on every pair; AP and R@P80 with the teacher-minus-student difference and its 95% paired,
   label-stratified bootstrap interval (rci.training.report.bootstrap_delta), on all held-out pairs, the
   served ones, their hard copies against every negative, and each modality subset; and the cost per pair
   (FLOPs counted by torch, CPU ms at batch 16).
5. Stage 2 from the served student with the teacher's logits and pair embeddings (rci.training.distill,
   lambda 1.5) and its lambda-0 control (same schedule and pairs, L_class only), each recalibrated on the
   validation sets as the serving recipe does; distilled minus control, paired. The pairs: the student's,
   plus unlabelled ones the teacher scores (`--unlabelled-sources`: another seed of the training pool's
   modality set, labels dropped), as a platform's own traffic would be: there only the teacher teaches.

The student's score is the served, calibrated one; the teacher's is its softmax (it is not calibrated).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.bench_cost import cost_per_pair
from benchmarks.record import markdown_table, publish
from rci.core.settings import Settings
from rci.inference.checkpoint import load_checkpoint
from rci.inference.encoders.extract import FeatureExtractor
from rci.inference.matchlmf.config import MatchLMFConfig
from rci.inference.matchlite import MatchLite
from rci.inference.matchlmf.loader import load_matchlmf
from rci.inference.matchlmf.batch import MatchLMFBatch
from rci.inference.matchlmf.model import MatchLMF
from rci.inference.model_dir import matchlmf_checkpoint
from rci.media.policy import MediaPolicy, media_policy
from rci.training.corpus.manifest import CorpusManifest
from rci.training.data import PairDataset, collate_batch, join_pairs
from rci.training.evaluate import matchlite_forward, predict
from rci.training.loop import TrainConfig
from rci.training.matchlmf import TEACHER_MODALITY_SOURCES, MatchLMFCollate, install_feature_teacher, predict_matchlmf
from rci.training.metrics import average_precision
from rci.training.realpairs import RealValidation, modality_pairs, realmedia_pairs
from rci.training.realset.modalities import AUDIO_SUBSET, TEXT_SUBSET
from rci.training.realset.pools import BENCH
from rci.training.report import bootstrap_delta, recall_at_p80
from rci.training.serving import CalibrationSets, ServingRecipe, calibration_sets, serving_extractor, serving_training_pairs
from rci.training.serving_distil import DISTIL_EPOCHS, UNLABELLED_SEED, UNLABELLED_SOURCES, distil_served, with_unlabelled
from rci.streams.shadow.logic import agreement

WORK_DIR = Path.home() / ".cache" / "rci" / "bench_teacher"
RESULTS = Path(__file__).parent / "results"
SIZES = {"tiny": MatchLMFConfig.tiny(), "small": MatchLMFConfig(d_model=128, layers=4, heads=4, embedding_dim=128),
         "default": MatchLMFConfig()}  # fmt: skip
METRICS = {"AP": average_precision, "R@P80": recall_at_p80}
MODALITY_ID_PREFIX = "modal-"  # the bench pools' modality set's ids (bench_modalities encodes it under the same)


def serving_models(model_dir: Path | None) -> Path:
    """The demo's serving models: `model_dir` as given, else trained once under the work dir."""
    from rci.cli.demo import prepare_models

    if model_dir is not None:
        return model_dir
    model_dir = WORK_DIR / "demo-models"
    prepare_models(model_dir, media_policy(Settings(data_dir=WORK_DIR / "demo-data")), progress=True)
    return model_dir


def heldout(model_dir: Path, extractor: FeatureExtractor, policy: MediaPolicy, seeds: list[int], set_size: str,
            modality_sources: int) -> tuple[PairDataset, np.ndarray]:  # fmt: skip
    """The bench pools' sets as served pairs (all seeds together), then the bench pools' modality set; and
    each pair's group: its query's kind (easy, hard, unrelated, template) or its modality subset."""
    served, groups = [], []
    for seed in seeds:
        real: RealValidation = realmedia_pairs(model_dir, extractor, policy, BENCH, set_size, seed=seed,
                                               id_prefix=f"bench{seed}-")  # fmt: skip
        kind_of = {q.video_id: q.kind for q in real.queries}
        served.append(PairDataset(real.examples, real.features))
        groups += [kind_of[e.query_id] for e in real.examples]
    if modality_sources:
        modal, subsets, _ = modality_pairs(model_dir, extractor, policy, BENCH, sources=modality_sources, seed=0,
                                           id_prefix=MODALITY_ID_PREFIX, split="test")  # fmt: skip
        served.append(modal)
        groups += list(subsets)
    return join_pairs(*served), np.array(groups)


def pair_groups(groups: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of the comparison: every held-out pair, the served ones, their hard copies against the
    served negatives, and each modality subset present."""
    served = ~np.isin(groups, (AUDIO_SUBSET, TEXT_SUBSET))
    out = {} if served.all() else {"all held-out pairs": np.ones(len(labels), bool)}  # else the same as served
    out |= {"served pairs (bench sets)": served,
            "served hard copies vs served negatives": served & ((groups == "hard") | (labels == 0))}  # fmt: skip
    return out | {f"{subset.replace('_', '-')} (modality set)": groups == subset
                  for subset in (AUDIO_SUBSET, TEXT_SUBSET) if (groups == subset).any()}  # fmt: skip


def plot_agreement(student: np.ndarray, teacher: np.ndarray, labels: np.ndarray, student_threshold: float,
                   teacher_threshold: float, out: Path = RESULTS / "teacher_agreement.png") -> None:
    """Student vs teacher score per held-out pair, reproductions and the rest apart, with both thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, colour, name in ((0, "tab:blue", "not reproduced"), (1, "tab:red", "reproduced")):
        keep = labels == label
        ax.scatter(student[keep], teacher[keep], s=14, alpha=0.7, c=colour, label=f"{name} ({keep.sum()})")
    ax.axvline(student_threshold, color="grey", ls="--", lw=1, label=f"student threshold {student_threshold:.2f}")
    ax.axhline(teacher_threshold, color="grey", ls=":", lw=1, label=f"teacher threshold {teacher_threshold:.2f}")
    ax.set(xlabel="student (served MatchLite) score", ylabel="teacher (MatchLMF) score", xlim=(-0.02, 1.02),
           ylim=(-0.02, 1.02), title="held-out pairs (bench pools)")
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def compare(student: np.ndarray, teacher: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> list[list[object]]:
    s, t, y = student[keep], teacher[keep], labels[keep]
    return [[name, f"{100 * metric(s, y):.1f}", f"{100 * metric(t, y):.1f}", _delta(metric, s, t, y)]
            for name, metric in METRICS.items()]  # fmt: skip


def _delta(metric, base: np.ndarray, cand: np.ndarray, labels: np.ndarray) -> str:  # noqa: ANN001
    delta, low, high = bootstrap_delta(metric, base, cand, labels)
    return f"{100 * delta:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def distil(student: MatchLite, teacher: MatchLMF, train: PairDataset, sets: CalibrationSets, recipe: ServingRecipe,
           epochs: int) -> dict[str, MatchLite]:
    """Stage 2 from the served student on `train` (labelled and unlabelled pairs), as `rci distil-serving` does:
    lambda 1.5 (the paper's) and its lambda-0 control (the same schedule and pairs, L_class only)."""
    return {name: distil_served(student, teacher, train, sets, recipe, epochs=epochs, lam=lam)[0]
            for name, lam in (("distilled (lambda 1.5)", 1.5), ("control (lambda 0)", 0.0))}  # fmt: skip


def run(args: argparse.Namespace) -> tuple[str, dict]:
    started = time.monotonic()
    model_dir = serving_models(args.model_dir)
    recipe = ServingRecipe()
    extractor = serving_extractor(model_dir, recipe)
    manifest = CorpusManifest.load(model_dir / "training-corpus")
    policy = media_policy(Settings())
    config = SIZES[args.size]
    train_config = TrainConfig.matchlm(epochs=args.epochs, batch_size=16, lr=args.lr, warmup_steps=20,
                                       schedule="cosine", seed=recipe.seed)  # fmt: skip
    examples, features, _ = serving_training_pairs(model_dir, manifest, extractor, policy, recipe, progress=False)
    train = PairDataset(examples, features)  # the student's pairs: the teacher's training set, then stage 2's
    stage2 = with_unlabelled(train, model_dir, extractor, policy, sources=args.unlabelled_sources)
    installed = matchlmf_checkpoint(model_dir)
    if args.reuse and installed.exists():  # the teacher a previous run (or `rci teacher`) installed
        teacher, teacher_meta = load_matchlmf(installed)
    else:
        teacher, teacher_meta = install_feature_teacher(model_dir, manifest, extractor, policy, config,
                                                        train_config, recipe, pairs=train,
                                                        modality_sources=args.teacher_sources)  # fmt: skip
    train_s, epochs, config = teacher_meta["train_seconds"], teacher_meta["train_config"]["epochs"], teacher.config
    taught = teacher_meta.get("modality_pairs", {"pairs": 0, "sources": 0})  # none in a teacher installed before them

    test, groups = heldout(model_dir, extractor, policy, args.seeds, args.set_size, args.modality_sources)
    student, student_meta = load_checkpoint(model_dir / "matchlite" / "model.pt")
    student_scores = predict(matchlite_forward(student.eval()), test).scores
    teacher_scores = predict_matchlmf(teacher, test).scores
    labels = test.labels
    where = pair_groups(groups, labels)
    rows = [[name, *row] for name, keep in where.items() for row in compare(student_scores, teacher_scores, labels, keep)]

    served = where["served pairs (bench sets)"]  # what the shadow consumer sees: the worker's traffic
    student_threshold = float(student_meta["threshold"])
    agreed = np.array([agreement(float(a), float(b), student_threshold)
                       for a, b in zip(student_scores[served], teacher_scores[served])])  # fmt: skip
    # a run that records nothing leaves benchmarks/results/ alone too: its plot goes to the temp dir
    plot = Path(tempfile.gettempdir()) / "teacher_agreement.png" if args.no_record else RESULTS / "teacher_agreement.png"
    plot_agreement(student_scores[served], teacher_scores[served], labels[served], student_threshold,
                   float(teacher_meta["threshold"]), plot)  # fmt: skip
    sets = calibration_sets(model_dir, extractor, policy, recipe, progress=False)
    students = distil(student, teacher, stage2, sets, recipe, args.distil_epochs)
    scores = {name: predict(matchlite_forward(m), test).scores for name, m in students.items()}
    (_, d_scores), (_, c_scores) = scores.items()  # distilled, then its control
    distil_rows = [[name, *row] for name, keep in where.items() for row in compare(c_scores, d_scores, labels, keep)]

    sample = [test[i] for i in range(min(16, len(test)))]
    t_flops, t_ms = cost_per_pair(lambda inputs: teacher(MatchLMFBatch(**inputs)),
                                  asdict(MatchLMFCollate(teacher.config)(sample).inputs))
    s_flops, s_ms = cost_per_pair(student, collate_batch(sample).inputs)
    params = {"teacher": sum(p.numel() for p in teacher.parameters()), "student": sum(p.numel() for p in student.parameters())}
    counts = {name: f"{int(keep.sum())} ({int(labels[keep].sum())} reproduced)" for name, keep in where.items()}
    body = (
        f"Teacher MatchLMF ({params['teacher'] / 1e6:.2f} M parameters; d {config.d_model}, "
        f"{config.layers} layers, {config.heads} heads) trained {epochs} epochs in {train_s:.0f} s on the served "
        f"student's {len(train)} training pairs (generated corpus + real-media training pool) plus, its alone, "
        f"the training pool's modality set ({taught['pairs']} labelled pairs, {taught['sources']} sources per subset); "
        f"student MatchLite small ({params['student'] / 1e6:.2f} M parameters, served calibrated score). Held-out, "
        f"bench pools: set `{args.set_size}` seeds {args.seeds} as served, and the modality set "
        f"({args.modality_sources} sources per subset); pairs per row: "
        + "; ".join(f"{name} {n}" for name, n in counts.items())
        + f". Percent; base = the student, candidate = the teacher; the difference with its 95% paired bootstrap "
        f"interval.\n\n"
        + markdown_table(["pairs", "metric", "student (base)", "teacher (candidate)", "teacher - student [95% CI]"], rows)
        + f"\n\nStage 2 from the served student, {args.distil_epochs} epochs, lambda 1.5 vs 0, each recalibrated as "
        f"served, on the student's {len(train)} pairs plus {len(stage2) - len(train)} unlabelled ones the teacher scores "
        f"(the training pool's modality set, another seed, labels dropped): distilled vs its lambda-0 control.\n\n"
        + markdown_table(["pairs", "metric", "control (base)", "distilled (candidate)", "distilled - control [95% CI]"],
                         distil_rows)
        + "\n\nCost per pair at batch 16 on this CPU (torch, one process):\n\n"
        + markdown_table(["model", "GFLOPs / pair", "CPU ms / pair"],
                         [["MatchLite (student)", f"{s_flops:.3f}", f"{s_ms:.2f}"],
                          ["MatchLMF (teacher)", f"{t_flops:.3f}", f"{t_ms:.2f}"]])
        + f"\n\nAgreement, as the shadow consumer counts it (both deboost or both not, at the student's threshold "
        f"{student_threshold:.3f}), on the served pairs: {100 * agreed.mean():.1f}% of {len(agreed)}; mean |student - "
        f"teacher| {np.abs(student_scores[served] - teacher_scores[served]).mean():.3f}. Scores side by side: "
        f"`{plot.name}`{f' ({plot})' if args.no_record else ''}."
        + f"\n\nWhole run {time.monotonic() - started:.0f} s."
    )  # fmt: skip
    summary = {"teacher": teacher_meta, "rows": rows, "distil_rows": distil_rows, "agreement": float(agreed.mean()),
               "params": params, "train_s": train_s, "pairs": counts,
               "cost": {"student": [s_flops, s_ms], "teacher": [t_flops, t_ms]}}  # fmt: skip
    return body, summary


# What a run measures: `default` fits this machine (2 cores: ~35 minutes, 923 held-out pairs, 332 reproduced;
# the first run also renders the two training modality sets, ~12 minutes); `paper` is for a larger machine:
# twice the held-out sets and modality pairs, more epochs (160 sources is what the training pool's music allows).
SCALES = {
    "default": {"seeds": [0, 1, 2], "modality_sources": 100, "teacher_sources": TEACHER_MODALITY_SOURCES,
                "unlabelled_sources": UNLABELLED_SOURCES, "epochs": 8, "distil_epochs": DISTIL_EPOCHS},
    "paper": {"seeds": [0, 1, 2, 3, 4, 5], "modality_sources": 200, "teacher_sources": 160, "unlabelled_sources": 160,
              "epochs": 16, "distil_epochs": 20},
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=tuple(SCALES), default="default",
                   help="the defaults of the options below: " + "; ".join(f"{k}: {v}" for k, v in SCALES.items()))
    p.add_argument("--size", choices=tuple(SIZES), default="default", help="the teacher's size (default: d 256, 6 layers)")
    p.add_argument("--epochs", type=int, help="the teacher's epochs")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--distil-epochs", type=int, help="stage 2 from the served student, each of lambda 1.5 and 0")
    p.add_argument("--seeds", type=int, nargs="+", help="held-out sets of the bench pools, one per seed")
    p.add_argument("--set-size", default="default", help="rci.training.realset.sets.SIZES")
    p.add_argument("--modality-sources", type=int, help="held-out: the bench pools' modality set, sources per subset (0: none)")
    p.add_argument("--teacher-sources", type=int,
                   help="the training pool's modality set the teacher alone learns from, sources per subset")
    p.add_argument("--unlabelled-sources", type=int,
                   help=f"stage 2's unlabelled pairs: the training pool's modality set (seed {UNLABELLED_SEED}), sources per subset")
    p.add_argument("--model-dir", type=Path, default=None, help="serving models to compare with (default: trained "
                   "once under ~/.cache/rci/bench_teacher)")
    p.add_argument("--reuse", action="store_true", help="compare the teacher installed in the model dir (by an earlier "
                   "run or `rci teacher`) instead of training one")
    p.add_argument("--no-record", action="store_true", help="print only: nothing is written under benchmarks/ (the plot goes to the temp dir)")
    args = p.parse_args(argv)
    for name, value in SCALES[args.scale].items():  # what the command line leaves out, the scale gives
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> None:
    args = parse_args()
    body, summary = run(args)
    publish("Teacher vs student on held-out real media (benchmarks.bench_teacher)", body, dry_run=args.no_record)
    if not args.no_record:
        (RESULTS / "teacher.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
