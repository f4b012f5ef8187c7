"""The LM head applied to chosen hidden states only (training computes logits where labels are, nowhere else)."""

from __future__ import annotations

import torch


def head_logits(model: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """``hidden`` (n, H): final-norm hidden states -> logits (n, V), as the model's own forward would compute them
    there (its output embedding, then its final logit soft-cap if the architecture has one, e.g. Gemma-2).

    ``model`` may be wrapped by DDP (``.module``) or PEFT: the head is looked up through the wrappers, so LoRA
    adapters on it apply."""
    inner = getattr(model, "module", model)
    logits = inner.get_output_embeddings()(hidden)
    cap = getattr(inner.config.get_text_config(decoder=True), "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits
