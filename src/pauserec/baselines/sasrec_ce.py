"""SASRec trained with full-softmax cross-entropy: torch-rechub's SASRec encoder, our next-item training.

torch-rechub 0.9.0's ``torch_rechub.models.matching.SASRec`` is the original architecture (Kang & McAuley 2018,
ported from kang205/SASRec): item embeddings scaled by sqrt(d), learned absolute positions, dropout, then blocks
of causal multi-head self-attention (``attn_mask = ~tril``, queries layer-normed) and a point-wise feed-forward,
padded positions zeroed after each block, a final LayerNorm. Its own ``forward`` scores one positive and one
sampled negative per position (binary cross-entropy, as cornac's); we use only its encoder (``seq_forward``) and
score every catalogue item with the shared item embedding (``hidden @ E.T``), trained by
:func:`.next_item.next_item_loss` (cross-entropy over the whole catalogue; Klenitskiy & Vasilev, "Turning
Dross Into Gold Loss: is BERT4Rec really better than SASRec?", RecSys 2023).

``seq_forward`` squeezes its input, which would also drop a batch or time axis of length 1 (then fails on an in-place
broadcast): inputs are always padded to ``max_len`` (>= 2), and a batch of one row is encoded beside a copy of it. Embeddings start Xavier-normal (torch-rechub's default is N(0, 1e-4), which trains far slower).
"""

from __future__ import annotations

import torch

from ..config import SASRecCEConfig
from .next_item import NextItemRanker


class SASRecCE(torch.nn.Module):
    """torch-rechub's SASRec encoder with full-catalogue logits: ``(B, L)`` tokens -> ``(B, L, n_items + 1)``."""

    def __init__(self, n_items: int, cfg: SASRecCEConfig):
        super().__init__()
        from torch_rechub.basic.features import SequenceFeature
        from torch_rechub.basic.initializers import XavierNormal
        from torch_rechub.models.matching import SASRec

        feature = SequenceFeature("seq", vocab_size=n_items + 1, embed_dim=cfg.hidden, pooling="concat",
                                  padding_idx=0, initializer=XavierNormal())
        self.encoder = SASRec([feature], max_len=cfg.max_len, dropout_rate=cfg.dropout, num_blocks=cfg.layers,
                              num_heads=cfg.heads)
        self.features = [feature]

    @property
    def item_embedding(self) -> torch.Tensor:
        """``(n_items + 1, hidden)``: input and output item embeddings (row 0: padding)."""
        return self.encoder.item_emb.embed_dict["seq"].weight

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L, hidden)`` encoder states (what SASRec's ``user_tower`` reads at the last position)."""
        if tokens.shape[0] == 1:  # see the module docstring: seq_forward needs two rows
            return self.hidden(tokens.expand(2, -1))[:1]
        x = {"seq": tokens}
        return self.encoder.seq_forward(x, self.encoder.item_emb(x, self.features)[:, 0])

    def output_layer(self) -> tuple[torch.Tensor, None]:
        return self.item_embedding, None

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L, n_items + 1)`` scores of every token at every position (the reference of the masked loss)."""
        return self.hidden(tokens) @ self.item_embedding.T


class SASRecCERanker(NextItemRanker):
    """:class:`SASRecCE` as a baseline (``baseline.sasrec_ce``)."""

    name = "sasrec_ce"

    def build(self, n_items: int) -> torch.nn.Module:
        return SASRecCE(n_items, self.section)
