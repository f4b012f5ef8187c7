"""The main job (``pauserec demo`` / ``make demo``): every stage on the embedded default, arms side by side.

Prepare the data, build Semantic IDs, evaluate popularity, train and evaluate the ``direct`` and ``pause`` arms on
the packaged SmolLM2, then compare them user by user (paired bootstrap) against popularity and against ``direct``.
Everything lands in one output directory; ``demo.json`` there holds the comparison and the wall time of each stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import pipeline
from .config import RunConfig, build_config, config_to_yaml
from .eval.compare import compare_runs
from .io import write_json, write_text
from .runs import RunDir, environment

ARMS = (("direct", ["arm.name=direct"]), ("pause", ["arm.name=pause"]))


def run_demo(cfg: RunConfig, out: str | Path, announce: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the main job into ``out`` and return what ``out/demo.json`` holds.

    ``announce`` receives one line per stage (the CLI draws it as a rule).
    """
    out = Path(out)
    data_dir = out / "data"
    seconds: dict[str, float] = {}
    n_stages = 3 + 2 * len(ARMS)
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
    timed("popularity baseline", lambda: pipeline.evaluate_popularity(cfg, data_dir, out / "popularity"))
    from .eval.run_eval import evaluate_run
    from .train.run import train

    for name, overrides in ARMS:
        arm_cfg = build_config(base=cfg.model_dump(), overrides=overrides)
        timed(f"train {name}", lambda: train(arm_cfg, data_dir, out / name))
        timed(f"evaluate {name}", lambda: evaluate_run(out / name, arm_cfg))

    runs = {name: out / name for name in ["popularity", *[a for a, _ in ARMS]]}
    ks = [k for k in (5, 10) if k in cfg.eval.ks]
    summary = {
        "dataset": {"name": dataset.name, "users": dataset.n_users, "items": dataset.n_items,
                    "interactions": dataset.n_interactions, "source": cfg.data.path},
        "sid_levels": catalog.level_sizes,
        "runs": {name: RunDir(d).evaluation() for name, d in runs.items()},
        "paired_vs_popularity": _paired(runs["popularity"], [runs[a] for a, _ in ARMS], ks),
        "paired_vs_direct": _paired(runs["direct"], [runs[a] for a, _ in ARMS if a != "direct"], ks),
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


def beats(summary: dict[str, Any], baseline: str) -> dict[str, bool]:
    """For each arm compared with ``baseline`` ("popularity" or "direct"): is the paired 95% interval of Recall@10
    (of the largest Recall@k computed, when 10 is not) above 0?"""
    out = {}
    for arm, d in summary[f"paired_vs_{baseline}"].items():
        metric = "recall@10" if "recall@10" in d else max((m for m in d if m.startswith("recall")), key=lambda m: int(m[7:]))
        out[arm] = d[metric]["ci_low"] > 0
    return out
