"""Turn ranked item lists into metrics and prediction rows under the one evaluation contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import EvalConfig
from ..data.dataset import Dataset
from ..data.split import Example
from .metrics import compute_metrics, distinct_lists


def evaluate_rankings(
    examples: Sequence[Example],
    ranked: Sequence[Sequence[int]],
    dataset: Dataset,
    cfg: EvalConfig,
    scores: Sequence[Sequence[float]] | None = None,
    seed: int = 0,
    users: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (with bootstrap intervals, over examples) and one prediction row per example, in external ids.

    Args:
        examples: the evaluated tasks (leave-one-out: one per user; temporal: any number per user, a row's
            ``position`` tells them apart).
        ranked: per example, item indices best first (at least ``max(cfg.ks)`` long where possible).
        scores: optional per-item scores aligned with ``ranked``.
        users: which users these are (:func:`user_subset`), merged into ``metrics["users"]``.
    """
    targets = [e.target for e in examples]
    metrics = compute_metrics(ranked, targets, cfg.ks, bootstrap=cfg.bootstrap, seed=seed)
    top = max(cfg.ks)
    # who was evaluated, whether their own histories were ranked (paired comparisons check both), and how many
    # different top lists they got (1 for popularity; a model that ignores the history looks like that too)
    metrics["users"] = {**metrics["users"], **(users or {}), "exclude_history": cfg.exclude_history,
                        "distinct_lists": distinct_lists(ranked, top)}
    rows = []
    for i, (ex, items) in enumerate(zip(examples, ranked, strict=True)):
        row: dict[str, Any] = {
            "user": dataset.user_ids[ex.user],
            "target": dataset.item_ids[ex.target],
            "items": [dataset.item_ids[j] for j in items[:top]],
        }
        if ex.position is not None:  # the example's identity beside the user's: a user may have several
            row["position"] = ex.position
        if scores is not None:
            row["scores"] = [round(float(s), 5) for s in scores[i][:top]]
        rows.append(row)
    return metrics, rows


def subset_indices(n: int, max_users: int | None, seed: int) -> list[int]:
    """The positions :func:`select_users` keeps of ``n`` examples, ascending: all, or ``max_users`` drawn with
    ``random.Random(seed)``. Two sizes drawn with one seed are not nested in general (``random.sample`` switches
    method with the size): of Scientific's 8,317 validation users, 300 share 160 with 2,000 (and lie within 500)."""
    import random

    if max_users is None or max_users >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), max_users))


def select_users(examples: Sequence[Example], max_users: int | None, seed: int) -> list[Example]:
    """All examples, or a fixed seeded random subset of ``max_users`` (kept in user order)."""
    return [examples[i] for i in subset_indices(len(examples), max_users, seed)]


def user_subset(examples: Sequence[Example], max_users: int | None, seed: int) -> tuple[list[Example], dict[str, Any]]:
    """:func:`select_users` and the record of what it kept: ``{"of": all users of the split, "subset": rule}``.

    The record goes into ``metrics.json`` (``metrics.users``), beside ``count``, so a number always says how many
    users it stands for out of how many, and how they were chosen.
    """
    kept = select_users(examples, max_users, seed)
    if len(kept) == len(examples):
        rule = "all users of the split"
    else:
        rule = f"a fixed random subset: eval.max_users={max_users} drawn with random.Random({seed}), in user order"
    return kept, {"of": len(examples), "subset": rule}


def users_line(metrics: dict[str, Any], split: str) -> str | None:
    """``"500 of 8,317 test users (a fixed random subset: ...)"`` when a subset was evaluated, else None."""
    users = metrics.get("users", {})
    count, total = int(users.get("count", 0)), users.get("of")
    if total is None or count >= total:
        return None
    return f"{count:,} of {int(total):,} {split} users ({users.get('subset', 'a subset')})"
