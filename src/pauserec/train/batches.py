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


def label_window_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Next-token cross-entropy on labelled positions, with the LM head run only from the first label column.

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
    logits = out.logits[:, :-1].float()
    target = labels[:, first:]
    n = int((target != IGNORE).sum())
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE)
    return loss, n
