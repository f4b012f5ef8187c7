"""The main job (``pauserec demo`` / ``make demo``): every stage on the embedded default, arms side by side.

Prepare the data and build Semantic IDs, then run the packaged grid ``configs/grids/demo.yaml`` through the bench
orchestrator (:func:`pauserec.bench.run_grid`): popularity and SASRec (the classic bar), the ``direct`` and
``pause`` arms trained on the packaged SmolLM2 and evaluated, one seed, each cell a run directory
``OUT/demo/MODEL/seedS`` (S: the config's seed). Then compare them user by user (paired bootstrap) against popularity, SASRec and
``direct``. ``demo.json`` in the output directory holds the comparison, each arm's share of SASRec's Recall@10 and
the wall time of each stage. Run again into the same directory, the finished cells are reused (a changed config
is refused, as in any grid).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import pipeline
from .artifacts import RunDir, environment
from .baselines import BASELINES
from .bench import GridSpec, load_grid, run_grid
from .config import RunConfig, config_to_yaml
from .errors import PauseRecError
from .eval.compare import compare_runs
from .io import write_json, write_text

GRID = Path(__file__).parent / "configs" / "grids" / "demo.yaml"


def demo_grid(out: str | Path) -> GridSpec:
    """The packaged demo grid with its data directories under ``out`` (where :func:`run_demo` prepares them)."""
    grid = load_grid(GRID)
    return grid.model_copy(update={"datasets": {name: str(Path(out) / d) for name, d in grid.datasets.items()}})


def run_demo(cfg: RunConfig, out: str | Path, announce: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the main job into ``out`` and return what ``out/demo.json`` holds.

    ``announce`` receives one line per stage (the CLI draws it as a rule).
    """
    out = Path(out)
    grid = demo_grid(out).model_copy(update={"seeds": [cfg.seed]})  # the demo's one seed is its config's
    (dataset_name, data_dir), = grid.datasets.items()
    models = list(grid.models)
    n_stages = 2 + sum(1 if name in BASELINES else 2 for name in models)
    stage = iter(range(1, n_stages + 1))
    seconds: dict[str, float] = {}
    t_start = time.perf_counter()

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        announce(f"{next(stage)}/{n_stages} {name}")
        t0 = time.perf_counter()
        result = fn()
        seconds[name] = time.perf_counter() - t0
        return result

    dataset = timed(f"prepare {cfg.data.path}", lambda: pipeline.prepare(cfg, data_dir))
    catalog = timed("semantic IDs", lambda: pipeline.build_sids(cfg, data_dir))
    steps = lambda cell, step: announce(f"{next(stage)}/{n_stages} {_step_name(cell.model, step)}")  # noqa: E731
    result = run_grid(grid, out, log=lambda m: None, defaults=cfg, report=False, on_step=steps, progress=True)
    cells = {c.split("/")[1]: s for c, s in result["cells"].items()}
    if failed := {m: s for m, s in cells.items() if s.get("status") != "done"}:
        model, s = next(iter(failed.items()))
        raise PauseRecError(f"demo: {model} {s.get('status')}: {s.get('error')}\n{''.join(s.get('traceback', []))}")
    for model, s in cells.items():
        for step, t in s.get("seconds", {}).items():
            seconds[_step_name(model, step)] = t

    arms = [m for m in models if m not in BASELINES]
    runs = {name: out / dataset_name / name / f"seed{cfg.seed}" for name in models}
    ks = [k for k in (5, 10) if k in cfg.eval.ks]
    evaluations = {name: RunDir(d).evaluation() for name, d in runs.items()}
    summary = {
        "dataset": {"name": dataset.name, "users": dataset.n_users, "items": dataset.n_items,
                    "interactions": dataset.n_interactions, "source": cfg.data.path},
        "sid_levels": catalog.level_sizes,
        "runs": evaluations,
        "paired_vs_popularity": _paired(runs, "popularity", ["sasrec", *arms], ks),
        "paired_vs_sasrec": _paired(runs, "sasrec", arms, ks),
        "paired_vs_direct": _paired(runs, "direct", [a for a in arms if a != "direct"], ks),
        "share_of_sasrec": share_of(evaluations, "sasrec", arms),
        "stage_seconds": seconds,
        "wall_seconds": time.perf_counter() - t_start,
        "environment": environment(),
        "config": cfg.model_dump(mode="json"),
    }
    write_json(out / "demo.json", summary)
    write_text(out / "config.yaml", config_to_yaml(cfg))
    return summary


def _step_name(model: str, step: str) -> str:
    """A cell's step as the demo names it: ``popularity baseline``, ``train direct``, ``evaluate direct``."""
    if model in BASELINES:
        return f"{model} baseline"
    return f"{'train' if step == 'fit' else 'evaluate'} {model}"


def _paired(runs: dict[str, Path], baseline: str, others: list[str], ks: list[int]
            ) -> dict[str, dict[str, dict[str, float]]]:
    """Each of ``others``' paired differences against ``baseline``, by model name."""
    diffs = compare_runs(runs[baseline], [runs[m] for m in others], ks=ks)
    return {m: diffs[str(runs[m])] for m in others}


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
