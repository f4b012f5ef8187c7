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

Under several ranks (``torchrun`` / ``accelerate launch``) each rank ranks its contiguous share of the users
(:func:`pauserec.dist.shard_bounds`), the rankings are gathered in the users' order, and every rank computes the
same metrics; rank 0 alone writes the files, which equal the one-process run's (``cost.json`` aside: its
``seconds`` is the slowest rank's, its peak memory the largest, its token counts summed over the ranks).

A *ranker* is anything with a ``name`` and ``rank``; a *baseline* also fits itself on a data directory's training
parts (:class:`Baseline`). An LLM arm is fitted by its own stage (``pauserec train``: resumable, checkpointed) and
evaluated from its run directory (:mod:`.run_eval`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .. import dist
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
    dist.init()
    dataset = data.dataset()
    split = split or data.split(cfg)
    examples, users = user_subset(split.part(cfg.eval.split), cfg.eval.max_users, cfg.eval.subset_seed)
    exclude = exclusions(dataset, examples, cfg.eval.split, cfg.eval.exclude_history)
    start, stop = dist.shard_bounds(len(examples), dist.world_size(), dist.rank())  # all of them in one process
    reset_peak_memory()
    t0 = time.perf_counter()
    part = ranker.rank(examples[start:stop], max(cfg.eval.ks), exclude and exclude[start:stop]) if stop > start \
        else Ranking([], None)
    seconds = time.perf_counter() - t0 if part.seconds is None else part.seconds
    ranking, seconds, peak = gather_ranking(part, seconds, peak_memory_bytes())
    inference = InferenceCost(len(examples), seconds, peak, ranking.details)
    metrics, rows = evaluate_rankings(examples, ranking.items, dataset, cfg.eval, scores=ranking.scores, seed=cfg.seed,
                                      users=users)
    if ranking.rationales is not None:  # the model's generated text, kept beside its ranking
        for row, text in zip(rows, ranking.rationales, strict=True):
            row["rationale"] = text
    result = {"model": ranker.name, "split": cfg.eval.split, "protocol": split.protocol, "metrics": metrics}
    cost = CostRecord(train, inference, pipeline).to_json()
    if dist.is_main():
        write_jsonl(dest.file("predictions.jsonl"), rows)
        write_json(dest.file("metrics.json"), result)
        write_json(dest.file("cost.json"), cost)
    dist.barrier()
    return {**result, "cost": cost}


def gather_ranking(part: Ranking, seconds: float, peak: int) -> tuple[Ranking, float, int]:
    """The ranks' rankings of their shares -> ``(ranking of all examples in order, seconds, peak memory)``, the
    same on every rank: the slowest rank's seconds, the largest peak, the details of :func:`merge_details`. In one
    process: the arguments unchanged."""
    if dist.world_size() == 1:
        return part, seconds, peak
    pieces = dist.gather_objects((part, seconds, peak))
    parts = [p for p, _, _ in pieces]
    scores = None if any(p.scores is None for p in parts if p.items) else [s for p in parts for s in (p.scores or [])]
    rationales = None if any(p.rationales is None for p in parts if p.items) \
        else [r for p in parts for r in (p.rationales or [])]
    merged = Ranking([i for p in parts for i in p.items], scores, rationales,
                     details={**merge_details([(len(p.items), p.details) for p in parts if p.items]),
                              "world_size": len(parts)})
    return merged, max(s for _, s, _ in pieces), max(m for _, _, m in pieces)


def merge_details(parts: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Per-shard ``(examples, details)`` -> the details of the whole: a value every shard shares is kept (batch
    size, beams), other integers are summed (token counts), other floats averaged weighted by the shards' example
    counts (per-user figures: the sum over all users / all users); anything else is taken from the first shard."""
    out: dict[str, Any] = {}
    n = sum(k for k, _ in parts) or 1
    for key in dict.fromkeys(k for _, d in parts for k in d):
        values = [(k, d[key]) for k, d in parts if key in d]
        first = values[0][1]
        if all(v == first for _, v in values):
            out[key] = first
        elif all(isinstance(v, int) and not isinstance(v, bool) for _, v in values):
            out[key] = sum(v for _, v in values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for _, v in values):
            out[key] = sum(k * v for k, v in values) / n
        else:
            out[key] = first
    return out
