"""Paired comparison of evaluated runs: per-example metric differences against a baseline run.

Two runs decoded on the same examples (one per user under leave-one-out, several per user under the temporal
split: paired by ``(user, target, position)``) are compared example by example: the difference of each user's metric
(hit or NDCG gain) is resampled as a pair, so the interval reflects the runs' disagreement only, not
how hard the sampled users happen to be. That interval is much tighter than comparing the two runs'
separate intervals, and it is the honest way to say whether one arm beats another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import PauseRecError
from ..io import read_json, read_jsonl
from .metrics import bootstrap_interval, per_user_metrics, target_ranks


def per_user_values(run_dir: str | Path, ks: Sequence[int]) -> tuple[list[tuple[str, ...]], dict[str, np.ndarray]]:
    """The tasks of a run's ``predictions.jsonl`` and its per-example metrics, shape (n_examples,) each.

    A task is ``(user, target, position)``: the example's key, so that a user with several examples (the temporal
    split) is paired example by example. Rows written before predictions recorded the position give
    ``(user, target)``, one example per user (leave-one-out); :func:`same_tasks` compares the two kinds.
    """
    path = Path(run_dir) / "predictions.jsonl"
    if not path.exists():
        raise PauseRecError(f"{path} not found: evaluate the run first (pauserec eval {run_dir})")
    rows = read_jsonl(path)
    tasks = [(str(r["user"]), str(r["target"]), *([str(r["position"])] if "position" in r else [])) for r in rows]
    ranks = target_ranks([r["items"] for r in rows], [r["target"] for r in rows])
    return tasks, per_user_metrics(ranks, ks)


def same_tasks(a: Sequence[tuple[str, ...]], b: Sequence[tuple[str, ...]]) -> bool:
    """Whether two runs ranked the same examples in the same order: by ``(user, target, position)``, or by
    ``(user, target)`` where either run's rows predate the position (a leave-one-out result, one per user)."""
    if len(a) != len(b):
        return False
    if any(len(t) == 2 for t in (*a[:1], *b[:1])):
        return [t[:2] for t in a] == [t[:2] for t in b]
    return list(a) == list(b)


def protocol(run_dir: str | Path) -> dict | None:
    """The split protocol a run was evaluated under (``metrics.json``), leave-one-out for results that predate it."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        return None
    return read_json(path).get("protocol", {"kind": "leave_one_out"})


def excludes_history(run_dir: str | Path) -> bool:
    """Whether a run's evaluation ranked only items outside each user's history (``metrics.json``; results made
    before the option existed ranked the whole catalogue)."""
    path = Path(run_dir) / "metrics.json"
    return bool(read_json(path).get("metrics", {}).get("users", {}).get("exclude_history", False)) if path.exists() else False


def paired_difference(
    baseline: np.ndarray, other: np.ndarray, n_resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Mean of ``other - baseline`` over users with its paired percentile-bootstrap 95% interval.

    Also counts the users where only one of the two scores (``only_baseline``, ``only_other``); for
    Recall these are the users whose target only one run found.
    """
    if baseline.shape != other.shape:
        raise ValueError(f"paired arrays differ in shape: {baseline.shape} vs {other.shape}")
    diff = other - baseline
    lo, hi = bootstrap_interval(diff, n_resamples, seed)
    return {
        "mean": float(diff.mean()) if len(diff) else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
        "only_baseline": int(((baseline > 0) & (other == 0)).sum()),
        "only_other": int(((other > 0) & (baseline == 0)).sum()),
    }


def compare_runs(
    baseline: str | Path,
    others: Sequence[str | Path],
    ks: Sequence[int] = (5, 10),
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{other_dir: {"recall@10": paired_difference(...), ...}}`` for each run against ``baseline``.

    Raises :class:`PauseRecError` unless every run was decoded on exactly the baseline's users and targets.
    """
    base_tasks, base_values = per_user_values(baseline, ks)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for other in others:
        tasks, values = per_user_values(other, ks)
        if excludes_history(other) != excludes_history(baseline):
            raise PauseRecError(
                f"{other} (eval.exclude_history={excludes_history(other)}) and {baseline} "
                f"(eval.exclude_history={excludes_history(baseline)}) ranked different item sets: evaluate both "
                "with the same eval.exclude_history"
            )
        if protocol(other) is not None and protocol(baseline) is not None \
                and protocol(other)["kind"] != protocol(baseline)["kind"]:
            raise PauseRecError(f"{other} ({protocol(other)['kind']}) and {baseline} ({protocol(baseline)['kind']}) "
                                "were evaluated under different split protocols: no example is shared")
        if not same_tasks(tasks, base_tasks):
            shared = len(set(tasks) & set(base_tasks))
            raise PauseRecError(
                f"{other} and {baseline} were evaluated on different users ({len(tasks)} vs {len(base_tasks)}, "
                f"{shared} shared): a paired comparison needs the same eval split, max_users and seed"
            )
        out[str(other)] = {m: paired_difference(base_values[m], values[m], n_resamples, seed) for m in base_values}
    return out
