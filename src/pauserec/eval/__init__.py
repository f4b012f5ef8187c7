"""Evaluation, one concept per module:

* :mod:`.metrics`: Recall/NDCG per user and their bootstrap intervals;
* :mod:`.evaluate`: ranked lists -> metrics and prediction rows, the test-user subset;
* :mod:`.exclusion`: the items a ranking may not return (the user's history, when excluded);
* :mod:`.contract`: :func:`~.contract.evaluate_ranker`, the one evaluation of any ranker under the contract;
* :mod:`.run_eval`: a trained LLM run as a ranker (its inference is :mod:`pauserec.recommend`);
* :mod:`.cost` and :mod:`.pipeline_cost`: the typed cost records, and the cost of the stages a run was built from;
* :mod:`.compare`: paired per-user differences between evaluated runs.
"""

from .metrics import compute_metrics, per_user_metrics, target_ranks

__all__ = ["compute_metrics", "per_user_metrics", "target_ranks"]
