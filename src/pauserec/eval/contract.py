"""The evaluation contract, written once: any ranker, the same users, exclusions, metrics and files.

:func:`evaluate_ranker` is the one evaluation of every model (the LLM arms, popularity, SASRec, TIGER):

1. the users: ``cfg.eval.split``'s examples, or the fixed seeded subset ``eval.max_users`` selects
   (:func:`.evaluate.user_subset`);
2. the exclusions: each user's own history under ``eval.exclude_history`` (:func:`.exclusion.exclusions`);
3. the ranking: :meth:`Ranker.rank` over the whole catalogue, ``max(eval.ks)`` items per user, timed, peak memory
   measured;
4. the metrics with bootstrap intervals and one prediction row per example (:func:`.evaluate.evaluate_rankings`;
   one per user under leave-one-out, several under the temporal split);
5. three files in the destination run directory: ``metrics.json``, ``predictions.jsonl`` and ``cost.json`` (one
   :class:`.cost.CostRecord`, the same schema for every model).

A *ranker* is anything with a ``name`` and ``rank``; a *baseline* also fits itself on a data directory's training
parts (:class:`Baseline`). An LLM arm is fitted by its own stage (``pauserec train``: resumable, checkpointed) and
evaluated from its run directory (:mod:`.run_eval`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..config import RunConfig
from ..data.split import Example, Split
from ..io import write_json, write_jsonl
from .cost import CostRecord, InferenceCost, TrainCost, peak_memory_bytes, reset_peak_memory
from .evaluate import evaluate_rankings, user_subset
from .exclusion import exclusions

if TYPE_CHECKING:
    from ..artifacts import DataDir, RunDir


@dataclass(frozen=True)
class Ranking:
    """What a ranker returns for ``B`` examples.

    ``items``: ``B`` lists of item indices, best first (``k`` long where the catalogue allows; a decoder may return
    its beam width, longer). ``scores``: aligned with ``items`` (None where the model has none, e.g. popularity).
    ``rationales``: per example, the text the model generated before its ranking (cot), kept in the predictions.
    ``seconds``: the ranker's own timing of its ranking where it excludes set-up (LLM: decoding without building
    the prompts); None: the contract times the whole call. ``details``: model-specific inference figures for
    ``cost.json`` (``batch_size``, ``num_beams``, token counts).
    """

    items: list[list[int]]
    scores: list[list[float]] | None = None
    rationales: list[str] | None = None
    seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Ranker(Protocol):
    """A model that ranks the whole catalogue for a batch of histories."""

    name: str  # the ``model`` of metrics.json

    def rank(self, examples: Sequence[Example], k: int, exclude: Sequence[frozenset[int]] | None) -> Ranking:
        """The top ``k`` item indices per example (none of ``exclude[i]`` while other items remain)."""
        ...


class Baseline(Ranker, Protocol):
    """A ranker that fits itself: built from the run's config, ``Class(cfg, progress)``, then :meth:`fit`."""

    uses_catalog: bool  # whether it reads the SID catalogue (its hash is then recorded in env.json)

    def fit(self, data: DataDir, split: Split, run: RunDir) -> TrainCost:
        """Train on ``split.train`` (model selection on ``split.valid`` at most); ``run`` may keep weights."""
        ...


def evaluate_ranker(ranker: Ranker, cfg: RunConfig, data: DataDir, dest: RunDir, train: TrainCost | None,
                    pipeline: dict[str, Any] | None = None, split: Split | None = None) -> dict[str, Any]:
    """Evaluate ``ranker`` under the contract on ``data`` (``split`` defaults to ``data.split(cfg)``), write
    ``metrics.json``, ``predictions.jsonl`` and ``cost.json`` into ``dest``. Returns ``metrics.json``'s content
    (``model``, ``split``, ``protocol``: the split's kind and parameters, ``metrics``) with ``cost``
    (``cost.json``'s)."""
    dataset = data.dataset()
    split = split or data.split(cfg)
    examples, users = user_subset(split.part(cfg.eval.split), cfg.eval.max_users, cfg.eval.subset_seed)
    exclude = exclusions(dataset, examples, cfg.eval.split, cfg.eval.exclude_history)
    reset_peak_memory()
    t0 = time.perf_counter()
    ranking = ranker.rank(examples, max(cfg.eval.ks), exclude)
    seconds = time.perf_counter() - t0 if ranking.seconds is None else ranking.seconds
    inference = InferenceCost(len(examples), seconds, peak_memory_bytes(), ranking.details)
    metrics, rows = evaluate_rankings(examples, ranking.items, dataset, cfg.eval, scores=ranking.scores, seed=cfg.seed,
                                      users=users)
    if ranking.rationales is not None:  # the model's generated text, kept beside its ranking
        for row, text in zip(rows, ranking.rationales, strict=True):
            row["rationale"] = text
    result = {"model": ranker.name, "split": cfg.eval.split, "protocol": split.protocol, "metrics": metrics}
    cost = CostRecord(train, inference, pipeline).to_json()
    write_jsonl(dest.file("predictions.jsonl"), rows)
    write_json(dest.file("metrics.json"), result)
    write_json(dest.file("cost.json"), cost)
    return {**result, "cost": cost}
