"""Full-softmax next-item training and scoring, shared by the SASRec-CE and HSTU baselines.

Both are causal sequence encoders over item tokens (token ``i + 1`` = item ``i``, ``0`` = padding): ``hidden``
``(B, L) -> (B, L, D)`` states and an output layer ``(W (n_items + 1, D), b (n_items + 1,) or None)`` whose row 0,
the padding token, is never a label and never ranked (``logits`` = all positions' scores, the reference). What they
share, written once:

* training rows (:func:`training_rows`): per user, the last ``max_len + 1`` items of its training part
  (``Split.training_sequences``: no validation or test target is ever read), left-padded; inputs ``[:-1]``, labels
  ``[1:]``. Every real position is a next-item example (SASRec's and HSTU's own training).
* loss (:func:`next_item_loss`): cross-entropy over the whole catalogue at every non-padded position: no sampled
  negatives, the padding column left out of the softmax. Scores are computed at labelled positions only (on
  Scientific 80% of a row is padding, and the catalogue projection is ~90% of a step).
* model selection (:func:`fit`): after each epoch, Recall@10 / NDCG@10 on a fixed validation subset (history
  exclusion as the evaluation's); the best epoch's weights are kept; early stop after ``patience`` epochs.
* scoring (:func:`rank`): the example's history (what every model reads), its last ``max_len`` items, left-padded;
  the last position's logits over the catalogue, top ``k`` with :func:`.sasrec.top_k` (exclusions applied).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..config import NextItemConfig, RunConfig
from ..data.split import Example, Split
from ..eval.contract import Ranking
from ..eval.cost import TrainCost, peak_memory_bytes, reset_peak_memory
from ..eval.evaluate import select_users
from ..eval.exclusion import exclusions
from ..eval.metrics import compute_metrics
from ..io import write_json
from .sasrec import padded_histories, top_k

if TYPE_CHECKING:
    from ..artifacts import DataDir, RunDir

PAD = 0


class NextItemModel(Protocol):
    """A ``torch.nn.Module`` over item tokens (int64, 0 = padding)."""

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L) -> (B, L, D)`` causal encoder states."""
        ...

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(W (n_items + 1, D), b (n_items + 1,) or None)``: token scores are ``hidden @ W.T + b``."""
        ...


def item_logits(model: NextItemModel, states: torch.Tensor) -> torch.Tensor:
    """``(..., D)`` states -> ``(..., n_items)`` scores of the catalogue's items (the padding row left out)."""
    weight, bias = model.output_layer()
    out = states @ weight[1:].T
    return out if bias is None else out + bias[1:]


