"""Time to quality: training recipes side by side in one run, on the same validation and test users.

Each recipe (a name and config overrides) trains one run directory under ``--work``, validating every
``train.eval_every`` steps on the same fixed validation users. The clock is training wall time without the
validation passes (``eval_train_seconds`` in the train log): validation frequency is a measurement choice, not
part of a recipe. For each recipe the result gives the first validation point at or above ``--threshold`` and its
time, the ratio of those times against a baseline recipe (``--baseline``, default the first), the curve (PNG), and the selected
checkpoint's test metrics on one fixed test subset with the paired difference against the baseline.
With ``--seeds``, every recipe but the baseline trains once per seed (seed 0 in ``WORK/NAME``, seed S in
``WORK/NAME-sS``, all on the baseline's validation and test users), the baseline once per ``--baseline-seeds``
(default 0 only), and a second table summarises each recipe over its seeds: the crossing of every seed, the crossing
of the seed-averaged curve, test metrics with a t-interval over seeds, and the paired difference with each user's
metric averaged over the recipe's seeds and over the baseline's. Ratios divide by the crossing of the baseline's
seed-averaged curve (its only curve when it ran once); where that curve never reaches the threshold, the crossing is
later than the baseline's whole training clock and the ratios are upper bounds (``< x``). A threshold-free column
times each seed-averaged curve to the best value of the baseline's.
Finished runs are reused, so an interrupted benchmark resumes; a run directory that holds ``metrics.json`` counts
as finished without its weights, so an archive of the light files (config, logs, costs, metrics, predictions; see
``time_to_quality_side_by_side.sh``) carries a long comparison across machines.

    .venv/bin/python benchmarks/time_to_quality.py runs/foundation/scientific --work runs/ttq \\
        --recipe committed "train.packing=none train.batch_size=64 train.lr=1e-3 train.max_steps=300 train.warmup_ratio=0.17 model.sid_init=noise train.eval_every=50" \\
        --recipe packed "train.max_steps=400 train.eval_every=50" --set arm.name=direct --set train.val_users=200 \\
        --set eval.max_users=1000 --threshold 0.080
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common import RESULTS, write_result

from pauserec.bench.cells import foundation_hashes
from pauserec.bench.table import seed_interval
from pauserec.config import build_config
from pauserec.eval.compare import compare_runs, paired_difference, per_user_values
from pauserec.eval.run_eval import evaluate_run
from pauserec.io import read_json
from pauserec.report import fmt_difference, fmt_metric, markdown_table, save_figure
from pauserec.artifacts import RunDir, environment
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


def plot_curves(curves: dict[str, list[dict[str, float]]], groups: dict[str, dict[str, str]], threshold: float,
                path: Path) -> Path:
    """Validation Recall@10 against the training clock: one colour per recipe; with several seeds, each seed thin
    and their point-by-point mean thick."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for i, (recipe, group) in enumerate(groups.items()):
        color = f"C{i}"
        runs = [curves[n] for n in group]
        if len(runs) > 1:
            for c in runs:
                ax.plot([p["train_seconds"] / 60 for p in c], [p["recall@10"] for p in c], color=color, alpha=0.3,
                        linewidth=0.8)
            runs = [mean_curve(runs)]
            recipe = f"{recipe} (mean of {len(group)} seeds)"
        c = runs[0]
        ax.plot([p["train_seconds"] / 60 for p in c], [p["recall@10"] for p in c], marker="o", color=color,
                label=recipe)
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
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="train every recipe but the baseline once per seed (seed 0 keeps the recipe's name)")
    ap.add_argument("--baseline-seeds", type=int, nargs="+", default=[0],
                    help="the baseline's seeds: one run of a slow baseline is one draw of its crossing time too")
    ap.add_argument("--name", default="time-to-quality")
    args = ap.parse_args()
    machine = environment()
    work = Path(args.work)

    if args.baseline and args.baseline not in [n for n, _ in args.recipe]:
        raise SystemExit(f"--baseline {args.baseline} is not one of the recipes")
    base = args.baseline or args.recipe[0][0]
    groups = seeded_runs(args.recipe, base, args.seeds, args.baseline_seeds)
    runs = {run: overrides for group in groups.values() for run, overrides in group.items()}
    check_foundation(work, list(runs), args.data)  # before hours of training next to a stale archive
    rows, curves = {}, {}
    for name, overrides in runs.items():
        cfg = build_config(overrides=[*args.set, *overrides.split()])
        run_dir = work / name
        if not (run_dir / "metrics.json").exists():  # an evaluated run is reused, with or without its weights
            if not (run_dir / "model").exists():
                train(cfg, args.data, run_dir, resume=(run_dir / "checkpoints").exists())
            evaluate_run(run_dir, cfg)
        curves[name] = validation_curve(run_dir)
        rows[name] = {"overrides": overrides, "git_revision": RunDir(run_dir).env()["git_revision"],
                      "curve": curves[name], "loss_curve": loss_curve(run_dir),
                      "first_at_threshold": first_reaching(curves[name], args.threshold),
                      **RunDir(run_dir).evaluation()}
    others = [n for n in runs if n != base]
    diffs = compare_runs(work / base, [work / n for n in others], ks=(5, 10))
    for n in others:
        rows[n]["paired_vs_baseline"] = diffs[str(work / n)]
    seeded = len(args.seeds) > 1 or len(args.baseline_seeds) > 1
    seeds = {name: seed_summary(work, list(group), list(groups[base]), rows, args.threshold)
             for name, group in groups.items() if name != base or len(group) > 1} if seeded else {}
    md = report(rows, base, args.threshold)
    if seeds:
        md += "\n" + seeds_report(seeds, base, len(groups[base]), args.threshold)
    figure = plot_curves(curves, groups, args.threshold, RESULTS / f"{args.name}.png")
    md += f"\n![{args.name}]({figure.name})\n"
    write_result(args.name, {"data": args.data, "shared_overrides": args.set, "threshold": args.threshold,
                             "baseline": base, "seeds": args.seeds, "baseline_seeds": args.baseline_seeds,
                             "recipes": rows, "over_seeds": seeds}, md, machine)
    print(md)


