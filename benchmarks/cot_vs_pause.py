"""FROZEN (issue 42): kept only because committed results cite it (cot-vs-pause-scientific, -05ep); do not
extend it. ``pauserec bench`` now expresses its stages: a grid's ``stages:`` (ground, rationales) and a cot model's
``uses: {backbone: ground, rationales: ...}`` (docs/benchmarks.md).

Explicit chain of thought vs pauses vs direct, under one budget: accuracy, whole-pipeline training cost, latency,
and the paper's three ratios (pause / cot) beside ours.

Stages (each a normal run directory under ``--work``; finished ones are skipped, so the benchmark resumes):

1. rationales for every ``--providers`` entry (``WORK/rationales-P``), for the training users ``train.max_users``
   selects (the same users for every arm and seed);
2. SID grounding, once (``WORK/ground``): every cot model starts from it;
3. ``direct`` and ``pause`` (K from the config, picked on validation) for every ``--seeds``, and ``cot`` per
   provider for every ``--cot-seeds``: the same steps x users per step for all (``--set train.max_steps=...``);
4. test evaluation of every run on the same fixed users (``eval.max_users`` drawn with seed 0 for all runs),
   popularity on them too, paired per-user differences against ``cot`` (template, first cot seed).

    .venv/bin/python benchmarks/cot_vs_pause.py runs/foundation/scientific --work runs/cot \
        --set train.max_users=1000 --set train.max_steps=125 --set eval.max_users=2000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from common import RESULTS, write_result

from pauserec.config import build_config
from pauserec.eval.compare import compare_runs
from pauserec.eval.run_eval import evaluate_run
from pauserec.io import read_json
from pauserec.pipeline import evaluate_popularity
from pauserec.rationale import acquire_rationales
from pauserec.report import fmt_difference, fmt_metric, markdown_table, plot_comparison
from pauserec.artifacts import RunDir, environment
from pauserec.train.grounding import ground
from pauserec.train.run import train

PAPER = {"ndcg@10 pause/cot": 1.0622, "train time pause/cot": 0.35, "latency pause/cot": 0.287}
METRICS = ["recall@5", "recall@10", "ndcg@5", "ndcg@10"]


def stage_rationales(data: str, work: Path, provider: str, sets: list[str]) -> Path:
    out = work / f"rationales-{provider}"
    if not (out / "rationales.jsonl").exists():
        acquire_rationales(build_config(overrides=[*sets, f"rationale.provider={provider}"]), data, out)
    return out


def stage_ground(data: str, work: Path, sets: list[str], ground_sets: list[str]) -> Path:
    out = work / "ground"
    if not (out / "model").exists():
        ground(build_config(overrides=[*sets, *ground_sets]), data, out, resume=(out / "checkpoints").exists())
    return out


def stage_arm(data: str, run_dir: Path, overrides: list[str], eval_users: list[str]) -> dict[str, Any]:
    """Train (unless done) and evaluate on the shared test users (unless done)."""
    cfg = build_config(overrides=overrides)
    if not (run_dir / "model").exists():
        train(cfg, data, run_dir, resume=(run_dir / "checkpoints").exists())
    if not (run_dir / "metrics.json").exists():
        evaluate_run(run_dir, build_config(overrides=[*overrides, *eval_users]), progress=True)
    run = RunDir(run_dir)
    return {**run.evaluation(), "git_revision": run.env().get("git_revision")}


def over_seeds(rows: dict[str, dict], prefix: str, metric: str) -> dict[str, float] | None:
    """Mean, min and max of a test metric over the seeds of one arm (``prefix-s*``)."""
    values = [r["metrics"][metric]["mean"] for name, r in rows.items() if name.rsplit("-s", 1)[0] == prefix]
    if len(values) < 2:
        return None
    return {"mean": statistics.mean(values), "sd": statistics.stdev(values), "min": min(values), "max": max(values),
            "seeds": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--providers", nargs="+", default=["template", "local"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--cot-seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--set", action="append", default=[], help="applies to every stage")
    ap.add_argument("--ground-set", action="append", default=[], help="applies to grounding only")
    ap.add_argument("--name", default="cot-vs-pause-scientific")
    args = ap.parse_args()
    machine, work = environment(), Path(args.work)
    eval_users = ["seed=0"]  # the same test users for every run, whatever its training seed

    rationale_dirs = {p: stage_rationales(args.data, work, p, args.set) for p in args.providers}
    grounded = stage_ground(args.data, work, args.set, args.ground_set)
    plan: dict[str, list[str]] = {}
    for seed in args.seeds:
        plan[f"direct-s{seed}"] = [*args.set, "arm.name=direct", f"seed={seed}"]
        plan[f"pause-s{seed}"] = [*args.set, "arm.name=pause", f"seed={seed}"]
    for seed in args.cot_seeds:
        for p, rdir in rationale_dirs.items():
            plan[f"cot-{p}-s{seed}"] = [*args.set, "arm.name=cot", f"arm.rationales={rdir}", f"seed={seed}",
                                        f"model.backbone={grounded / 'model'}"]
    # first seed of every arm first: a partial run still compares all arms
    order = sorted(plan, key=lambda n: (int(n.rsplit("-s", 1)[1]), n))
    rows = {name: stage_arm(args.data, work / name, plan[name], eval_users) for name in order}

    popularity_dir = work / "popularity"
    if not (popularity_dir / "metrics.json").exists():
        evaluate_popularity(build_config(overrides=[*args.set, *eval_users]), args.data, popularity_dir)
    popularity = RunDir(popularity_dir).evaluation()["metrics"]

    reference = f"cot-{args.providers[0]}-s{args.cot_seeds[0]}"
    diffs = compare_runs(work / reference, [work / n for n in rows if n != reference], ks=(5, 10))
    paired = {n: diffs[str(work / n)] for n in rows if n != reference}
    ratios = {}
    for p in args.providers:
        cot = rows[f"cot-{p}-s{args.cot_seeds[0]}"]
        pause = rows[f"pause-s{args.seeds[0]}"]
        ratios[p] = paper_ratios(pause, cot)
    seeds = {arm: {m: over_seeds(rows, arm, m) for m in METRICS} for arm in
             {n.rsplit("-s", 1)[0] for n in rows}}
    md = table(rows, paired, reference, popularity) + seeds_table(seeds) + ratios_table(ratios)
    figure = plot_comparison([("popularity", {"metrics": popularity}), *rows.items()], RESULTS / f"{args.name}.png")
    md += f"\n![{args.name}]({figure.name})\n"
    stats = {p: read_json(d / "rationale_stats.json") for p, d in rationale_dirs.items()}
    write_result(args.name, {"data": args.data, "overrides": args.set, "ground_overrides": args.ground_set,
                             "runs": rows, "paired_vs": reference, "paired": paired, "over_seeds": seeds,
                             "ratios": ratios, "paper": PAPER, "popularity": popularity, "rationale_stats": stats,
                             "grounding": read_json(grounded / "train_cost.json")}, md, machine)
    print(md)


def paper_ratios(pause: dict, cot: dict) -> dict[str, float]:
    """The paper's three ratios from one pause run and one cot run (same test users)."""
    pc, cc = pause["cost"], cot["cost"]
    return {
        "ndcg@10 pause/cot": pause["metrics"]["ndcg@10"]["mean"] / max(cot["metrics"]["ndcg@10"]["mean"], 1e-12),
        "train time pause/cot": pc["pipeline"]["seconds"] / cc["pipeline"]["seconds"],
        "train tokens pause/cot": pipeline_tokens(pc) / max(pipeline_tokens(cc), 1),
        "latency pause/cot": pc["inference"]["latency_per_user_s"] / cc["inference"]["latency_per_user_s"],
    }


