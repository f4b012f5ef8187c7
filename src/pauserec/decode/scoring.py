"""Scoring one SID level: log-probabilities of the level's code tokens from last-position hidden states.

The LM head is evaluated only at the last position of each forward (the decoder body ``model.base_model`` returns
hidden states, the head ``model.get_output_embeddings()`` is applied to the last one) -- over the full vocabulary
(``"vocab"``) or, for ``"level"`` with a plain ``nn.Linear`` head, only over the ``C_d`` rows of the current level. A
wrapped head (LoRA, PEFT ``modules_to_save``) is called as a module so its adapters apply. A
``final_logit_softcapping`` in the config is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..model.head import apply_softcap, logit_softcap

Normalization = Literal["vocab", "level", "trie"]


def check_causal_lm(model: Any) -> None:
    if model.base_model is model:
        raise TypeError(f"{type(model).__name__} has no separate base model; pass a *ForCausalLM model")
    if model.get_output_embeddings() is None:
        raise TypeError(f"{type(model).__name__} has no output embedding (LM head)")


def as_level_ids(level_token_ids: Sequence[Any], device: torch.device) -> list[torch.Tensor]:
    return [torch.as_tensor(ids, dtype=torch.long, device=device).reshape(-1) for ids in level_token_ids]


class Scorer:
    """Log-probabilities of one level's code tokens from last-position hidden states."""

    def __init__(self, model: Any, level_ids: list[torch.Tensor], normalization: Normalization):
        if normalization not in ("vocab", "level", "trie"):
            raise ValueError(f"score_normalization must be 'vocab', 'level' or 'trie', got {normalization!r}")
        check_causal_lm(model)
        self.head = model.get_output_embeddings()
        self.softcap = logit_softcap(model)
        self.level_ids = level_ids
        self.normalization = normalization
        # only a plain Linear head may be sliced to the level's rows; a wrapped one (LoRA, PEFT modules_to_save...)
        # is called as a module so that its adapters apply
        self.sliced = normalization != "vocab" and type(self.head) is torch.nn.Linear
        if self.sliced:  # the C_d rows of the head, gathered once per call
            bias = self.head.bias
            self.level_w = [self.head.weight.index_select(0, ids) for ids in level_ids]
            self.level_b = [None if bias is None else bias.index_select(0, ids) for ids in level_ids]

    def _cap(self, logits: torch.Tensor) -> torch.Tensor:
        return apply_softcap(logits, self.softcap)

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` (R, H) -> logits over the whole vocabulary (R, V), float32 (for free-text generation)."""
        return self._cap(self.head(hidden).float())

    def __call__(self, hidden: torch.Tensor, level: int) -> torch.Tensor:
        """``hidden`` (R, H) -> log-probs (R, C_level), float32."""
        if self.sliced:
            logits = self._cap(F.linear(hidden, self.level_w[level], self.level_b[level]).float())
            return torch.log_softmax(logits, dim=-1)
        logits = self._cap(self.head(hidden).float())
        if self.normalization == "vocab":
            return torch.log_softmax(logits, dim=-1).index_select(1, self.level_ids[level])
        return torch.log_softmax(logits.index_select(1, self.level_ids[level]), dim=-1)