def training_rows(sequences: Sequence[Sequence[int]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)``, each ``(n_rows, max_len)`` int64 tokens: one row per training part of >= 2 items, its
    last ``max_len + 1`` items shifted by one (labels[t] is the item after inputs[t]), left-padded with 0."""
    rows = [list(seq[-(max_len + 1):]) for seq in sequences if len(seq) >= 2]
    inputs = np.zeros((len(rows), max_len), dtype=np.int64)
    labels = np.zeros((len(rows), max_len), dtype=np.int64)
    for r, seq in enumerate(rows):
        n = len(seq) - 1
        inputs[r, max_len - n:] = np.asarray(seq[:-1]) + 1
        labels[r, max_len - n:] = np.asarray(seq[1:]) + 1
    return inputs, labels


def next_item_loss(model: NextItemModel, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every non-padded position, softmax over the catalogue's items only."""
    real = labels != PAD
    logits = item_logits(model, model.hidden(inputs)[real])  # (n_real, n_items): the padding row is not a class
    return F.cross_entropy(logits, labels[real] - 1)


def history_tokens(examples: Sequence[Example], max_len: int) -> torch.Tensor:
    """``(B, max_len)`` int64 tokens of each example's last ``max_len`` history items, left-padded with 0."""
    return torch.as_tensor(padded_histories(examples, max_len, pad=-1) + 1)


@torch.no_grad()
def item_scores(model: Any, examples: Sequence[Example], max_len: int) -> np.ndarray:
    """``(B, n_items)`` float32: the last position's logits over the catalogue (padding column dropped)."""
    model.eval()
    return item_logits(model, model.hidden(history_tokens(examples, max_len))[:, -1]).float().numpy()


def rank(model: Any, examples: Sequence[Example], k: int, max_len: int, batch: int,
         exclude: Sequence[frozenset[int]] | None = None) -> tuple[list[list[int]], list[list[float]]]:
    """Top-``k`` items and scores for every example, ``batch`` at a time (``exclude[i]``: never ranked)."""
    items, scores = [], []
    for start in range(0, len(examples), batch):
        drop = None if exclude is None else exclude[start:start + batch]
        top, val = top_k(item_scores(model, examples[start:start + batch], max_len), k, drop)
        items.extend(top.tolist())
        scores.extend(val.tolist())
    return items, scores


def validation(model: Any, valid: Sequence[Example], cfg: NextItemConfig,
               exclude: Sequence[frozenset[int]] | None) -> dict[str, float]:
    """Recall@10 and NDCG@10 on ``valid`` (no bootstrap)."""
    items, _ = rank(model, valid, 10, cfg.max_len, cfg.score_batch, exclude)
    metrics = compute_metrics(items, [e.target for e in valid], [10], bootstrap=0)
    return {m: metrics[m]["mean"] for m in ("recall@10", "ndcg@10")}


def fit(model: Any, sequences: Sequence[Sequence[int]], valid: Sequence[Example], cfg: NextItemConfig, seed: int,
        exclude: Sequence[frozenset[int]] | None = None, progress: bool = False) -> dict[str, Any]:
    """Train ``model`` in place (Adam, shuffled rows seeded from ``seed``) and keep its best validation epoch.
    Returns the record: per-epoch loss and validation metrics, ``best_epoch``, ``best``, ``train_seconds``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    inputs, labels = (torch.as_tensor(a) for a in training_rows(sequences, cfg.max_len))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    t0, history, best, best_state = time.perf_counter(), [], -1.0, None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        for idx in np.array_split(rng.permutation(len(inputs)), max(1, -(-len(inputs) // cfg.batch_size))):
            loss = next_item_loss(model, inputs[idx], labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        val = validation(model, valid, cfg, exclude)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), **val})
        if progress:
            print(f"epoch {epoch}: loss {history[-1]['loss']:.4f} val {val}")
        if val[cfg.select_metric] > best:
            best, best_state = val[cfg.select_metric], copy.deepcopy(model.state_dict())
        best_epoch = max(history, key=lambda h: (h[cfg.select_metric], -h["epoch"]))["epoch"]
        if epoch - best_epoch >= cfg.patience:
            break
    model.load_state_dict(best_state)
    return {"epochs": history, "best_epoch": best_epoch, "best": {cfg.select_metric: best},
            "train_seconds": time.perf_counter() - t0, "rows": len(inputs)}


class NextItemRanker:
    """A full-softmax next-item model as a :class:`pauserec.eval.contract.Baseline`. A subclass names itself
    (``name``: its ``BASELINES`` key and ``baseline.<name>`` config section) and builds its module
    (:meth:`build`); fitting, the training record (``RUN/next_item.json``) and ranking are these."""

    name = ""
    uses_catalog = False

    def __init__(self, cfg: RunConfig, progress: bool = False):
        self.cfg, self.progress = cfg, progress
        self.section: NextItemConfig = getattr(cfg.baseline, self.name)
        self.model: Any = None

    def build(self, n_items: int) -> torch.nn.Module:
        """A fresh :class:`NextItemModel` over ``n_items`` items."""
        raise NotImplementedError

    def fit(self, data: DataDir, split: Split, run: RunDir) -> TrainCost:
        """Train on ``split``'s training parts, select the epoch on validation; cost: seconds, peak memory,
        parameters, epochs, the best epoch and its validation score."""
        dataset, c = data.dataset(), self.section
        reset_peak_memory()
        torch.manual_seed(self.cfg.seed)
        self.model = self.build(dataset.n_items)
        valid = select_users(split.valid, c.val_users, self.cfg.eval.subset_seed)  # the same for every seed
        exclude = exclusions(dataset, valid, "valid", self.cfg.eval.exclude_history)
        record = fit(self.model, split.training_sequences(dataset), valid, c, self.cfg.seed, exclude, self.progress)
        write_json(run.file("next_item.json"), record)
        return TrainCost(record["train_seconds"], peak_memory_bytes(),
                         parameters=sum(p.numel() for p in self.model.parameters()),
                         details={"epochs": len(record["epochs"]), "best_epoch": record["best_epoch"],
                                  f"best_val_{c.select_metric}": record["best"][c.select_metric],
                                  "val_examples": len(valid)})

    def rank(self, examples: Sequence[Example], k: int, exclude: Sequence[frozenset[int]] | None) -> Ranking:
        items, scores = rank(self.model, examples, k, self.section.max_len, self.section.score_batch, exclude)
        return Ranking(items, scores, details={"batch_size": self.section.score_batch})
