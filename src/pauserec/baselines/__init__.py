"""Classic baselines evaluated under the same contract as the LLM arms.

:data:`BASELINES` maps a name to its entry point ``(cfg, data_dir, run_dir, progress=True) -> result``: it trains
the baseline on ``data_dir``'s training part if it learns, ranks ``cfg.eval.split`` over the whole catalogue and
writes a run directory (``config.yaml``, ``env.json``, ``metrics.json``, ``predictions.jsonl``, ``cost.json``);
``result`` is ``metrics.json``'s content plus ``cost``. The CLI (``pauserec eval --baseline NAME``) and the grid
(``pauserec bench``) know baselines only through this table: a new one is one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import PauseRecError

BaselineFn = Callable[..., dict[str, Any]]


def _popularity(cfg: RunConfig, data_dir: str | Path, run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    from ..pipeline import evaluate_popularity

    return evaluate_popularity(cfg, data_dir, run_dir)


def _sasrec(cfg: RunConfig, data_dir: str | Path, run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    from .sasrec import run_sasrec  # imports cornac only when used

    return run_sasrec(cfg, data_dir, run_dir, progress)


def _tiger(cfg: RunConfig, data_dir: str | Path, run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    from .tiger import run_tiger

    return run_tiger(cfg, data_dir, run_dir, progress)


BASELINES: dict[str, BaselineFn] = {"popularity": _popularity, "sasrec": _sasrec, "tiger": _tiger}


def get_baseline(name: str) -> BaselineFn:
    """The entry point of baseline ``name``; one clear line when there is none."""
    if name not in BASELINES:
        raise PauseRecError(f"unknown baseline {name!r} (available: {', '.join(sorted(BASELINES))})")
    return BASELINES[name]
