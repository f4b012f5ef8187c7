"""Most-popular baseline: every user gets the items most frequent in the training part, ties by item index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.split import Example, Split


class Popularity:
    def __init__(self, n_items: int):
        self.n_items = n_items
        self.order: np.ndarray | None = None

    def fit(self, split: Split) -> Popularity:
        """Count item occurrences in each user's training part (never validation or test targets)."""
        counts = np.bincount(np.asarray(split.train_items(), dtype=np.int64), minlength=self.n_items)
        self.order = np.lexsort((np.arange(self.n_items), -counts))  # by count desc, then index asc
        return self

    def recommend(self, examples: Sequence[Example], k: int) -> list[list[int]]:
        if self.order is None:
            raise RuntimeError("fit() first")
        top = self.order[:k].tolist()
        return [list(top) for _ in examples]
