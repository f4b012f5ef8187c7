"""The teacher-forced SID loss of held-out examples: a forward-only proxy for model selection.

For each example the arm's training sequence (prompt, arm segment, target SID) is fed once, and the negative
log-likelihood of each target SID token is read with the training loss's normalisation (``train.loss``:
:func:`.batches.sid_softmax`). The proxy is their mean over all SID tokens of all examples (nats per SID token),
the definition of the logged ``sid_loss``; it costs one forward per example, no beam search.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..arms.base import Arm
from ..data.split import Example
from ..prompt import PromptBuilder
from .batches import LevelSoftmax, RightPadCollator, SFTDataset, label_window_nll


def sid_loss(model: torch.nn.Module, examples: Sequence[Example], prompts: PromptBuilder, arm: Arm,
             level_ids: Sequence[torch.Tensor], softmax: LevelSoftmax | None, pad_token_id: int,
             batch_size: int = 32) -> tuple[float, int]:
    """``(mean NLL in nats per target SID token, number of those tokens)`` over ``examples``.

    Args:
        model: a causal LM with the run's vocabulary (any device; its mode is left as it was).
        examples: the held-out examples (e.g. validation users); each contributes its target's SID tokens.
        level_ids: per SID level, the vocabulary ids of its codes ``(C_d,)``: which labels count (other labels of
            an arm's segment, e.g. a rationale, are left out).
        softmax: the training loss's SID normalisation (None: the full vocabulary, ``train.loss=vocab``).
        batch_size: examples per forward (right-padded, shortest first; the mean does not depend on it).
    """
    rows = sorted(SFTDataset(examples, prompts, arm).rows, key=lambda r: len(r["input_ids"]))
    collate = RightPadCollator(pad_token_id)
    device = next(model.parameters()).device
    sid_ids = torch.cat([torch.as_tensor(ids, dtype=torch.long) for ids in level_ids]).to(device)
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                batch = {k: v.to(device) for k, v in collate(rows[start:start + batch_size]).items()}
                nll, target, _ = label_window_nll(model, batch, softmax)
                is_sid = torch.isin(target, sid_ids)
                total += float(nll[is_sid].double().sum())
                count += int(is_sid.sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no SID label among the examples: nothing to average")
    return total / count, count
