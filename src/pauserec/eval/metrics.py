"""Item-level ranking metrics with bootstrap confidence intervals.

Each user has one target item. A ranked list is de-duplicated first (an item counts once, at its
first position), so a list padded with repeats can never score twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NOT_FOUND = -1


def distinct_lists(ranked: Sequence[Sequence[int]], k: int) -> int:
    """How many different top-``k`` lists the users got (1: the same list for everyone, as popularity gives)."""
    return len({tuple(items[:k]) for items in ranked})


def target_ranks(ranked: Sequence[Sequence[int]], targets: Sequence[int]) -> np.ndarray:
    """0-based rank of each user's target in its de-duplicated ranked list, or -1 if absent. Shape (n_users,)."""
    ranks = np.full(len(targets), NOT_FOUND, dtype=np.int64)
    for u, (items, target) in enumerate(zip(ranked, targets, strict=True)):
        seen: set[int] = set()
        for item in items:
            if item in seen:
                continue
            if item == target:
                ranks[u] = len(seen)
                break
            seen.add(item)
    return ranks


def per_user_metrics(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-user Recall@K (hit) and NDCG@K (1/log2(rank+2) when rank < K) arrays, each shape (n_users,)."""
    found = ranks >= 0
    gains = np.where(found, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    out = {}
    for k in ks:
        hit = found & (ranks < k)
        out[f"recall@{k}"] = hit.astype(np.float64)
        if k > 1:
            out[f"ndcg@{k}"] = np.where(hit, gains, 0.0)
    return out


def bootstrap_interval(
    values: np.ndarray, n_resamples: int, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (users resampled with replacement)."""
    if n_resamples <= 0 or len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    means = values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def compute_metrics(
    ranked: Sequence[Sequence[int]], targets: Sequence[int], ks: Sequence[int], bootstrap: int = 1000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """``{"recall@10": {"mean": .., "ci_low": .., "ci_high": ..}, ...}`` over users, plus ``"users"``."""
    ranks = target_ranks(ranked, targets)
    result: dict[str, dict[str, float]] = {}
    for name, values in per_user_metrics(ranks, ks).items():
        lo, hi = bootstrap_interval(values, bootstrap, seed)
        result[name] = {"mean": float(values.mean()) if len(values) else float("nan"), "ci_low": lo, "ci_high": hi}
    result["users"] = {"count": float(len(targets))}
    return result
