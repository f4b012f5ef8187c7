"""Train and evaluate several arms under one budget, side by side: accuracy and cost.

Each arm is a run directory under ``--work``; finished arms are skipped, so an interrupted grid resumes.
The default K is picked on validation Recall@10 (never test); test is decoded once per arm.

    .venv/bin/python benchmarks/arms_grid.py runs/foundation/scientific --work runs/grid-scientific \
        --arms direct pause:1 pause:2 pause:4 pause:8 --set train.max_steps=120 --set eval.max_users=500
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import write_result

from pauserec.config import build_config
from pauserec.eval.run_eval import evaluate_run
from pauserec.io import read_json
from pauserec.runs import environment
from pauserec.report import METRIC_ORDER, fmt_metric, markdown_table
from pauserec.train.run import train


def arm_overrides(spec: str) -> list[str]:
    """``direct`` or ``pause:K``."""
    name, _, k = spec.partition(":")
    return [f"arm.name={name}"] + ([f"arm.pause_tokens={k}"] if k else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--arms", nargs="+", default=["direct", "pause:1", "pause:2", "pause:4", "pause:8"])
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="arms-grid")
    args = ap.parse_args()
    machine = environment()  # the code revision that runs the grid

    rows = {}
    for spec in args.arms:
        run_dir = Path(args.work) / spec.replace(":", "-k")
        cfg = build_config(overrides=[*args.set, *arm_overrides(spec)])
        if not (run_dir / "model").exists():
            train(cfg, args.data, run_dir, resume=(run_dir / "checkpoints").exists())
        if not (run_dir / "metrics.json").exists():
            evaluate_run(run_dir, cfg)
        rows[spec] = {"metrics": read_json(run_dir / "metrics.json")["metrics"], "cost": read_json(run_dir / "cost.json")}

    best = max(rows, key=lambda s: rows[s]["cost"]["train"]["best_val_recall@10"] if s.startswith("pause") else -1)
    metrics = ["recall@5", "recall@10", "ndcg@5", "ndcg@10"]
    header = ["arm", "val R@10", *[f"test {m}" for m in metrics], "train s", "real tok/s", "latency/user ms", "prefill tok/user"]
    table = []
    for spec, r in rows.items():
        tr, inf = r["cost"]["train"], r["cost"]["inference"]
        table.append([spec + (" (selected on val)" if spec == best else ""), f"{tr['best_val_recall@10']:.4f}",
                      *[fmt_metric(r["metrics"][m]) for m in metrics], f"{tr['train_seconds']:.0f}",
                      f"{tr['real_tokens_per_second']:.0f}", f"{1000 * inf['latency_per_user_s']:.0f}",
                      f"{inf['prefill_tokens_per_user']:.1f}"])
    md = markdown_table(header, table)
    if "direct" in rows and best in rows:
        ratio = rows[best]["cost"]["inference"]["latency_per_user_s"] / rows["direct"]["cost"]["inference"]["latency_per_user_s"]
        md += f"\nInference latency {best} / direct: {ratio:.3f}\n"
    write_result(args.name, {"data": args.data, "overrides": args.set, "selected_pause_arm": best, "arms": rows,
                             "metric_order": METRIC_ORDER}, md, machine)
    print(md)


if __name__ == "__main__":
    main()
