"""Semantic initialisation of the SID token rows from the items' titles.

A freshly added SID token starts as the mean embedding plus small random noise (:func:`~.vocab.extend_vocabulary`):
every history reads as the same blur until training has pulled the SID rows apart, which costs hundreds of steps
on a CPU. Here each code's row starts instead as the mean embedding plus a *structured* deviation: the average,
over the items carrying that code at that level, of the backbone's own embeddings of their title tokens. Items
that share a code were clustered together from their text, so the code's row points where their titles point,
at the same scale as the random deviation it replaces (``scale`` x the per-dimension std of the existing rows).
With tied embeddings (SmolLM2) this also initialises the output rows; an untied output layer lives in another
space than the title embeddings and keeps its random init.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..sid.catalog import SIDCatalog


@torch.no_grad()
def init_sid_rows_from_text(
    model,
    tokenizer,
    catalog: SIDCatalog,
    level_token_ids: Sequence[torch.Tensor],
    texts: Sequence[str],
    scale: float,
    max_tokens: int = 32,
) -> int:
    """Overwrite the input-embedding rows of the SID tokens (the output rows too when tied); return how many codes
    were set.

    Args:
        level_token_ids: per level, the ids of codes ``0..C_d-1`` (``(C_d,)`` each).
        texts: one text per item (catalogue order), e.g. the title; its first ``max_tokens`` tokens are averaged.
        scale: deviation of a row from the mean row, in per-dimension stds of the existing rows
            (``model.new_row_noise``, the scale of the random init this replaces).
    Codes that no item uses, and levels where a single code is used, keep their current (random) rows.
    """
    emb = model.get_input_embeddings().weight
    n_ref = min(int(min(ids.min() for ids in level_token_ids)), emb.shape[0])
    ref = emb[:n_ref].float()
    mean, std = ref.mean(0), ref.std(0)
    item_vecs = _item_vectors(emb, tokenizer, texts, max_tokens)  # (n_items, H)
    n_set = 0
    for level, ids in enumerate(level_token_ids):
        codes = torch.as_tensor(np.asarray(catalog.codes[:, level]), dtype=torch.long)
        size = len(ids)
        sums = torch.zeros(size, item_vecs.shape[1]).index_add_(0, codes, item_vecs)
        counts = torch.bincount(codes, minlength=size).float()
        used = counts > 0
        if int(used.sum()) < 2:  # one code: no direction to speak of (and no std); keep its random row
            continue
        centroids = sums[used] / counts[used, None]
        dev = centroids - centroids.mean(0)
        dev = dev / dev.std(0).clamp_min(1e-8) * std * scale  # the random init's scale, semantic directions
        emb[ids[used]] = (mean + dev).to(emb.dtype)
        n_set += int(used.sum())
    return n_set


def _item_vectors(emb: torch.Tensor, tokenizer, texts: Sequence[str], max_tokens: int) -> torch.Tensor:
    """``(n_items, H)``: the mean input embedding of each text's first ``max_tokens`` tokens."""
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_tokens)["input_ids"]
    vecs = torch.zeros(len(texts), emb.shape[1])
    for i, ids in enumerate(encoded):
        if ids:
            vecs[i] = emb[torch.tensor(ids)].float().mean(0)
    return vecs
