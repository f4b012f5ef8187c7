"""SASRec (config defaults, tuned on validation) and popularity on TEST, several training seeds, the same users for
every seed (``eval.subset_seed=0``), ranked with and without ``eval.exclude_history``.

Each seed trains SASRec once and ranks the test users twice (the two settings differ in evaluation only), each into
its own run directory ``WORK/scientific[-exclude]/MODEL/seedS``; the table is the one ``pauserec bench`` writes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sasrec_test.py runs/foundation/scientific --work runs/sasrec-test \
        --seeds 0 1 2 --set eval.max_users=2000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import write_result

from pauserec.artifacts import DataDir, RunDir
from pauserec.baselines import make_baseline, run_baseline
from pauserec.bench.grid import Cell
from pauserec.bench.table import plot_all, summarize, write_table
from pauserec.config import build_config
from pauserec.eval.contract import evaluate_ranker
from pauserec.artifacts import environment

SETTINGS = {"scientific": "eval.exclude_history=false", "scientific-exclude": "eval.exclude_history=true"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="sasrec-test-scientific")
    args = ap.parse_args()
    machine = environment()
    work = Path(args.work)
    data = DataDir(args.data)
    cells = []
    for seed in args.seeds:
        ranker = train_cost = None
        for name, setting in SETTINGS.items():
            overrides = (*args.set, "eval.subset_seed=0", setting, f"seed={seed}")
            for base in ("popularity", "sasrec"):
                cells.append(Cell(base, base, None, name, args.data, seed, overrides))
            cfg = build_config(overrides=list(overrides))
            if not (cells[-2].run_dir(work) / "metrics.json").exists():
                run_baseline("popularity", cfg, args.data, cells[-2].run_dir(work))
            if not (cells[-1].run_dir(work) / "metrics.json").exists():  # one SASRec per seed, evaluated per setting
                split = data.split(cfg)
                run = RunDir.create(cells[-1].run_dir(work), cfg, kind="baseline:sasrec",
                                    **data.facts(split, catalog=False))
                if ranker is None:
                    ranker = make_baseline("sasrec", cfg)
                    train_cost = ranker.fit(data, split, run)
                    print(f"seed {seed}: trained in {train_cost.train_seconds:.0f} s", flush=True)
                evaluate_ranker(ranker, cfg, data, run, train_cost, split=split)
    rows = summarize(cells, work)
    write_table(rows, work)
    plot_all(rows, work)
    md = (work / "table.md").read_text()
    write_result(args.name, {"data": args.data, "seeds": args.seeds, "overrides": args.set, "rows": rows}, md, machine)
    print(md)


if __name__ == "__main__":
    main()
