"""The Python API: each CLI stage as one function over directories (a facade: the work is below it).

Only the CLI, the demo and ``pauserec bench`` import this module; nothing under it imports it back. Artifacts are
read and written through :mod:`pauserec.artifacts` (:class:`~pauserec.artifacts.DataDir`,
:class:`~pauserec.artifacts.RunDir`), every model is evaluated by :func:`pauserec.eval.contract.evaluate_ranker`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .artifacts import DataDir
from .config import RunConfig
from .data.dataset import Dataset
from .sid.catalog import SIDCatalog


def prepare(cfg: RunConfig, data_dir: str | Path) -> Dataset:
    """Read ``cfg.data.path`` (any supported layout), validate it, and store it in ``data_dir``."""
    from .data.readers import read_dataset

    t0 = time.perf_counter()
    d = cfg.data
    dataset = read_dataset(
        d.path, d.format, name=d.name, min_interactions=d.min_interactions, short_users=d.short_users, kcore=d.kcore,
        max_users=d.max_users,
    )
    DataDir.create(data_dir, dataset, cfg, source=d.path, seconds=time.perf_counter() - t0)
    return dataset


def build_sids(cfg: RunConfig, data_dir: str | Path, progress: bool = True) -> SIDCatalog:
    """Embed item texts, quantize them into unique Semantic IDs, and store the catalogue in ``data_dir``."""
    from .data.text import render_item_text
    from .sid.build import build_catalog

    data = DataDir(data_dir)
    dataset = data.dataset()
    texts = [render_item_text(fields, cfg.text) for fields in dataset.item_fields]
    catalog = build_catalog(dataset, texts, cfg.embed, cfg.sid, cfg.cache_dir, progress=progress)
    data.save_catalog(catalog)
    return catalog


def train(cfg: RunConfig, data_dir: str | Path, run_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train ``cfg.arm`` on the data directory into ``run_dir``; returns the training cost."""
    from .train.run import train as train_run

    return train_run(cfg, data_dir, run_dir, resume=resume)


def evaluate(run_dir: str | Path, cfg: RunConfig | None = None, out_dir: str | Path | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Evaluate a trained run (into ``out_dir`` if given); returns metrics and cost."""
    from .eval.run_eval import evaluate_run

    return evaluate_run(run_dir, cfg, progress=progress, out_dir=out_dir)


def evaluate_baseline(name: str, cfg: RunConfig, data_dir: str | Path, run_dir: str | Path,
                      progress: bool = True) -> dict[str, Any]:
    """Fit baseline ``name`` (:data:`pauserec.baselines.BASELINES`) and evaluate it into ``run_dir``."""
    from .baselines import run_baseline

    return run_baseline(name, cfg, data_dir, run_dir, progress=progress)


def evaluate_popularity(cfg: RunConfig, data_dir: str | Path, run_dir: str | Path) -> dict[str, Any]:
    """The most-popular baseline on ``cfg.eval.split`` (:func:`evaluate_baseline`)."""
    return evaluate_baseline("popularity", cfg, data_dir, run_dir, progress=False)
