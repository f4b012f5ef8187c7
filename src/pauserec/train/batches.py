"""Training examples as token ids, the collator that right-pads them, and the loss over the label window.

Training pads on the right (decoding pads on the left): with left padding the pad positions are query rows
that may attend to nothing, and CUDA's memory-efficient attention returns NaN gradients for such fully masked
rows (pytorch/pytorch#109517, #119320): on an H200 three of five arms were NaN from the first steps.
With right padding every row starts with a real token, so every query sees at least one key.

Length-grouped batches keep the SID labels of all rows within a few columns of each other, so the LM head
runs only over that window (first to last labelled column), not over the whole sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..arms.base import IGNORE, Arm
from ..data.split import Example
from ..prompt import PromptBuilder
from ..sid.catalog import PrefixTrie


class SFTDataset(torch.utils.data.Dataset):
    """Token ids and labels of every training example, built once."""

    def __init__(self, examples: Sequence[Example], prompts: PromptBuilder, arm: Arm):
        self.rows = []
        for ex in examples:
            ids, labels = arm.training_sequence(prompts.ids(ex.history), prompts.sid_ids(ex.target), ex)
            self.rows.append({"input_ids": ids, "labels": labels})

    @classmethod
    def from_rows(cls, rows: list[dict[str, list[int]]]) -> SFTDataset:
        """Rows already built (``input_ids`` and ``labels``), e.g. SID-grounding tasks."""
        data = cls.__new__(cls)
        data.rows = rows
        return data

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_examples(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]

    def n_tokens(self) -> int:
        return sum(len(r["input_ids"]) for r in self.rows)


@dataclass
class RightPadCollator:
    pad_token_id: int

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """-> input_ids, labels (IGNORE on padding), attention_mask: each (B, T_max) long, real tokens first."""
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[b, :n] = torch.tensor(r["input_ids"])
            labels[b, :n] = torch.tensor(r["labels"])
            mask[b, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class LevelSoftmax:
    """Where a label is an SID token, normalise over that SID level's tokens only (the same ``"level"`` scoring the
    decoder uses); any other label (e.g. a rationale token) keeps the full-vocabulary softmax.

    The model then spends no steps learning *that* an SID token comes next (the decoder enforces it) and all of
    them learning *which* item: on SmolLM2 the full-vocabulary loss starts near 14 nats and needs hundreds of
    steps to fall below the uniform-over-codes 5.5.

    Args:
        level_token_ids: per SID level, the vocabulary ids of its codes, ``(C_d,)`` each.
        vocab_size: rows of the output layer.
    """

    def __init__(self, level_token_ids: list[torch.Tensor], vocab_size: int):
        width = max(len(ids) for ids in level_token_ids)
        self.columns = torch.full((len(level_token_ids), width), -1, dtype=torch.long)  # (L, C_max), -1 = padding
        self.level_of = torch.full((vocab_size,), -1, dtype=torch.long)  # token id -> level, -1 = not an SID token
        self.code_of = torch.zeros((vocab_size,), dtype=torch.long)  # token id -> code within its level
        for d, ids in enumerate(level_token_ids):
            ids = torch.as_tensor(ids, dtype=torch.long)
            self.columns[d, : len(ids)] = ids
            self.level_of[ids] = d
            self.code_of[ids] = torch.arange(len(ids))

    def nll(self, logits: torch.Tensor, targets: torch.Tensor, where: LabelSites | None = None) -> torch.Tensor:
        """Per-position negative log-likelihood: ``logits`` (N, V) float, ``targets`` (N,) -> (N,).
        ``where`` (the labels' places in the batch) is read by :class:`TrieSoftmax` only."""
        level = self.level_of.to(targets.device)[targets]
        is_sid = level >= 0  # as is_sid(targets), with the levels kept
        if not bool(is_sid.any()):
            return torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        cols = self.columns.to(targets.device)[level[is_sid]]  # (n_sid, C_max)
        allowed = (cols >= 0) & self._prefix_allows(level, is_sid, where)
        sub = logits[is_sid].gather(1, cols.clamp(min=0)).masked_fill(~allowed, float("-inf"))
        restricted = torch.nn.functional.cross_entropy(sub, self.code_of.to(targets.device)[targets[is_sid]], reduction="none")
        nll = logits.new_zeros(targets.shape).masked_scatter(is_sid, restricted)
        if bool(is_sid.all()):  # SID labels only (direct, pause): no full-vocabulary softmax over (N, V) at all
            return nll
        full = torch.nn.functional.cross_entropy(logits[~is_sid], targets[~is_sid], reduction="none")
        return nll.masked_scatter(~is_sid, full)

    def codes(self) -> torch.Tensor:
        """``(C,)`` the vocabulary ids of every level's codes (the only columns an SID label's loss reads)."""
        return self.columns[self.columns >= 0]

    def is_sid(self, targets: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: which label ids are SID tokens."""
        return self.level_of.to(targets.device)[targets] >= 0

    def _prefix_allows(self, level: torch.Tensor, is_sid: torch.Tensor, where: LabelSites | None) -> torch.Tensor | bool:
        return True  # every code of the level


@dataclass(frozen=True)
class LabelSites:
    """Where the labels of a batch sit: ``input_ids`` and ``parents`` (R, T) (the position each token follows: the
    previous column for padded rows, the tree parent for packed rows, -1 at a row's first token), and the labelled
    positions ``rows``, ``cols`` (N,) in the order of the loss's ``targets``."""

    input_ids: torch.Tensor
    parents: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor


class TrieSoftmax(LevelSoftmax):
    """Where a label is an SID token, normalise over the codes the catalogue has *after that SID's prefix* (the
    level-d codes of the items whose first d codes are the label's preceding SID tokens), as the decoder does with
    ``score_normalization="trie"``; other labels keep the full-vocabulary softmax.

    With the level softmax most of the SID loss is the catalogue's structure, which the decoder's trie enforces
    anyway: on Scientific ~17 of 256 level-2 codes exist under a prefix and ~1 level-3 code. Here that part is zero
    and every gradient goes to ranking. An item's score, the sum over its levels, is a log-probability over items.

    The prefix of a level-d label is read from the batch: the nearest earlier SID tokens of levels d-1, ..., 0 on the
    label's path (``parents``), skipping anything between them (pauses). A label without a full prefix on its path
    falls back to its level's codes.

    Args:
        level_token_ids: per SID level, the vocabulary ids of its codes, ``(C_d,)`` each.
        vocab_size: rows of the output layer.
        trie: the catalogue's :class:`~pauserec.sid.catalog.PrefixTrie`.
    """

    def __init__(self, level_token_ids: list[torch.Tensor], vocab_size: int, trie: PrefixTrie):
        super().__init__(level_token_ids, vocab_size)
        self.tables = [torch.from_numpy(t.astype(np.int64)) for t in trie.tables]

    def _prefix_allows(self, level: torch.Tensor, is_sid: torch.Tensor, where: LabelSites | None) -> torch.Tensor:
        if where is None:
            raise ValueError("TrieSoftmax needs the labels' places in the batch (where=LabelSites)")
        lv = level[is_sid].cpu()
        node = self._prefix_nodes(where, is_sid.cpu(), lv)
        allowed = torch.ones((lv.numel(), self.columns.shape[1]), dtype=torch.bool)
        for d, table in enumerate(self.tables):
            sel = (lv == d) & (node >= 0)
            if bool(sel.any()):
                allowed[sel, : table.shape[1]] = table[node[sel]] >= 0
        return allowed.to(level.device)

    def _prefix_nodes(self, where: LabelSites, is_sid: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """``(n_sid,)`` the trie node each SID label is chosen from (-1: no full prefix on its path)."""
        ids, parents = where.input_ids.cpu(), where.parents.cpu()
        rows, cols = where.rows.cpu()[is_sid], where.cols.cpu()[is_sid]
        n, n_levels = level.numel(), len(self.tables)
        codes = torch.full((n, max(n_levels - 1, 1)), -1, dtype=torch.long)
        need = level - 1  # the level of the next prefix token to find, walking back
        pos = parents[rows, cols]
        while True:
            active = (need >= 0) & (pos >= 0)
            if not bool(active.any()):
                break
            token = ids[rows, pos.clamp(min=0)]
            hit = active & (self.level_of[token] == need)
            codes[hit, need[hit]] = self.code_of[token[hit]]
            need = need - hit.long()
            pos = torch.where(active, parents[rows, pos.clamp(min=0)], pos)
        node = torch.zeros(n, dtype=torch.long)
        node[need >= 0] = -1
        for d in range(n_levels - 1):
            step = (level > d) & (node >= 0)
            node[step] = self.tables[d][node[step], codes[step, d]]
        return node


def label_window_loss(model, batch: dict[str, torch.Tensor], softmax: LevelSoftmax | None = None) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over labelled positions; returns it and the number of those tokens."""
    nll, target, _ = label_window_nll(model, batch, softmax)
    return nll.mean(), int(target.numel())


def label_window_nll(model, batch: dict[str, torch.Tensor], softmax: LevelSoftmax | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per labelled position of padded rows: ``(nll, target, weight)``, each ``(n,)``, weight 1.

    The LM head runs only over the label window: the batch's first to last labelled column; logits at columns
    ``first-1 .. last-1`` predict them. With ``softmax`` the SID labels are normalised over their level's tokens
    (:class:`LevelSoftmax`).
    """
    labels = batch["labels"]
    columns = (labels != IGNORE).any(dim=0).nonzero().squeeze(1)
    if columns.numel() == 0:
        raise ValueError("a training batch without any label")
    first, last = max(1, int(columns[0])), int(columns[-1])
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        logits_to_keep=torch.arange(first - 1, last, device=labels.device),
        use_cache=False,
    )
    window = labels[:, first : last + 1]
    rows, offset = (window != IGNORE).nonzero(as_tuple=True)  # row-major, like the flattened logits below
    logits = out.logits[rows, offset].float()
    target = window[rows, offset]
    if softmax is None:
        nll = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    else:
        previous = torch.arange(-1, labels.shape[1] - 1, device=labels.device).expand_as(labels)
        nll = softmax.nll(logits, target, LabelSites(batch["input_ids"], previous, rows, offset + first))
    return nll, target, torch.ones_like(nll)


def sid_softmax(loss: str, level_token_ids: list[torch.Tensor], vocab_size: int, trie: PrefixTrie) -> LevelSoftmax | None:
    """The SID label normalisation for ``train.loss``: ``level``, ``trie``, or None (``vocab``: plain cross-entropy)."""
    if loss == "level":
        return LevelSoftmax(level_token_ids, vocab_size)
    if loss == "trie":
        return TrieSoftmax(level_token_ids, vocab_size, trie)
    return None
