"""SASRec (Kang & McAuley 2018) from cornac, trained on our training part and ranked under our contract.

cornac's own evaluation would split the data itself; here it only trains and encodes. What it is given and how it
is read:

* training: one cornac session per user = the user's training part (``Split.training_sequences``: leave-one-out
  ``sequence[:-2]``, temporal up to its last training target), so no validation or test target is ever seen; cornac
  trains on every prefix of it (as our ``split.sliding_window``).
* item indices: cornac's item map is pre-seeded with our whole catalogue in our order (``iid_map[i] == i``), so its
  score vector is indexed like ours and items absent from training are still ranked (with their untrained rows).
* scoring: the exact history of our example (``Example.history``, what every model reads), its last
  ``max_len`` items, left-padded; full ranking over the whole catalogue. cornac's ``score()`` encodes one user at a
  time; :func:`score_histories` calls the same ``SASRecModel.predict`` on a batch of padded histories.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..config import RunConfig, SASRecConfig
from ..data.split import Example, Split
from ..eval.contract import Ranking
from ..eval.cost import TrainCost, peak_memory_bytes, reset_peak_memory

if TYPE_CHECKING:
    from ..artifacts import DataDir, RunDir


def cornac_train_set(sequences: Sequence[Sequence[int]], n_items: int, seed: int):
    """A ``cornac.data.SequentialDataset``: one session per user, items in order, cornac index == our index."""
    from cornac.data import SequentialDataset

    rows = [(u, u, i, t) for u, seq in enumerate(sequences) for t, i in enumerate(seq)]
    item_map = OrderedDict((i, i) for i in range(n_items))
    return SequentialDataset.build(rows, fmt="USIT", global_iid_map=item_map, seed=seed)


def fit_sasrec(sequences: Sequence[Sequence[int]], n_items: int, cfg: SASRecConfig, seed: int, progress: bool = False):
    """Train cornac's SASRec on the users' training parts ``sequences`` (item indices < ``n_items``); everything
    seeded from ``seed``."""
    from cornac.models import SASRec

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = SASRec(
        embedding_dim=cfg.hidden, num_blocks=cfg.layers, num_heads=cfg.heads, dropout=cfg.dropout,
        max_len=cfg.max_len, n_epochs=cfg.epochs, learning_rate=cfg.lr, batch_size=cfg.batch_size,
        loss=cfg.loss, n_sample=cfg.negatives, seed=seed, verbose=progress,
    )
    return model.fit(cornac_train_set(sequences, n_items, seed))


def padded_histories(examples: Sequence[Example], max_len: int, pad: int) -> np.ndarray:
    """``(B, max_len)`` int64: each history's last ``max_len`` items, left-padded with ``pad``."""
    out = np.full((len(examples), max_len), pad, dtype=np.int64)
    for row, ex in enumerate(examples):
        hist = ex.history[-max_len:]
        out[row, max_len - len(hist):] = hist
    return out


def score_histories(model, examples: Sequence[Example]) -> np.ndarray:
    """``(B, n_items)`` float32 scores (dot products) of every catalogue item after each example's history."""
    seqs = torch.as_tensor(padded_histories(examples, model.max_len, model.pad_idx))
    model.model.eval()
    return np.atleast_2d(model.model.predict(None, seqs)).astype(np.float32)


def top_k(scores: np.ndarray, k: int, exclude: Sequence[frozenset[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items per row, ties by item index: ``(items, scores)``, each ``(B, k)``.

    ``exclude`` (per row, item indices): those items get -inf first and never appear while other items remain.
    """
    scores = scores.copy()
    if exclude is not None:
        for row, items in enumerate(exclude):
            scores[row, list(items)] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def rank(
    model, examples: Sequence[Example], k: int, batch: int, exclude: Sequence[frozenset[int]] | None = None
) -> tuple[list[list[int]], list[list[float]]]:
    """Top-``k`` items and scores for every example, ``batch`` users at a time."""
    items, scores = [], []
    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        drop = None if exclude is None else exclude[start:start + batch]
        top, val = top_k(score_histories(model, chunk), k, drop)
        items.extend(top.tolist())
        scores.extend(val.tolist())
    return items, scores


class SASRecRanker:
    """cornac's SASRec as a :class:`pauserec.eval.contract.Baseline`: :func:`fit_sasrec`, then :func:`rank` in
    batches of ``baseline.sasrec.score_batch`` users."""

    name = "sasrec"
    uses_catalog = False

    def __init__(self, cfg: RunConfig, progress: bool = False):
        self.cfg, self.progress = cfg, progress
        self.model: Any = None

    def fit(self, data: DataDir, split: Split, run: RunDir) -> TrainCost:
        """Train on the training parts; cost: seconds, peak memory, epochs, parameters."""
        reset_peak_memory()
        t0 = time.perf_counter()
        dataset = data.dataset()
        self.model = fit_sasrec(split.training_sequences(dataset), dataset.n_items, self.cfg.baseline.sasrec,
                                self.cfg.seed, self.progress)
        return TrainCost(time.perf_counter() - t0, peak_memory_bytes(),
                         parameters=sum(p.numel() for p in self.model.model.parameters()),
                         details={"epochs": self.cfg.baseline.sasrec.epochs})

    def rank(self, examples: Sequence[Example], k: int, exclude: Sequence[frozenset[int]] | None) -> Ranking:
        batch = self.cfg.baseline.sasrec.score_batch
        items, scores = rank(self.model, examples, k, batch, exclude)
        return Ranking(items, scores, details={"batch_size": batch})
