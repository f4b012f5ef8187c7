"""Most-popular baseline: every user gets the items most frequent in the training part, ties by item index."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..config import RunConfig
from ..data.split import Example, Split
from ..eval.contract import Ranking
from ..eval.cost import TrainCost, peak_memory_bytes, reset_peak_memory

if TYPE_CHECKING:
    from ..artifacts import DataDir, RunDir


class Popularity:
    def __init__(self, n_items: int):
        self.n_items = n_items
        self.order: np.ndarray | None = None

    def fit(self, sequences: Sequence[Sequence[int]]) -> Popularity:
        """Count item occurrences in each user's whole training part (``Split.training_sequences``: never a
        validation or test target, and not only the truncated histories the LLM reads)."""
        train_part = [item for seq in sequences for item in seq]
        counts = np.bincount(np.asarray(train_part, dtype=np.int64), minlength=self.n_items)
        self.order = np.lexsort((np.arange(self.n_items), -counts))  # by count desc, then index asc
        return self

    def recommend(
        self, examples: Sequence[Example], k: int, exclude: Sequence[Collection[int]] | None = None
    ) -> list[list[int]]:
        """The ``k`` most popular items per example, skipping ``exclude[i]`` (e.g. the user's history) if given."""
        if self.order is None:
            raise RuntimeError("fit() first")
        if exclude is None:
            top = self.order[:k].tolist()
            return [list(top) for _ in examples]
        return [self._top_without(k, set(items)) for items in exclude]

    def _top_without(self, k: int, skip: set[int]) -> list[int]:
        return [int(i) for i in self.order[: k + len(skip)] if i not in skip][:k]


class PopularityRanker:
    """:class:`Popularity` as a :class:`pauserec.eval.contract.Baseline` (no scores in its predictions)."""

    name = "popularity"
    uses_catalog = False

    def __init__(self, cfg: RunConfig, progress: bool = False):
        self.model: Popularity | None = None

    def fit(self, data: DataDir, split: Split, run: RunDir) -> TrainCost:
        reset_peak_memory()
        t0 = time.perf_counter()
        self.model = Popularity(data.dataset().n_items).fit(split.training_sequences(data.dataset()))
        return TrainCost(time.perf_counter() - t0, peak_memory_bytes(), parameters=self.model.n_items)

    def rank(self, examples: Sequence[Example], k: int, exclude: Sequence[frozenset[int]] | None) -> Ranking:
        if self.model is None:
            raise RuntimeError("fit() first")
        return Ranking(self.model.recommend(examples, k, exclude))
