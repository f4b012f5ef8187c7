"""Classic baselines evaluated under the same contract as the LLM arms.

:data:`BASELINES` maps a name to its class as ``"module:Class"`` (``.module``: a module of this package; imported
only when used: SASRec pulls in cornac). A class is a :class:`pauserec.eval.contract.Baseline`: ``Class(cfg, progress)``, ``fit(data,
split, run) -> TrainCost`` on the training parts, ``rank(examples, k, exclude) -> Ranking`` over the whole catalogue.
:func:`run_baseline` fits it and evaluates it with :func:`pauserec.eval.contract.evaluate_ranker` into a run
directory (``config.yaml``, ``env.json``, ``metrics.json``, ``predictions.jsonl``, ``cost.json``). The CLI
(``pauserec eval --baseline NAME``) and the grid (``pauserec bench``) know baselines only through this table: a new
baseline is one module and one line here (docs/evaluation.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ..artifacts import DataDir, RunDir
from ..config import RunConfig
from ..errors import PauseRecError
from ..eval.contract import Baseline, evaluate_ranker

BASELINES: dict[str, str] = {
    "popularity": ".popularity:PopularityRanker",
    "sasrec": ".sasrec:SASRecRanker",
    "sasrec_ce": ".sasrec_ce:SASRecCERanker",
    "hstu": ".hstu:HSTURanker",
    "tiger": ".tiger:TigerRanker",
}

BaselineFn = Callable[..., dict[str, Any]]


def make_baseline(name: str, cfg: RunConfig, progress: bool = False) -> Baseline:
    """An unfitted instance of baseline ``name``; one clear line when there is none."""
    if name not in BASELINES:
        raise PauseRecError(f"unknown baseline {name!r} (available: {', '.join(sorted(BASELINES))})")
    module, cls = BASELINES[name].split(":")
    return getattr(importlib.import_module(module, package=__name__), cls)(cfg, progress)


def run_baseline(name: str, cfg: RunConfig, data_dir: str | Path, run_dir: str | Path,
                 progress: bool = True) -> dict[str, Any]:
    """Fit baseline ``name`` on ``data_dir``'s training parts and evaluate it on ``cfg.eval.split`` into
    ``run_dir``; returns ``metrics.json``'s content with ``cost``."""
    ranker = make_baseline(name, cfg, progress)
    data = DataDir(data_dir)
    split = data.split(cfg)
    run = RunDir.create(run_dir, cfg, kind=f"baseline:{name}", **data.facts(split, catalog=ranker.uses_catalog))
    train = ranker.fit(data, split, run)
    return evaluate_ranker(ranker, cfg, data, run, train, split=split)


def get_baseline(name: str) -> BaselineFn:
    """The entry point ``(cfg, data_dir, run_dir, progress=True) -> result`` of baseline ``name``; one clear line
    when there is none."""
    if name not in BASELINES:
        raise PauseRecError(f"unknown baseline {name!r} (available: {', '.join(sorted(BASELINES))})")
    return partial(run_baseline, name)
