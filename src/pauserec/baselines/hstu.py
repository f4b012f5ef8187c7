"""HSTU (Zhai et al., "Actions Speak Louder than Words", ICML 2024) from torch-rechub, trained with full softmax.

torch-rechub 0.9.0's ``torch_rechub.models.generative.HSTUModel`` follows the paper's Eq. 2-4 and Meta's reference
implementation: token + absolute position embedding, per layer one SiLU over the joint U/V/Q/K projection, pointwise
``SiLU(QK^T / sqrt(d_qk) + rab) / N`` attention under a causal mask that also masks padded keys, gated output
``f2(LayerNorm(AV) * U)``, external residuals, output tied to the item embedding (plus a bias). Its trainer
(``SeqTrainer``) uses the same objective as :func:`.next_item.next_item_loss`: next-token cross-entropy over the
vocabulary at every non-padded position, the padding logit excluded. Time: the model can add time-difference
embeddings and a time bias; our default data has no clock, so ``use_time_embedding=False`` and the relative bias is
position-only (``time_diffs=None``).

:meth:`HSTU.hidden` is ``HSTUModel.forward`` up to its output projection (the same calls, in order; the test checks
``hidden`` + :meth:`HSTU.output_layer` against ``forward``), so that the loss scores labelled positions only.
"""

from __future__ import annotations

import torch

from ..config import HSTUConfig
from .next_item import NextItemRanker


class HSTU(torch.nn.Module):
    """torch-rechub's HSTU: ``(B, L)`` tokens -> ``(B, L, n_items + 1)`` logits."""

    def __init__(self, n_items: int, cfg: HSTUConfig):
        super().__init__()
        from torch_rechub.models.generative import HSTUModel

        self.model = HSTUModel(vocab_size=n_items + 1, d_model=cfg.d_model, n_heads=cfg.heads, n_layers=cfg.layers,
                               dqk=cfg.dqk, dv=cfg.dv, max_seq_len=cfg.max_len, dropout=cfg.dropout,
                               use_time_embedding=False)

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L, d_model)``: ``HSTUModel.forward`` without time input, before the item projection."""
        m = self.model
        if tokens.shape[1] > m.max_seq_len:
            raise ValueError(f"{tokens.shape[1]} tokens exceed baseline.hstu.max_len={m.max_seq_len}")
        valid = tokens.ne(0).unsqueeze(-1)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = (m.token_embedding(tokens) + m.position_embedding(positions).unsqueeze(0)) * valid
        return m.hstu_block(m.dropout(x), padding_mask=tokens.ne(0), time_diffs=None) * valid

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.model.token_embedding.weight, self.model.output_bias  # tied, as HSTUModel's default

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L, n_items + 1)``: torch-rechub's own forward (the reference of :meth:`hidden`)."""
        return self.model(tokens)


class HSTURanker(NextItemRanker):
    """:class:`HSTU` as a baseline (``baseline.hstu``)."""

    name = "hstu"

    def build(self, n_items: int) -> torch.nn.Module:
        return HSTU(n_items, self.section)
