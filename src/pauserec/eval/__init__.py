"""Evaluation: ranking metrics with intervals, predictions, and cost accounting."""

from .metrics import compute_metrics, per_user_metrics, target_ranks

__all__ = ["compute_metrics", "per_user_metrics", "target_ranks"]
