"""Builders shared by tests: synthetic datasets with planted structure, catalogues, data directories; and
:func:`skip_or_fail` for tests whose dependency CI installs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

from pauserec.data.dataset import Dataset
from pauserec.sid.catalog import SIDCatalog

#: Set by ``.ci/run`` when a best-effort install step failed: comma-separated names of what it could not install.
CI_MISSING = "PAUSEREC_CI_MISSING"


def in_ci() -> bool:
    """True where ``CI=true`` (``.ci/run`` sets it, as GitHub Actions and most CI services do)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def skip_or_fail(reason: str, dependency: str) -> NoReturn:
    """Skip a test whose ``dependency`` is missing; under CI fail instead, since CI installs it and a silent skip
    would hide a broken install step, unless CI said that this install failed (``dependency`` named in
    $PAUSEREC_CI_MISSING)."""
    missing_in_ci = {d.strip() for d in os.environ.get(CI_MISSING, "").split(",")}
    if in_ci() and dependency not in missing_in_ci:
        pytest.fail(f"{reason}; CI installs {dependency}, so its install step is broken (a skip would hide it)",
                    pytrace=False)
    if in_ci():
        reason = f"{reason} (CI could not install it: {CI_MISSING}={os.environ[CI_MISSING]})"
    pytest.skip(reason)


def random_codes(n_items: int, level_sizes=(4, 4, 4), seed: int = 0) -> np.ndarray:
    """``(n_items, L)`` distinct random SIDs."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(np.prod(level_sizes)), size=n_items, replace=False)
    return np.stack(np.unravel_index(flat, level_sizes), axis=1)


def planted_data(n_items: int = 48, n_users: int = 120, length: int = 6, level_sizes=(4, 4, 4), seed: int = 0):
    """A dataset and its catalogue where each user stays inside one cluster (= first SID code).

    The next item's first code is therefore always the one of the history: a model that reads the history
    beats chance (``num_beams / n_items``) by about the number of clusters.
    """
    rng = np.random.default_rng(seed)
    codes = random_codes(n_items, level_sizes, seed)
    seqs = []
    for _ in range(n_users):
        cluster = np.flatnonzero(codes[:, 0] == rng.choice(codes[:, 0]))
        seqs.append(rng.choice(cluster, size=min(length, len(cluster)), replace=False).tolist())
    dataset = Dataset(
        name="planted",
        item_ids=[f"i{i}" for i in range(n_items)],
        item_fields=[{"title": f"Item number {i}"} for i in range(n_items)],
        user_ids=[f"u{u}" for u in range(n_users)],
        sequences=seqs,
    )
    return dataset, SIDCatalog(codes, list(level_sizes), dataset.item_ids, dataset.content_hash())


def make_data_dir(path: Path, dataset: Dataset, catalog: SIDCatalog) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    dataset.save(path / "dataset.json")
    catalog.save(path / "sids.json")
    return path


#: Every decoder family :func:`pauserec.model.tiny.make_tiny_backbone` writes; the parity tests run over all of them.
BACKBONE_FAMILIES = ["llama", "llama3", "qwen2", "qwen3", "mistral", "gemma2", "gemma3", "phi3"]