def pipeline_tokens(cost: dict) -> int:
    """Tokens the training stages computed (teacher tokens are not counted: see the note)."""
    return sum(int(s["tokens"] or 0) for s in cost["pipeline"]["stages"])


def table(rows: dict, paired: dict, reference: str, popularity: dict) -> str:
    header = ["run", *[f"test {m}" for m in METRICS], f"NDCG@10 - {reference} (paired)", "pipeline train s",
              "stages", "latency/user ms", "think tok/user", "val R@10"]
    lines = [["popularity", *[fmt_metric(popularity[m]) for m in METRICS], "-", "0", "-", "-", "-", "-"]]
    for name, r in rows.items():
        c = r["cost"]
        stages = " + ".join(f"{s['stage']} {s['seconds']:.0f}s" for s in c["pipeline"]["stages"])
        lines.append([name, *[fmt_metric(r["metrics"][m]) for m in METRICS],
                      fmt_difference(paired[name]["ndcg@10"]) if name in paired else "(reference)",
                      f"{c['pipeline']['seconds']:.0f}", stages, f"{1000 * c['inference']['latency_per_user_s']:.0f}",
                      f"{c['inference'].get('think_tokens_per_user', 0):.1f}", f"{c['train']['best_val_recall@10']:.4f}"])
    users = popularity["users"]
    return f"Test users: {users['count']:.0f} of {users.get('of', '?')} ({users.get('subset', '')}).\n\n" + \
        markdown_table(header, lines)


def seeds_table(seeds: dict) -> str:
    lines = [[arm, *[f"{v['mean']:.4f} ± {v['sd']:.4f} ({v['seeds']} seeds)" if v else "-" for v in (s[m] for m in METRICS)]]
             for arm, s in sorted(seeds.items()) if any(s.values())]
    if not lines:
        return ""
    return "\nOver seeds (mean ± sd of the test metric):\n\n" + markdown_table(["arm", *METRICS], lines)


def ratios_table(ratios: dict) -> str:
    keys = list(next(iter(ratios.values())))
    lines = [[k, *[f"{ratios[p][k]:.3f}" for p in ratios], f"{PAPER[k]:.3f}" if k in PAPER else "-"] for k in keys]
    return "\nThe paper's ratios beside ours:\n\n" + markdown_table(["ratio", *[f"ours, cot={p}" for p in ratios], "paper"], lines)


if __name__ == "__main__":
    main()
