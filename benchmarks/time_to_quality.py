"""Time to quality: training recipes side by side in one run, on the same validation and test users.

Each recipe (a name and config overrides) trains one run directory under ``--work``, validating every
``train.eval_every`` steps on the same fixed validation users. The clock is training wall time without the
validation passes (``eval_train_seconds`` in the train log): validation frequency is a measurement choice, not
part of a recipe. For each recipe the result gives the first validation point at or above ``--threshold`` and its
time, the ratio of those times against a baseline recipe (``--baseline``, default the first), the curve (PNG), and the selected
checkpoint's test metrics on one fixed test subset with the paired difference against the baseline.
Finished runs are reused, so an interrupted benchmark resumes.

    .venv/bin/python benchmarks/time_to_quality.py runs/foundation/scientific --work runs/ttq \\
        --recipe committed "train.packing=none train.batch_size=64 train.lr=1e-3 train.max_steps=300 train.warmup_ratio=0.17 model.sid_init=noise train.eval_every=50" \\
        --recipe packed "train.max_steps=400 train.eval_every=50" --set arm.name=direct --set train.val_users=200 \\
        --set eval.max_users=1000 --threshold 0.080
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import RESULTS, write_result

from pauserec.config import build_config
from pauserec.eval.compare import compare_runs
from pauserec.eval.run_eval import evaluate_run
from pauserec.io import read_json
from pauserec.report import fmt_difference, fmt_metric, markdown_table, save_figure
from pauserec.runs import RunDir, environment
from pauserec.train.run import train


def validation_curve(run_dir: Path) -> list[dict[str, float]]:
    """``[{"step", "train_seconds", "recall@10"}, ...]`` from a run's train log, in step order."""
    return [
        {"step": e["step"], "train_seconds": e["eval_train_seconds"], "recall@10": e["eval_recall@10"]}
        for e in read_json(run_dir / "train_log.json")
        if "eval_recall@10" in e
    ]


def loss_curve(run_dir: Path) -> list[dict[str, float]]:
    """``[{"step", "loss"}, ...]``: the logged training loss (mean SID NLL over each logging window, nats)."""
    return [{"step": e["step"], "loss": e["loss"]} for e in read_json(run_dir / "train_log.json") if "loss" in e]


def first_reaching(curve: list[dict[str, float]], threshold: float) -> dict[str, float] | None:
    return next((p for p in curve if p["recall@10"] >= threshold - 1e-12), None)


def plot_curves(curves: dict[str, list[dict[str, float]]], threshold: float, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for name, curve in curves.items():
        ax.plot([p["train_seconds"] / 60 for p in curve], [p["recall@10"] for p in curve], marker="o", label=name)
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("training wall time, minutes (validation excluded)")
    ax.set_ylabel("validation Recall@10")
    ax.set_title("Time to quality")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--recipe", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), required=True,
                    help="a recipe: its name and space-separated section.key=value overrides; the first is the baseline")
    ap.add_argument("--set", action="append", default=[], help="overrides shared by every recipe")
    ap.add_argument("--baseline", help="the recipe the others are compared with (default: the first)")
    ap.add_argument("--threshold", type=float, default=0.080)
    ap.add_argument("--name", default="time-to-quality")
    args = ap.parse_args()
    machine = environment()
    work = Path(args.work)

    if args.baseline and args.baseline not in [n for n, _ in args.recipe]:
        raise SystemExit(f"--baseline {args.baseline} is not one of the recipes")
    rows, curves = {}, {}
    for name, overrides in args.recipe:
        cfg = build_config(overrides=[*args.set, *overrides.split()])
        run_dir = work / name
        if not (run_dir / "model").exists():
            train(cfg, args.data, run_dir, resume=(run_dir / "checkpoints").exists())
        if not (run_dir / "metrics.json").exists():
            evaluate_run(run_dir, cfg)
        curves[name] = validation_curve(run_dir)
        rows[name] = {"overrides": overrides, "git_revision": RunDir(run_dir).env()["git_revision"],
                      "curve": curves[name], "loss_curve": loss_curve(run_dir),
                      "first_at_threshold": first_reaching(curves[name], args.threshold),
                      **RunDir(run_dir).evaluation()}
    base = args.baseline or args.recipe[0][0]
    others = [n for n, _ in args.recipe if n != base]
    diffs = compare_runs(work / base, [work / n for n in others], ks=(5, 10))
    for n in others:
        rows[n]["paired_vs_baseline"] = diffs[str(work / n)]
    md = report(rows, base, args.threshold)
    figure = plot_curves(curves, args.threshold, RESULTS / f"{args.name}.png")
    md += f"\n![{args.name}]({figure.name})\n"
    write_result(args.name, {"data": args.data, "shared_overrides": args.set, "threshold": args.threshold,
                             "baseline": base, "recipes": rows}, md, machine)
    print(md)


def report(rows: dict, base: str, threshold: float) -> str:
    base_hit = rows[base]["first_at_threshold"]
    header = ["recipe", "overrides", f"first val R@10 >= {threshold:.3f}", "train s to it", "ratio vs " + base,
              "steps", "train s (all)", "examples/s", "selected step (val R@10)", "test R@10", "test N@10",
              "R@10 vs " + base + " (paired)", "N@10 vs " + base + " (paired)"]
    table = []
    for name, r in rows.items():
        hit, tr = r["first_at_threshold"], r["cost"]["train"]
        clock = r["curve"][-1]["train_seconds"]  # the training clock at the last validation (train_seconds has them)
        selected = int(tr["best_checkpoint"].rsplit("-", 1)[1])
        ratio = hit["train_seconds"] / base_hit["train_seconds"] if hit and base_hit else None
        paired = r.get("paired_vs_baseline")
        table.append([
            name, f"`{r['overrides']}`",
            f"step {hit['step']} ({hit['recall@10']:.3f})" if hit else "never",
            f"{hit['train_seconds']:.0f}" if hit else "-",
            f"{ratio:.3f}" if ratio is not None else "-",
            str(tr["steps"]), f"{clock:.0f}",
            f"{tr['examples_seen'] / clock:.1f}",
            f"{selected} ({tr['best_val_recall@10']:.4f})",
            fmt_metric(r["metrics"]["recall@10"]), fmt_metric(r["metrics"]["ndcg@10"]),
            fmt_difference(paired["recall@10"]) if paired else "-",
            fmt_difference(paired["ndcg@10"]) if paired else "-",
        ])
    users = rows[base]["metrics"]["users"]["count"]
    selection = ", ".join(f"{n} by {r['cost']['train'].get('selection_metric', 'validation recall@10')}"
                          for n, r in rows.items())
    return markdown_table(header, table) + f"\nTest metrics on the same {users:.0f} fixed test users; validation on the " \
        "same fixed validation users for every recipe. Train seconds exclude validation passes. Each recipe's code " \
        f"selects its checkpoint: {selection}.\n"


if __name__ == "__main__":
    main()
