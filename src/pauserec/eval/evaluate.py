"""Turn ranked item lists into metrics and prediction rows under the one evaluation contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import EvalConfig
from ..data.dataset import Dataset
from ..data.split import Example
from .metrics import compute_metrics


def evaluate_rankings(
    examples: Sequence[Example],
    ranked: Sequence[Sequence[int]],
    dataset: Dataset,
    cfg: EvalConfig,
    scores: Sequence[Sequence[float]] | None = None,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (with bootstrap intervals) and one prediction row per user, in external ids.

    Args:
        examples: the evaluated tasks (one per user).
        ranked: per example, item indices best first (at least ``max(cfg.ks)`` long where possible).
        scores: optional per-item scores aligned with ``ranked``.
    """
    targets = [e.target for e in examples]
    metrics = compute_metrics(ranked, targets, cfg.ks, bootstrap=cfg.bootstrap, seed=seed)
    top = max(cfg.ks)
    rows = []
    for i, (ex, items) in enumerate(zip(examples, ranked, strict=True)):
        row: dict[str, Any] = {
            "user": dataset.user_ids[ex.user],
            "target": dataset.item_ids[ex.target],
            "items": [dataset.item_ids[j] for j in items[:top]],
        }
        if scores is not None:
            row["scores"] = [round(float(s), 5) for s in scores[i][:top]]
        rows.append(row)
    return metrics, rows


def select_users(examples: Sequence[Example], max_users: int | None, seed: int) -> list[Example]:
    """All examples, or a fixed seeded random subset of ``max_users`` (kept in user order)."""
    import random

    if max_users is None or max_users >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), max_users))
    return [examples[i] for i in keep]
