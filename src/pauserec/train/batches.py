"""Training examples as token ids, and the collator that left-pads them.

Left padding puts every sequence's SID at the same final columns of a batch, so the loss (and the LM head)
is computed only from the first column that carries a label: the LM head runs over a few positions
instead of the whole sequence.
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
            ids, labels = arm.training_sequence(prompts.ids(ex.history), prompts.sid_ids(ex.target))
            self.rows.append({"input_ids": ids, "labels": labels})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]

    def n_tokens(self) -> int:
        return sum(len(r["input_ids"]) for r in self.rows)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counting only real tokens (left padding gets position 0). (B, T) -> (B, T)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class LeftPadCollator:
    pad_token_id: int

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """-> input_ids, labels, attention_mask, position_ids: each (B, T_max) long."""
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[b, width - n :] = torch.tensor(r["input_ids"])
            labels[b, width - n :] = torch.tensor(r["labels"])
            mask[b, width - n :] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask, "position_ids": position_ids_from_mask(mask)}


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
    """Next-token cross-entropy on labelled positions, with the LM head run only from the first label column.

    With ``softmax`` the SID labels are normalised over their level's tokens (:class:`LevelSoftmax`).
    Returns the mean loss over labelled tokens and the number of those tokens.
    """
    labels = batch["labels"]
    has_label = (labels != IGNORE).any(dim=0)
    first = max(1, int(has_label.nonzero()[0])) if has_label.any() else labels.shape[1] - 1
    keep = labels.shape[1] - first + 1  # logits at positions first-1 .. T-1 predict first .. T
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=keep,
        use_cache=False,
    )
    target = labels[:, first:].reshape(-1)
    labelled = target != IGNORE
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])[labelled].float()
    target = target[labelled]
    nll = softmax.nll(logits, target) if softmax is not None else torch.nn.functional.cross_entropy(logits, target, reduction="none")
    return nll.mean(), int(target.numel())
