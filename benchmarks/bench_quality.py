"""Generalisation: copy detection on real media no model of this project trained on, against the
scorers a user would pick instead.

    python -m benchmarks.bench_quality                              # default size: about 10-15 min on 2 cores
    python -m benchmarks.bench_quality --size small --no-record     # a minute or two (the test's size)
    python -m benchmarks.bench_quality --matchlite-models .rci/models   # also (c), through the real worker
    python -m benchmarks.bench_quality --matchlite-models demo          # (c) with the demo's models, trained once

The held-out set (rci.training.realset.sets) is built from pools disjoint from every training pool
and from the pool the served threshold is chosen on (rci.training.realset.pools: BENCH vs VALIDATION):
GCompris's photographs (Debian gcompris-qt-data), HyperRogue's music (hyperrogue-music), espeak-ng
speaking de/fr/es/it/pt. Originals are Ken Burns clips over
those photos with a soundtrack, a title and a sticker; later uploads are ~30% easy copies, ~25%
hard copies, ~20% unrelated originals and ~25% templates (an original's exact sound, title and
sticker over new pictures: not reproductions). A query is positive iff it is a copy.

Scorers (benchmarks/quality/scorers.py), on the same queries:
  (a) pHash + Chromaprint, no model: max of the rescaled pHash frame-set Chamfer and the Chromaprint
      alignment (their mean, and each component alone, are reported too);
  (b) SSCD Chamfer: symmetric Chamfer of SSCD frame cosines, no pair model;
  (c) MatchLite through the real `rci worker` on the local stack (with --matchlite-models).
(a) and (b) retrieve the best-scoring earlier original; (c) is what the service retrieves.

Figures per scorer: AP, best F1, F1 at the stored threshold (MatchLite only), R@P80 and
true-source retrieval, overall and on the hard subset; the easy subset's AP; mean scores per kind.
They are printed, appended to benchmarks/RESULTS.md (unless --no-record), written as JSON
(--json, default benchmarks/results/quality.json) with a PR-curve plot (--plot). The set and the
features are cached under --work-dir (default ~/.cache/rci/bench_quality), so reruns are fast.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.quality.evaluate import evaluate, plot_pr
from rci.training.realset.pools import POOL_SPECS, default_pool_dir
from rci.training.realset.sets import SIZES, HeldoutSet, build_set
from benchmarks.quality.scorers import ScorerResult, extract_features, matchlite_worker, phash_chromaprint, sscd_chamfer
from benchmarks.record import command_line, machine_description, markdown_table, publish

RESULTS_DIR = Path(__file__).parent / "results"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _matchlite_models(spec: str, work_dir: Path, progress: Progress) -> Path:
    """A model dir for (c): the path given, or with `demo` the demo's models, trained once under work_dir."""
    if spec != "demo":
        return Path(spec)
    from rci.cli.demo import prepare_models
    from rci.media.policy import media_policy
    from rci.core.settings import Settings

    model_dir = work_dir / "demo-models"
    task = progress.add_task("demo models (trained once)", total=None)
    prepare_models(model_dir, media_policy(Settings(data_dir=work_dir / "demo-data")), progress=False)
    progress.update(task, total=1, completed=1)
    return model_dir


def run(args: argparse.Namespace) -> dict[str, object]:
    pools = POOL_SPECS[args.pools]
    work_dir = args.work_dir
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    timings: dict[str, float] = {}
    with Progress(*columns) as progress:
        t0 = time.monotonic()
        dataset = build_set(work_dir, args.size, args.seed, jobs=args.jobs, progress=progress, pools=pools)
        timings["set"] = time.monotonic() - t0
        t0 = time.monotonic()
        features = extract_features(dataset, work_dir, progress=progress)
        timings["features"] = time.monotonic() - t0
        results: list[ScorerResult] = [*phash_chromaprint(dataset, features), sscd_chamfer(dataset, features)]
        if args.matchlite_models:
            t0 = time.monotonic()
            model_dir = _matchlite_models(args.matchlite_models, work_dir, progress)
            timings["matchlite_models"] = time.monotonic() - t0
            results.append(matchlite_worker(dataset, model_dir, work_dir / "sets" / dataset.root.name, progress=progress))
    figures = [evaluate(r, dataset) for r in results]
    return {"benchmark": "quality", "size": args.size, "seed": args.seed, "set": describe_set(dataset),
            "scorers": figures, "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "matchlite": "run" if args.matchlite_models else "not run (pass --matchlite-models DIR or demo)",
            "results": results, "dataset": dataset}  # fmt: skip


