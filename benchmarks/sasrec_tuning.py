"""Tune SASRec's few key knobs on VALIDATION only (never test): one knob at a time around a base config.

Each config is a run directory under ``--work`` (finished ones are skipped); the table gives validation
Recall/NDCG@10 and training time, and names the best config by validation Recall@10.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sasrec_tuning.py runs/foundation/scientific --work runs/sasrec-tune
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import write_result

from pauserec.baselines import BASELINES
from pauserec.config import build_config
from pauserec.report import fmt_metric, markdown_table
from pauserec.artifacts import RunDir, environment

BASE = {"hidden": 64, "layers": 2, "dropout": 0.2, "max_len": 20, "epochs": 10, "lr": 1e-3}
# name -> the knobs that differ from BASE. Not tuned: max_len above 20 (every scored history is cut to
# split.max_history=20 items, so it would change training only), hidden 32 (dropped for time on 2 shared cores).
VARIANTS = {
    "base": {}, "epochs30": {"epochs": 30}, "hidden128": {"hidden": 128}, "layers1": {"layers": 1},
    "dropout0.5": {"dropout": 0.5}, "lr3e-3": {"lr": 3e-3},
}


def overrides(knobs: dict[str, object], extra: list[str]) -> list[str]:
    return [*(f"baseline.sasrec.{k}={v}" for k, v in {**BASE, **knobs}.items()), "eval.split=valid", *extra]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", nargs="*", default=list(VARIANTS))
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="sasrec-tuning-scientific")
    args = ap.parse_args()
    machine = environment()
    results = {}
    for name in args.only:
        run_dir = Path(args.work) / name
        if not (run_dir / "metrics.json").exists():
            BASELINES["sasrec"](build_config(overrides=overrides(VARIANTS[name], args.set)), args.data, run_dir,
                                progress=False)
        results[name] = RunDir(run_dir).evaluation()
        print(name, results[name]["metrics"]["recall@10"]["mean"], results[name]["cost"]["train"]["train_seconds"],
              flush=True)
    best = max(results, key=lambda n: results[n]["metrics"]["recall@10"]["mean"])
    rows = [[n + (" (best)" if n == best else ""), ", ".join(f"{k}={v}" for k, v in VARIANTS[n].items()) or "-",
             fmt_metric(r["metrics"]["recall@10"]), fmt_metric(r["metrics"]["ndcg@10"]),
             f"{r['cost']['train']['train_seconds']:.0f}"] for n, r in results.items()]
    md = f"Base: {BASE} (one knob changed per row); validation, all users; selected by val Recall@10.\n\n"
    md += markdown_table(["config", "changed", "val recall@10", "val ndcg@10", "train s"], rows)
    write_result(args.name, {"data": args.data, "base": BASE, "variants": VARIANTS, "best": best,
                             "results": {n: {"metrics": r["metrics"], "cost": r["cost"]} for n, r in results.items()}},
                 md, machine)
    print(md)


if __name__ == "__main__":
    main()
