"""The main job (``pauserec demo`` / ``make demo``): every stage on the embedded default, arms side by side.

Prepare the data, build Semantic IDs, evaluate popularity and SASRec (the classic bar), train and evaluate the
``direct`` and ``pause`` arms on the packaged SmolLM2, then compare them user by user (paired bootstrap) against
popularity, SASRec and ``direct``. Everything lands in one output directory; ``demo.json`` there holds the
comparison, each arm's share of SASRec's Recall@10 and the wall time of each stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import pipeline
from .artifacts import RunDir, environment
from .config import RunConfig, build_config, config_to_yaml
from .eval.compare import compare_runs
from .io import write_json, write_text

ARMS = (("direct", ["arm.name=direct"]), ("pause", ["arm.name=pause"]))
BASELINES = ("popularity", "sasrec")


def run_demo(cfg: RunConfig, out: str | Path, announce: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the main job into ``out`` and return what ``out/demo.json`` holds.

    ``announce`` receives one line per stage (the CLI draws it as a rule).
    """
    out = Path(out)
    data_dir = out / "data"
    seconds: dict[str, float] = {}
    n_stages = 2 + len(BASELINES) + 2 * len(ARMS)
    stage = iter(range(1, n_stages + 1))
    t_start = time.perf_counter()

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        announce(f"{next(stage)}/{n_stages} {name}")
        t0 = time.perf_counter()
        result = fn()
        seconds[name] = time.perf_counter() - t0
        return result

    dataset = timed(f"prepare {cfg.data.path}", lambda: pipeline.prepare(cfg, data_dir))
    catalog = timed("semantic IDs", lambda: pipeline.build_sids(cfg, data_dir))
    for name in BASELINES:
        timed(f"{name} baseline", lambda: pipeline.evaluate_baseline(name, cfg, data_dir, out / name, progress=False))
    for name, overrides in ARMS:
        arm_cfg = build_config(base=cfg.model_dump(), overrides=overrides)
        timed(f"train {name}", lambda: pipeline.train(arm_cfg, data_dir, out / name))
        timed(f"evaluate {name}", lambda: pipeline.evaluate(out / name, arm_cfg))

    arms = [a for a, _ in ARMS]
    runs = {name: out / name for name in [*BASELINES, *arms]}
    ks = [k for k in (5, 10) if k in cfg.eval.ks]
    evaluations = {name: RunDir(d).evaluation() for name, d in runs.items()}
    summary = {
        "dataset": {"name": dataset.name, "users": dataset.n_users, "items": dataset.n_items,
                    "interactions": dataset.n_interactions, "source": cfg.data.path},
        "sid_levels": catalog.level_sizes,
        "runs": evaluations,
        "paired_vs_popularity": _paired(runs["popularity"], [runs[a] for a in ["sasrec", *arms]], ks),
        "paired_vs_sasrec": _paired(runs["sasrec"], [runs[a] for a in arms], ks),
        "paired_vs_direct": _paired(runs["direct"], [runs[a] for a in arms if a != "direct"], ks),
        "share_of_sasrec": share_of(evaluations, "sasrec", arms),
        "stage_seconds": seconds,
        "wall_seconds": time.perf_counter() - t_start,
        "environment": environment(),
        "config": cfg.model_dump(mode="json"),
    }
    write_json(out / "demo.json", summary)
    write_text(out / "config.yaml", config_to_yaml(cfg))
    return summary


def _paired(baseline: Path, others: list[Path], ks: list[int]) -> dict[str, dict[str, dict[str, float]]]:
    return {Path(k).name: d for k, d in compare_runs(baseline, others, ks=ks).items()}


def headline_recall(metrics: dict[str, Any]) -> str:
    """``"recall@10"``, or the largest Recall@k in ``metrics`` when 10 was not computed."""
    return "recall@10" if "recall@10" in metrics else max((m for m in metrics if m.startswith("recall")), key=lambda m: int(m[7:]))


def share_of(evaluations: dict[str, dict[str, Any]], reference: str, arms: list[str]) -> dict[str, float | None]:
    """Each arm's headline Recall as a fraction of ``reference``'s on the same users (None when that is 0)."""
    metric = headline_recall(evaluations[reference]["metrics"])
    ref = evaluations[reference]["metrics"][metric]["mean"]
    return {a: (evaluations[a]["metrics"][metric]["mean"] / ref if ref > 0 else None) for a in arms}


def beats(summary: dict[str, Any], baseline: str) -> dict[str, bool]:
    """For each model compared with ``baseline`` ("popularity", "sasrec" or "direct"): is the paired 95% interval of
    the headline Recall (:func:`headline_recall`) above 0?"""
    return {arm: d[headline_recall(d)]["ci_low"] > 0 for arm, d in summary[f"paired_vs_{baseline}"].items()}
