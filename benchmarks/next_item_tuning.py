"""Tune the full-softmax next-item baselines (``sasrec_ce``, ``hstu``) on VALIDATION only (never test): one knob at a
time around the config defaults, under leave-one-out (the same defaults serve the temporal split).

Each config is a run directory under ``--work`` (finished ones are skipped); the table gives validation Recall/NDCG@10
of all validation users, the epoch that model selection kept (on its own ``val_users`` subset of the same validation
part) and training time, and names the best config of each model by validation NDCG@10.

    .venv/bin/python benchmarks/next_item_tuning.py runs/data/sci --work runs/next-item-tune
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import write_result

from pauserec.artifacts import RunDir, environment
from pauserec.baselines import run_baseline
from pauserec.config import build_config
from pauserec.report import fmt_metric, markdown_table

WIDTH = {"sasrec_ce": "hidden", "hstu": "d_model"}
VARIANTS = {"base": {}, "lr3e-3": {"lr": 3e-3}, "dropout0.5": {"dropout": 0.5}, "width128": {"width": 128}}


def overrides(model: str, knobs: dict[str, object], extra: list[str]) -> list[str]:
    named = {(WIDTH[model] if k == "width" else k): v for k, v in knobs.items()}
    return [*(f"baseline.{model}.{k}={v}" for k, v in named.items()), "eval.split=valid", "eval.bootstrap=0", *extra]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--models", nargs="*", default=list(WIDTH))
    ap.add_argument("--only", nargs="*", default=list(VARIANTS))
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="next-item-tuning-scientific")
    args = ap.parse_args()
    machine = environment()
    results, rows, best = {}, [], {}
    for model in args.models:
        for name in args.only:
            run_dir = Path(args.work) / model / name
            if not (run_dir / "metrics.json").exists():
                run_baseline(model, build_config(overrides=overrides(model, VARIANTS[name], args.set)), args.data,
                             run_dir, progress=False)
            r = results.setdefault(model, {})[name] = RunDir(run_dir).evaluation()
            print(model, name, r["metrics"]["ndcg@10"]["mean"], r["cost"]["train"]["train_seconds"], flush=True)
        best[model] = max(results[model], key=lambda n: results[model][n]["metrics"]["ndcg@10"]["mean"])
        for name, r in results[model].items():
            t = r["cost"]["train"]
            rows.append([model, name + (" (best)" if name == best[model] else ""),
                         ", ".join(f"{k}={v}" for k, v in VARIANTS[name].items()) or "-",
                         fmt_metric(r["metrics"]["recall@10"]), fmt_metric(r["metrics"]["ndcg@10"]),
                         f"{t['best_epoch']}/{t['epochs']}", f"{t['train_seconds']:.0f}"])
    md = ("Defaults of `baseline.sasrec_ce` / `baseline.hstu` (config.py), one knob changed per row (width = hidden "
          "or d_model); leave-one-out validation, all users, seed 0; best by validation NDCG@10.\n\n")
    md += markdown_table(["model", "config", "changed", "val recall@10", "val ndcg@10", "kept epoch / run", "train s"],
                         rows)
    write_result(args.name, {"data": args.data, "variants": VARIANTS, "best": best, "overrides": args.set,
                             "results": {m: {n: {"metrics": r["metrics"], "cost": r["cost"]} for n, r in v.items()}
                                         for m, v in results.items()}}, md, machine)
    print(md)


if __name__ == "__main__":
    main()
