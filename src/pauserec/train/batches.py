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

import torch

from ..arms.base import IGNORE, Arm
from ..data.split import Example
from ..prompt import PromptBuilder


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

    def nll(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-position negative log-likelihood: ``logits`` (N, V) float, ``targets`` (N,) -> (N,)."""
        level = self.level_of.to(targets.device)[targets]
        full = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        is_sid = level >= 0
        if not bool(is_sid.any()):
            return full
        cols = self.columns.to(targets.device)[level[is_sid]]  # (n_sid, C_max)
        sub = logits[is_sid].gather(1, cols.clamp(min=0)).masked_fill(cols < 0, float("-inf"))
        restricted = torch.nn.functional.cross_entropy(sub, self.code_of.to(targets.device)[targets[is_sid]], reduction="none")
        return full.masked_scatter(is_sid, restricted)


def label_window_loss(model, batch: dict[str, torch.Tensor], softmax: LevelSoftmax | None = None) -> tuple[torch.Tensor, int]:
    """Next-token cross-entropy on labelled positions, with the LM head run only over the label window.

    The window spans the batch's first to last labelled column; logits at columns ``first-1 .. last-1``
    predict them. With ``softmax`` the SID labels are normalised over their level's tokens (:class:`LevelSoftmax`).
    Returns the mean loss over labelled tokens and the number of those tokens.
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
    target = labels[:, first : last + 1].reshape(-1)
    labelled = target != IGNORE
    logits = out.logits.reshape(-1, out.logits.shape[-1])[labelled].float()
    target = target[labelled]
    nll = softmax.nll(logits, target) if softmax is not None else torch.nn.functional.cross_entropy(logits, target, reduction="none")
    return nll.mean(), int(target.numel())
