"""FROZEN (issue 42): kept only because a committed result cites it (inference-k-scientific-cpu); do not
extend it. ``pauserec bench`` now expresses it: an eval-only variant ``pause-k4-infer: {eval_of: pause-k4, k: [0,
1, 2, 4, 8]}`` decodes a grid's trained pause-k4 with other pause counts (docs/benchmarks.md).

Inference-K ablation: one model trained with K pauses, decoded with other numbers of pauses.

Every inference K is decoded on the run's own evaluation users (its stored ``eval`` config) into
``--work/kN`` (the run's own evaluation is left alone), one after another in this process so latencies
are comparable. Differences are paired per user against the training K. This is an analysis of a trained
model on test; nothing here selects a model or a default.

    .venv/bin/python benchmarks/inference_k.py runs/grid-cpu/pause-k4 --ks 0 1 2 4 8 --name inference-k-scientific-cpu
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import RESULTS, write_result

from pauserec.config import build_config
from pauserec.eval.compare import compare_runs
from pauserec.eval.run_eval import evaluate_run
from pauserec.report import fmt_difference, fmt_metric, markdown_table, plot_comparison
from pauserec.arms import get_arm
from pauserec.artifacts import RunDir, environment

METRICS = ["recall@5", "recall@10", "ndcg@5", "ndcg@10"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a trained pause run")
    ap.add_argument("--ks", type=int, nargs="+", default=[0, 1, 2, 4, 8])
    ap.add_argument("--work", type=Path, help="where each inference K is evaluated (default RUN/inference-k)")
    ap.add_argument("--set", action="append", default=[], help="extra overrides, e.g. eval.max_users=200")
    ap.add_argument("--name", default="inference-k")
    args = ap.parse_args()
    machine = environment()
    work = args.work or args.run / "inference-k"
    stored = RunDir(args.run).config()
    if get_arm(stored.arm.name).served_pauses(stored.arm, cap=max(args.ks)) is None:
        raise SystemExit(f"{args.run} is a {stored.arm.name} run: it has no pause tokens to vary")
    trained_k = stored.arm.pause_tokens

    rows = {}
    for k in args.ks:
        out = work / f"k{k}"
        if not (out / "metrics.json").exists():
            cfg = build_config(base=stored.model_dump(), overrides=[*args.set, f"arm.inference_pause_tokens={k}"])
            evaluate_run(args.run, cfg, out_dir=out)
        rows[k] = RunDir(out).evaluation()
    base = trained_k if trained_k in rows else args.ks[0]
    diffs = compare_runs(work / f"k{base}", [work / f"k{k}" for k in args.ks if k != base], ks=(5, 10))

    header = ["inference K", *[f"test {m}" for m in METRICS], f"R@10 - K={base} (paired)", "latency/user ms",
              "prefill tok/user"]
    table = []
    for k, r in rows.items():
        inf = r["cost"]["inference"]
        diff = diffs.get(str(work / f"k{k}"))
        table.append([f"{k}" + (" (trained)" if k == trained_k else ""), *[fmt_metric(r["metrics"][m]) for m in METRICS],
                      fmt_difference(diff["recall@10"]) if diff else "-", f"{1000 * inf['latency_per_user_s']:.0f}",
                      f"{inf['prefill_tokens_per_user']:.1f}"])
    md = f"Model: `{args.run}` (trained with K={trained_k}, {stored.arm.pause_placement}), " \
         f"{rows[base]['metrics']['users']['count']:.0f} test users, beam {stored.decode.num_beams}.\n\n"
    md += markdown_table(header, table)
    figure = plot_comparison([(f"K={k}", r) for k, r in rows.items()], RESULTS / f"{args.name}.png")
    md += f"\n![{args.name}]({figure.name})\n"
    write_result(args.name, {"run": str(args.run), "trained_k": trained_k, "overrides": args.set,
                             "by_inference_k": {str(k): r for k, r in rows.items()},
                             "paired_difference_vs_trained_k": {k: diffs.get(str(work / f"k{k}")) for k in args.ks}},
                 md, machine)
    print(md)


if __name__ == "__main__":
    main()
