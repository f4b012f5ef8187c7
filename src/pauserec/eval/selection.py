"""Checkpoint-selection rules measured against test: which checkpoint each rule keeps, and what that costs.

A run's checkpoints are scored on validation (and, to measure the rules only, on test); a *rule* keeps one of
them from its validation score alone. Over several runs a rule's record is how often it kept the test-best
checkpoint and its *regret*: the test metric of the test-best checkpoint minus that of the one it kept (>= 0).
Nothing here reads test to choose: ``test_key`` is only the yardstick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple


class Rule(NamedTuple):
    """Keep the checkpoint whose ``key`` is highest (``best="max"``) or lowest (``"min"``), the earliest of ties
    (as Hugging Face keeps the first of equal bests), or the last step's (``"last"``; ``key`` None).
    ``cost_key``: the per-checkpoint seconds of the validation pass the rule needs (None: it needs none)."""

    key: str | None
    best: Literal["max", "min", "last"]
    cost_key: str | None = None


def pick(checkpoints: Sequence[Mapping[str, Any]], rule: Rule) -> int:
    """The ``step`` of the checkpoint ``rule`` keeps; ``checkpoints``: one mapping per checkpoint with ``step``
    and the rule's ``key``."""
    ordered = sorted(checkpoints, key=lambda c: c["step"])
    if not ordered:
        raise ValueError("no checkpoint to pick from")
    if rule.best == "last":
        return ordered[-1]["step"]
    sign = 1.0 if rule.best == "max" else -1.0
    best = ordered[0]
    for c in ordered[1:]:
        if sign * c[rule.key] > sign * best[rule.key]:  # strictly better: the earliest of ties stays
            best = c
    return best["step"]


def run_outcome(checkpoints: Sequence[Mapping[str, Any]], rules: Mapping[str, Rule], test_key: str
                ) -> dict[str, Any]:
    """One run: the test-best checkpoint(s) and, per rule, the kept step, its regret, whether it is a test-best
    one (``hit``; ties on test count) and the seconds of validation it needed (the sum over checkpoints)."""
    by_step = {c["step"]: c for c in checkpoints}
    top = max(c[test_key] for c in checkpoints)
    out: dict[str, Any] = {"test_best_steps": sorted(s for s, c in by_step.items() if c[test_key] == top),
                           "test_best": top, "rules": {}}
    for name, rule in rules.items():
        step = pick(checkpoints, rule)
        regret = top - by_step[step][test_key]
        cost = sum(c[rule.cost_key] for c in checkpoints) if rule.cost_key else 0.0
        out["rules"][name] = {"step": step, "test": by_step[step][test_key], "regret": regret,
                              "hit": regret == 0, "seconds": cost}
    return out


def rule_summary(outcomes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per rule over the runs' :func:`run_outcome`: ``runs``, ``hits``, ``hit_rate``, ``mean_regret``,
    ``worst_regret`` and ``mean_seconds`` (validation seconds per run)."""
    names = list(dict.fromkeys(n for o in outcomes.values() for n in o["rules"]))
    summary = {}
    for name in names:
        rows = [o["rules"][name] for o in outcomes.values() if name in o["rules"]]
        hits = sum(r["hit"] for r in rows)
        summary[name] = {"runs": len(rows), "hits": hits, "hit_rate": hits / len(rows),
                         "mean_regret": sum(r["regret"] for r in rows) / len(rows),
                         "worst_regret": max(r["regret"] for r in rows),
                         "mean_seconds": sum(r["seconds"] for r in rows) / len(rows)}
    return summary
