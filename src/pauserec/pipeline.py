"""The Python API: each CLI stage as one function over directories.

A *data directory* holds one prepared dataset and what is built from it::

    DATA/dataset.json     the Dataset (items, texts, sequences) + content hash
    DATA/stats.json       dataset statistics, reader notes, wall time
    DATA/sids.json        the SIDCatalog (after `sids`)
    DATA/sid_stats.json   collision / utilisation statistics of the catalogue
    DATA/config.yaml      the resolved config used to prepare it

Runs (baselines, trained arms) live in their own run directories (:class:`pauserec.runs.RunDir`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .config import RunConfig, config_to_yaml
from .data.dataset import Dataset
from .data.split import Split, leave_one_out
from .eval.evaluate import evaluate_rankings, user_subset
from .eval.exclusion import exclusions
from .io import write_json, write_jsonl, write_text
from .runs import RunDir
from .sid.catalog import SIDCatalog


def prepare(cfg: RunConfig, data_dir: str | Path) -> Dataset:
    """Read ``cfg.data.path`` (any supported layout), validate it, and store it in ``data_dir``."""
    from .data.readers import read_dataset

    t0 = time.perf_counter()
    d = cfg.data
    dataset = read_dataset(
        d.path, d.format, name=d.name, min_interactions=d.min_interactions, short_users=d.short_users, kcore=d.kcore
    )
    data_dir = Path(data_dir)
    dataset.save(data_dir / "dataset.json")
    write_text(data_dir / "config.yaml", config_to_yaml(cfg))
    write_json(
        data_dir / "stats.json",
        {"stats": dataset.stats(), "notes": dataset.notes, "source": d.path, "seconds": time.perf_counter() - t0},
    )
    return dataset


def load_dataset(data_dir: str | Path) -> Dataset:
    return Dataset.load(Path(data_dir) / "dataset.json")


def item_texts(dataset: Dataset, cfg: RunConfig) -> list[str]:
    from .data.text import render_item_text

    return [render_item_text(fields, cfg.text) for fields in dataset.item_fields]


def build_sids(cfg: RunConfig, data_dir: str | Path, progress: bool = True) -> SIDCatalog:
    """Embed item texts, quantize them into unique Semantic IDs, and store the catalogue in ``data_dir``."""
    from .sid.build import build_catalog

    data_dir = Path(data_dir)
    dataset = load_dataset(data_dir)
    catalog = build_catalog(dataset, item_texts(dataset, cfg), cfg.embed, cfg.sid, cfg.cache_dir, progress=progress)
    catalog.save(data_dir / "sids.json")
    write_json(data_dir / "sid_stats.json", catalog.meta)
    return catalog


def load_catalog(data_dir: str | Path, dataset: Dataset) -> SIDCatalog:
    """The data directory's catalogue, checked to be built from ``dataset``."""
    return SIDCatalog.load(Path(data_dir) / "sids.json", expected_dataset_hash=dataset.content_hash())


def load_run_data(run: RunDir) -> tuple[Dataset, SIDCatalog]:
    """The dataset and catalogue a trained run was built from (``env.json``'s ``data_dir``), checked against the
    hashes the run recorded; refuses a run trained on another prompt layout."""
    from .prompt import check_prompt_layout

    env = run.env()
    check_prompt_layout(env, f"run {run.path}")
    dataset = load_dataset(env["data_dir"])
    catalog = load_catalog(env["data_dir"], dataset)
    run.check_fact("dataset_hash", dataset.content_hash())
    run.check_fact("catalog_hash", catalog.content_hash())
    return dataset, catalog


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