def describe_set(dataset: HeldoutSet) -> dict[str, object]:
    videos = dataset.videos
    hard_edits: dict[str, int] = {}
    easy_edits: dict[str, int] = {}
    for v in videos:
        target = hard_edits if v.kind == "hard" else easy_edits if v.kind == "easy" else None
        for edit in v.edits if target is not None else ():
            target[edit["op"]] = target.get(edit["op"], 0) + 1
    return {
        "counts": dataset.counts(),
        "queries": len(dataset.queries()),
        "portrait": sum(v.height > v.width for v in videos if v.is_original),
        "landscape": sum(v.width > v.height for v in videos if v.is_original),
        "speech_originals": sum(1 for v in videos if v.sound and v.sound.kind == "speech" and v.kind != "template"),
        "music_originals": sum(1 for v in videos if v.sound and v.sound.kind == "music" and v.kind != "template"),
        "duration_s": [min(v.duration_s for v in videos if v.is_original),
                       max(v.duration_s for v in videos if v.is_original)],
        "easy_edits": easy_edits,
        "hard_edits": hard_edits,
        "pools": dataset.info,
    }


def report(result: dict[str, object]) -> str:
    s = result["set"]
    counts = s["counts"]
    rows, hard_rows, kind_rows = [], [], []
    for f in result["scorers"]:
        a, h, e = f["all"], f["hard"], f["easy"]
        rows.append([f["scorer"], _pct(a["ap"]), _pct(a["best_f1"]), _pct(a["f1_at_threshold"]), _pct(a["r_at_p80"]),
                     _pct(a["source_retrieval"]), _pct(e["ap"]), f["seconds"]])  # fmt: skip
        hard_rows.append([f["scorer"], _pct(h["ap"]), _pct(h["best_f1"]), _pct(h["f1_at_threshold"]),
                          _pct(h["r_at_p80"]), _pct(h["source_retrieval"]),
                          *[f"{e_['mean_score']:.2f} / {_pct(e_['source_retrieval'])}"
                            for e_ in f["hard_by_edit"].values()]])  # fmt: skip
        kind_rows.append([f["scorer"], *[f"{f['mean_score'][k]:.3f}" for k in ("easy", "hard", "unrelated", "template")],
                          "-" if f["threshold"] is None else f"{f['threshold']:.3f}"])  # fmt: skip
    family = [f"{f['scorer']} {_pct(f['all']['family_retrieval'])}% (hard {_pct(f['hard']['family_retrieval'])}%)"
              for f in result["scorers"] if f["all"]["family_retrieval"] != f["all"]["source_retrieval"]]
    first = result["scorers"][0]
    edits = list(first["hard_by_edit"])
    pools = s["pools"]["photo_pool"]
    summary = (
        f"Held-out set `{result['size']}` (seed {result['seed']}): {counts['library']} originals published first, then "
        f"{s['queries']} queries: {counts['easy']} easy copies, {counts['hard']} hard copies, {counts['unrelated']} "
        f"unrelated originals, {counts['template']} templates (positives: the {counts['easy'] + counts['hard']} "
        f"copies; chance AP {_pct(first['all']['chance_ap'])}). (c) MatchLite: {result['matchlite']}."
    )
    setup = (
        f"Pools, disjoint from training (the generated corpus: Debian wallpapers, procedural pictures, English "
        f"voices, procedural music; the real-media training pool: GCompris's object photos, paintings and planets, "
        f"Tux Paint's stamps, X-Moto's music, en/da/cs voices) and from the threshold's validation pairs (GCompris's vocabulary pictures, ASC's music, nl/pl/sv voices): "
        f"{pools['kept']} GCompris photographs (gcompris-qt-data; {pools['near_duplicates_dropped']} near-duplicates "
        f"dropped, {pools['close_to_training_dropped']} dropped within pHash distance 12 of the "
        f"{pools['training_photos_compared']} training photos), "
        f"{s['pools']['music_pieces']} HyperRogue pieces (hyperrogue-music), espeak-ng de/fr/es/it/pt. Originals: "
        f"{s['portrait']} portrait 288x512 / {s['landscape']} landscape 512x288, 12 fps, {s['duration_s'][0]:.0f}-"
        f"{s['duration_s'][1]:.0f} s, {s['music_originals']} with music, {s['speech_originals']} with speech; "
        f"{s['pools']['photos_used']} photos, none shared between originals. Easy edits: "
        + ", ".join(f"{k} {v}" for k, v in s["easy_edits"].items())
        + ". Queries are compared with every earlier original ((a), (b)); MatchLite sees what the worker retrieves "
        "from every earlier video. Frames as the worker decodes them: 1 fps, 224 px; (a) and (b) see the centre "
        "square, the worker also the whole frame. "
        f"Time: rendering the set {s['pools'].get('render_s', 0):.0f} s when first built, this run: set "
        f"{result['timings_s'].get('set', 0):.0f} s, decode + features {result['timings_s'].get('features', 0):.0f} s "
        "(both cached under the work dir)."
    )
    return "\n\n".join([
        summary,
        "All queries (percent; retrieval = the retrieved candidate is the copy's true source; "
        "F1@thr at the scorer's stored threshold; s: seconds of pair scoring, which the pHash/Chromaprint variants share "
        "with the first row):\n\n"
        + markdown_table(["scorer", "AP", "best F1", "F1@thr", "R@P80", "source retrieval", "easy-subset AP", "s"], rows),
        "Hard copies vs all negatives; per edit: mean score / source retrieval %:\n\n"
        + markdown_table(["scorer", "AP", "best F1", "F1@thr", "R@P80", "source retrieval", *edits], hard_rows),
        *(["The worker indexes copies too, so its candidate may be another copy of the true source; counting those, "
            "retrieval is " + "; ".join(family) + "."] if family else []),
        "Mean score per kind of query (templates and unrelated are negatives):\n\n"
        + markdown_table(["scorer", "easy", "hard", "unrelated", "template", "stored threshold"], kind_rows),
        setup,
    ])  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--size", choices=tuple(SIZES), default="default",
                   help="small (tests), default, large; validation: the size of the threshold's set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pools", choices=tuple(POOL_SPECS), default="bench",
                   help="bench: the benchmark's held-out pools; validation: the pools the served threshold is "
                        "chosen on (for checking a serving rule there, never for recorded figures)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="cache for pools, set, features (default: ~/.cache/rci/bench_quality for bench)")
    p.add_argument("--jobs", type=int, default=2, help="render processes")
    p.add_argument("--matchlite-models", default=None,
                   help="(c): a model dir the worker serves (RCI_MODEL_DIR), or `demo` to train/reuse the demo's")
    p.add_argument("--json", type=Path, default=None, help="default: benchmarks/results/quality.json (bench pools)")
    p.add_argument("--plot", type=Path, default=None, help="default: benchmarks/results/quality_pr.png (bench pools)")
    p.add_argument("--no-record", action="store_true", help="print only, do not append to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    args.work_dir = (args.work_dir or default_pool_dir(POOL_SPECS[args.pools])).expanduser()
    if args.pools != "bench":  # the validation pools' figures are a development check, never a result
        args.no_record = True
        args.json, args.plot = args.json or args.work_dir / "quality.json", args.plot or args.work_dir / "quality_pr.png"
    args.json = args.json or RESULTS_DIR / "quality.json"
    args.plot = args.plot or RESULTS_DIR / "quality_pr.png"
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.monotonic()
    result = run(args)
    command = command_line("benchmarks.bench_quality", argv)
    plot_pr(result.pop("results"), result.pop("dataset"), args.plot,
            f"Held-out copy detection ({args.size}, seed {args.seed}): PR curves")  # fmt: skip
    result.update({"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_description(),
                   "command": command, "wall_s": round(time.monotonic() - started, 1), "plot": args.plot.name})  # fmt: skip
    body = report(result) + f"\n\nPR curves: `{args.plot.name}` (benchmarks/results/ when recorded)."
    publish("Generalisation: copy detection on held-out real media (pHash + Chromaprint, SSCD, MatchLite)", body,
            dry_run=args.no_record, command=command)  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"figures written to {args.json}, PR curves to {args.plot}")
    return result


if __name__ == "__main__":
    main()
