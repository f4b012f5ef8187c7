"""The LM head applied to chosen hidden states only (training computes logits where labels are, nowhere else)."""

from __future__ import annotations

import torch


def logit_softcap(model: torch.nn.Module) -> float | None:
    """The architecture's final logit soft-cap (e.g. Gemma-2's ``final_logit_softcapping``), or None."""
    inner = getattr(model, "module", model)
    return getattr(inner.config.get_text_config(decoder=True), "final_logit_softcapping", None)


def apply_softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    """``cap * tanh(logits / cap)`` as the model's forward applies it; ``logits`` unchanged when ``cap`` is None."""
    return torch.tanh(logits / cap) * cap if cap else logits


def head_logits(model: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """``hidden`` (n, H): final-norm hidden states -> logits (n, V), as the model's own forward would compute them
    there (its output embedding, then its final logit soft-cap if the architecture has one).

    ``model`` may be wrapped by DDP (``.module``) or PEFT: the head is looked up through the wrappers, so LoRA
    adapters on it apply."""
    inner = getattr(model, "module", model)
    return apply_softcap(inner.get_output_embeddings()(hidden), logit_softcap(inner))