def check_foundation(work: Path, names: list[str], data: str) -> None:
    """Every existing run trained on the dataset and SID catalogue ``data`` holds now (``env.json`` hashes): runs
    archived on one machine and reused on another are only comparable if both built the same foundation."""
    now = foundation_hashes(data)
    for name in names:
        if (work / name / "env.json").exists():
            env = RunDir(work / name).env()
            stale = [k for k, v in now.items() if env.get(k, v) != v]
            if stale:
                raise SystemExit(f"{work / name} was trained on another foundation than {data} holds now "
                                 f"({', '.join(f'{k} {env[k]} vs {now[k]}' for k in stale)})")


def seeded_runs(recipes: list[list[str]], base: str, seeds: Sequence[int],
                base_seeds: Sequence[int] = (0,)) -> dict[str, dict[str, str]]:
    """``{recipe: {run name: overrides}}``: the baseline once per ``base_seeds``, every other recipe once per seed
    (seed 0 under the recipe's own name). ``eval.subset_seed`` is fixed, so every run validates and tests on the
    baseline's users."""
    return {name: {(name if seed == 0 else f"{name}-s{seed}"): (overrides if seed == 0 else f"{overrides} seed={seed}")
                   for seed in (base_seeds if name == base else seeds)}
            for name, overrides in recipes}


def mean_curve(curves: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """The seeds' validation curves averaged point by point over the steps every seed validated at."""
    steps = sorted(set.intersection(*({p["step"] for p in c} for c in curves)))
    at = [{p["step"]: p for p in c} for c in curves]
    return [{"step": s, **{k: float(np.mean([a[s][k] for a in at])) for k in ("train_seconds", "recall@10")}}
            for s in steps]


def seed_summary(work: Path, names: list[str], base_names: list[str], rows: dict, threshold: float) -> dict:
    """One recipe over its seeds (``names``): crossings, the seed-mean curve's crossing, test metrics and the paired
    difference against the baseline's seeds (``base_names``) with each user's metric averaged over each side's seeds
    (``compare_runs`` has already checked that every run was decoded on the same users); none for the baseline
    itself."""
    curve = mean_curve([rows[n]["curve"] for n in names])
    base_curve = mean_curve([rows[n]["curve"] for n in base_names])
    base_hit = first_reaching(base_curve, threshold)
    base_best = max(base_curve, key=lambda p: p["recall@10"])  # the first of equal maxima
    paired = None
    if names != base_names:
        ref = seed_mean_per_user(work, base_names)
        mine = seed_mean_per_user(work, names)
        paired = {m: paired_difference(ref[m], mine[m]) for m in ("recall@10", "ndcg@10")}
    return {
        "runs": names,
        "base_seconds": base_hit["train_seconds"] if base_hit else None,
        "base_clock": base_curve[-1]["train_seconds"],  # where base_seconds is None, the crossing is later than this
        "crossings": {n: rows[n]["first_at_threshold"] for n in names},
        "mean_curve": curve,
        "mean_curve_crossing": first_reaching(curve, threshold),
        # a threshold-free reading: the time to the baseline's own best (seed-mean) validation value, and its ratio
        "baseline_best": base_best,
        "to_baseline_best": first_reaching(curve, base_best["recall@10"]),
        "test": {m: seed_interval([rows[n]["metrics"][m]["mean"] for n in names]) for m in ("recall@10", "ndcg@10")},
        "paired_vs_baseline": paired,
    }


def seed_mean_per_user(work: Path, names: list[str]) -> dict[str, np.ndarray]:
    """``{metric: (n_users,)}``: each test user's Recall/NDCG@10 averaged over the runs ``names``."""
    values = [per_user_values(work / n, ks=(10,))[1] for n in names]
    return {m: np.mean([v[m] for v in values], axis=0) for m in ("recall@10", "ndcg@10")}


def seeds_report(seeds: dict, base: str, base_runs: int, threshold: float) -> str:
    """The over-seeds table: one row per recipe (the baseline's where it ran more than once)."""
    header = ["recipe", "seeds", f"train s to val R@10 >= {threshold:.3f}, per seed", "ratio vs " + base + ", per seed",
              "seed-mean curve: first >= threshold (train s)", "ratio vs " + base,
              f"seed-mean curve: first >= {base}'s best (train s, ratio)", "test R@10 (t-interval over seeds)",
              "test N@10", "R@10 vs " + base + " (paired, seed-mean per user)", "N@10 vs " + base + " (paired)"]
    table = []
    for name, s in seeds.items():
        hits = list(s["crossings"].values())
        base_s = s["base_seconds"]
        base_clock = s["base_clock"]
        table.append([
            name, str(len(s["runs"])),
            ", ".join(f"{h['train_seconds']:.0f}" if h else "never" for h in hits),
            ", ".join(ratio_text(h and h["train_seconds"], base_s, base_clock) for h in hits),
            (f"step {s['mean_curve_crossing']['step']} ({s['mean_curve_crossing']['train_seconds']:.0f})"
             if s["mean_curve_crossing"] else "never"),
            ratio_text(s["mean_curve_crossing"] and s["mean_curve_crossing"]["train_seconds"], base_s, base_clock),
            to_best_text(s["to_baseline_best"], s["baseline_best"]),
            fmt_metric(s["test"]["recall@10"]), fmt_metric(s["test"]["ndcg@10"]),
            *([fmt_difference(s["paired_vs_baseline"][m]) for m in ("recall@10", "ndcg@10")]
              if s["paired_vs_baseline"] else ["-", "-"]),
        ])
    return (f"Over seeds (every seed on the same validation and test users; {base} ran {base_runs} "
            f"time{'s' if base_runs > 1 else ''}, and ratios divide by the crossing of its "
            f"{'seed-mean ' if base_runs > 1 else ''}curve; `< x` where that curve never reached the threshold: "
            "its crossing is then later than its whole training clock, which x divides by; the threshold-free "
            f"column times each curve to {base}'s best seed-mean validation Recall@10):\n\n") \
        + markdown_table(header, table)


def to_best_text(hit: dict | None, base_best: dict) -> str:
    """``"step 450 (464 s, 0.269)"``: where a seed-mean curve first reaches the baseline's best seed-mean validation
    Recall@10 (``base_best``, reached at its ``train_seconds``), and the ratio of the two times."""
    if hit is None:
        return f"never (best {base_best['recall@10']:.4f})"
    ratio = hit["train_seconds"] / base_best["train_seconds"]
    return f"step {hit['step']} ({hit['train_seconds']:.0f} s, {ratio:.3f})"


def ratio_text(seconds: float | None, base_seconds: float | None, base_clock: float) -> str:
    """A crossing time over the baseline's: ``"0.390"``; ``"< 0.340"`` where the baseline never crossed within its
    whole training clock ``base_clock`` (seconds), so only an upper bound is known; ``"-"`` where this run never
    crossed."""
    if seconds is None:
        return "-"
    return f"{seconds / base_seconds:.3f}" if base_seconds else f"< {seconds / base_clock:.3f}"


def report(rows: dict, base: str, threshold: float) -> str:
    base_hit = rows[base]["first_at_threshold"]
    header = ["recipe", "overrides", f"first val R@10 >= {threshold:.3f}", "train s to it", "ratio vs " + base,
              "steps", "train s (all)", "examples/s", "selected step (val R@10)", "test R@10", "test N@10",
              "R@10 vs " + base + " (paired)", "N@10 vs " + base + " (paired)"]
    table = []
    for name, r in rows.items():
        hit, tr = r["first_at_threshold"], r["cost"]["train"]
        clock = r["curve"][-1]["train_seconds"]  # the training clock at the last validation (train_seconds has them)
        selected = tr.get("kept_step") or int(tr["best_checkpoint"].rsplit("-", 1)[1])  # kept_step: since train.select
        paired = r.get("paired_vs_baseline")
        table.append([
            name, f"`{r['overrides']}`",
            f"step {hit['step']} ({hit['recall@10']:.3f})" if hit else "never",
            f"{hit['train_seconds']:.0f}" if hit else "-",
            ratio_text(hit and hit["train_seconds"], base_hit and base_hit["train_seconds"],
                       rows[base]["curve"][-1]["train_seconds"]),
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
