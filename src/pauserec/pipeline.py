"""The Python API: each CLI stage as one function over directories.

Artifacts are read and written through :mod:`pauserec.artifacts` (:class:`~pauserec.artifacts.DataDir`,
:class:`~pauserec.artifacts.RunDir`); the loaders here delegate to them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .artifacts import DataDir, RunDir
from .config import RunConfig
from .data.dataset import Dataset
from .data.split import Split, leave_one_out
from .eval.evaluate import evaluate_rankings, user_subset
from .eval.exclusion import exclusions
from .io import write_json, write_jsonl
from .sid.catalog import SIDCatalog


def prepare(cfg: RunConfig, data_dir: str | Path) -> Dataset:
    """Read ``cfg.data.path`` (any supported layout), validate it, and store it in ``data_dir``."""
    from .data.readers import read_dataset

    t0 = time.perf_counter()
    d = cfg.data
    dataset = read_dataset(
        d.path, d.format, name=d.name, min_interactions=d.min_interactions, short_users=d.short_users, kcore=d.kcore
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


def load_dataset(data_dir: str | Path) -> Dataset:
    return DataDir(data_dir).dataset()


def load_catalog(data_dir: str | Path, dataset: Dataset) -> SIDCatalog:
    """The data directory's catalogue, checked to be built from its dataset."""
    return DataDir(data_dir).catalog()


def load_run_data(run: RunDir) -> tuple[Dataset, SIDCatalog]:
    """:meth:`RunDir.data`'s dataset and catalogue."""
    data = run.data()
    return data.dataset(), data.catalog()


def load_split(dataset: Dataset, cfg: RunConfig) -> Split:
    return leave_one_out(dataset, cfg.split)


def evaluate_popularity(cfg: RunConfig, data_dir: str | Path, run_dir: str | Path) -> dict[str, Any]:
    """Evaluate the most-popular baseline on ``cfg.eval.split``; writes metrics and predictions to ``run_dir``."""
    from .baselines.popularity import Popularity

    dataset = load_dataset(data_dir)
    split = load_split(dataset, cfg)
    run = RunDir.create(
        run_dir, cfg, kind="baseline:popularity", dataset_hash=dataset.content_hash(), split_hash=split.content_hash()
    )
    t0 = time.perf_counter()
    model = Popularity(dataset.n_items).fit(dataset)
    t_fit = time.perf_counter()
    examples, users = user_subset(split.part(cfg.eval.split), cfg.eval.max_users, cfg.eval.subset_seed)
    exclude = exclusions(dataset, examples, cfg.eval.split, cfg.eval.exclude_history)
    ranked = model.recommend(examples, max(cfg.eval.ks), exclude)
    t_rank = time.perf_counter()
    metrics, rows = evaluate_rankings(examples, ranked, dataset, cfg.eval, seed=cfg.seed, users=users)
    metrics = {"model": "popularity", "split": cfg.eval.split, "metrics": metrics}
    write_jsonl(run.file("predictions.jsonl"), rows)
    write_json(run.file("metrics.json"), metrics)
    n = max(len(examples), 1)
    write_json(run.file("cost.json"), {
        "eval_seconds": time.perf_counter() - t0, "users": len(examples),
        "train": {"train_seconds": t_fit - t0},
        "inference": {"users": len(examples), "seconds": t_rank - t_fit, "latency_per_user_s": (t_rank - t_fit) / n},
    })
    return metrics
