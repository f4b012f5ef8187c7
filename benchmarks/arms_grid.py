"""Train and evaluate several arms under one budget, side by side: accuracy and cost.

Each arm is a run directory under ``--work``; finished arms are skipped, so an interrupted grid resumes.
The default K is picked on validation Recall@10 (never test); test is decoded once per arm. The result also
holds popularity on the same test users, each arm's paired difference against ``direct`` (per-user, bootstrap
interval) and a figure, ``NAME.png``, beside ``NAME.md``.
``--parallel`` trains the arms at once, one process each (a GPU has room for several small models), then
evaluates them one after another so that inference latencies are measured alone.

    .venv/bin/python benchmarks/arms_grid.py runs/foundation/scientific --work runs/grid-scientific \
        --arms direct pause:1 pause:2 pause:4 pause:8 --set train.max_steps=120 --set eval.max_users=500
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common import RESULTS, write_result

from pauserec.config import build_config
from pauserec.eval.compare import compare_runs
from pauserec.eval.run_eval import evaluate_run
from pauserec.io import read_json
from pauserec.pipeline import evaluate_popularity
from pauserec.runs import RunDir, environment
from pauserec.report import METRIC_ORDER, fmt_difference, fmt_metric, markdown_table, plot_comparison
from pauserec.train.run import train


def arm_overrides(spec: str) -> list[str]:
    """``direct`` or ``pause:K``."""
    name, _, k = spec.partition(":")
    return [f"arm.name={name}"] + ([f"arm.pause_tokens={k}"] if k else [])


def run_dir_of(work: Path, spec: str) -> Path:
    """``pause:4`` -> ``WORK/pause-k4``."""
    return work / spec.replace(":", "-k")


def train_in_parallel(data: str, work: Path, specs: list[str], overrides: list[str]) -> None:
    """``pauserec train`` for every unfinished arm at once; each logs to ``WORK/SPEC.log``. Raises if one fails."""
    pending = [s for s in specs if not (run_dir_of(work, s) / "model").exists()]
    threads = str(max(1, (os.cpu_count() or 1) // max(len(pending), 1)))  # share the CPU cores, don't oversubscribe
    procs = {}
    for spec in pending:
        run_dir = run_dir_of(work, spec)
        sets = [a for o in [*overrides, *arm_overrides(spec)] for a in ("--set", o)]
        resume = ["--resume"] if (run_dir / "checkpoints").exists() else []
        work.mkdir(parents=True, exist_ok=True)
        log = open(work / f"{run_dir.name}.log", "w")
        procs[spec] = (subprocess.Popen([sys.executable, "-m", "pauserec", "train", data, "--out", str(run_dir),
                                         *resume, *sets], stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "OMP_NUM_THREADS": threads}), log)
    failed = []
    for spec, (proc, log) in procs.items():
        if proc.wait() != 0:
            failed.append(spec)
        log.close()
    if failed:
        raise SystemExit(f"training failed for {failed}; see {work}/*.log")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--arms", nargs="+", default=["direct", "pause:1", "pause:2", "pause:4", "pause:8"])
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="arms-grid")
    ap.add_argument("--parallel", action="store_true", help="train all arms at once, then evaluate one by one")
    args = ap.parse_args()
    machine = environment()  # the code revision that runs the grid
    if args.parallel:
        train_in_parallel(args.data, Path(args.work), args.arms, args.set)

    rows = {}
    for spec in args.arms:
        run_dir = run_dir_of(Path(args.work), spec)
        cfg = build_config(overrides=[*args.set, *arm_overrides(spec)])
        if not (run_dir / "model").exists():
            train(cfg, args.data, run_dir, resume=(run_dir / "checkpoints").exists())
        if not (run_dir / "metrics.json").exists():
            evaluate_run(run_dir, cfg)
        run = RunDir(run_dir)
        rows[spec] = {**run.evaluation(), "git_revision": run.env()["git_revision"],
                      "last_train_loss": last_logged_loss(run_dir)}
    popularity_dir = Path(args.work) / "popularity"
    if not (popularity_dir / "metrics.json").exists():
        evaluate_popularity(build_config(overrides=args.set), args.data, popularity_dir)
    popularity = RunDir(popularity_dir).evaluation()["metrics"]
    differences = paired_vs_direct(Path(args.work), args.arms)

    best = max(rows, key=lambda s: rows[s]["cost"]["train"]["best_val_recall@10"] if s.startswith("pause") else -1)
    md = grid_table(rows, differences, best)
    md += f"\nPopularity on the same {popularity['users']['count']:.0f} test users: recall@10 " \
          f"{fmt_metric(popularity['recall@10'])}, ndcg@10 {fmt_metric(popularity['ndcg@10'])}.\n"
    if "direct" in rows and best in rows:
        ratio = rows[best]["cost"]["inference"]["latency_per_user_s"] / rows["direct"]["cost"]["inference"]["latency_per_user_s"]
        md += f"\nInference latency {best} / direct: {ratio:.3f}\n"
    figure = plot_comparison([("popularity", {"metrics": popularity}), *rows.items()], RESULTS / f"{args.name}.png")
    md += f"\n![{args.name}]({figure.name})\n"
    write_result(args.name, {"data": args.data, "overrides": args.set, "selected_pause_arm": best, "arms": rows,
                             "paired_difference_vs_direct": differences, "popularity": popularity,
                             "metric_order": METRIC_ORDER}, md, machine)
    print(md)


def last_logged_loss(run_dir: Path) -> float:
    """Mean SID loss (nats per SID token) over the last logging window of training."""
    return [e["loss"] for e in read_json(run_dir / "train_log.json") if "loss" in e][-1]


def paired_vs_direct(work: Path, arms: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Each arm's per-user test metric differences against ``direct`` (empty without a direct arm)."""
    if "direct" not in arms:
        return {}
    others = [a for a in arms if a != "direct"]
    diffs = compare_runs(run_dir_of(work, "direct"), [run_dir_of(work, a) for a in others], ks=(5, 10))
    return {a: diffs[str(run_dir_of(work, a))] for a in others}


def grid_table(rows: dict, differences: dict, best: str) -> str:
    """Markdown: one line per arm, accuracy (with intervals), paired difference vs direct, cost, code revision."""
    metrics = ["recall@5", "recall@10", "ndcg@5", "ndcg@10"]
    header = ["arm", "steps", "last train loss", "val R@10", *[f"test {m}" for m in metrics], "R@10 - direct (paired)",
              "train s", "real tok/s", "latency/user ms", "prefill tok/user", "code"]
    table = []
    for spec, r in rows.items():
        tr, inf = r["cost"]["train"], r["cost"]["inference"]
        capped = " (time cap)" if tr.get("stopped_by_time_cap") else ""
        diff = fmt_difference(differences[spec]["recall@10"]) if spec in differences else "-"
        table.append([spec + (" (selected on val)" if spec == best else ""), f"{tr['steps']}{capped}",
                      f"{r['last_train_loss']:.3f}", f"{tr['best_val_recall@10']:.4f}",
                      *[fmt_metric(r["metrics"][m]) for m in metrics], diff,
                      f"{tr['train_seconds']:.0f}", f"{tr['real_tokens_per_second']:.0f}",
                      f"{1000 * inf['latency_per_user_s']:.0f}", f"{inf['prefill_tokens_per_user']:.1f}",
                      r["git_revision"][:7]])
    return markdown_table(header, table)


if __name__ == "__main__":
    main()
