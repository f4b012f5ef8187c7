"""Reference decoders, for parity tests and benchmarks only: slow but obviously right.

* :func:`exhaustive_rank` teacher-forces every catalogue SID after the prompt (no KV cache, the model's own logits)
  and sorts by total log-probability: the ground truth a beam search of width ``n_items`` must reproduce.
* :func:`hf_beam_search` is the same search with Hugging Face ``generate`` + ``prefix_allowed_tokens_fn``: the usual
  baseline the production decoder (:mod:`.search`) is measured against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..sid.catalog import PrefixTrie, trie_codes
from .scoring import Normalization, as_level_ids
from .search import BeamResult, eval_mode, unwrap
from .step import check_forced

__all__ = ["exhaustive_rank", "hf_beam_search"]


def _catalogue_codes(trie_or_codes: Any) -> np.ndarray:
    if isinstance(trie_or_codes, PrefixTrie):
        return trie_codes(trie_or_codes)
    codes = getattr(trie_or_codes, "codes", trie_or_codes)  # an SIDCatalog, or the codes themselves
    if isinstance(codes, torch.Tensor):
        codes = codes.cpu().numpy()
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be (n_items, L), got shape {codes.shape}")
    return codes


def _sibling_mask(codes: np.ndarray, depth: int, n_codes: int) -> np.ndarray:
    """``(n_items, n_codes)`` bool: the level-``depth`` codes some item with the same first ``depth`` codes uses."""
    groups: dict[tuple[int, ...], set[int]] = {}
    for row in codes:
        groups.setdefault(tuple(row[:depth]), set()).add(int(row[depth]))
    mask = np.zeros((len(codes), n_codes), dtype=bool)
    for i, row in enumerate(codes):
        mask[i, list(groups[tuple(row[:depth])])] = True
    return mask


def exhaustive_rank(
    model: Any,
    prompt_ids: Sequence[int],
    trie_or_codes: Any,
    level_token_ids: Sequence[Any],
    forced_between_levels: Sequence[Sequence[int]] | None = None,
    score_normalization: Normalization = "vocab",
    *,
    chunk_size: int = 64,
) -> list[tuple[int, float]]:
    """Reference ranking: teacher-force every catalogue SID after the prompt (full sequences, no KV cache, the
    model's own full-vocabulary logits) and sort by total log-prob, best first (ties: lower item index first).

    ``trie_or_codes``: a PrefixTrie, an SIDCatalog or a codes array ``(n_items, L)``. For tests and small catalogues.
    """
    codes = _catalogue_codes(trie_or_codes)
    n_items, n_levels = codes.shape
    forced = check_forced(forced_between_levels, n_levels)
    model = unwrap(model)
    device = model.get_input_embeddings().weight.device
    level_ids = as_level_ids(level_token_ids, device)
    # the token layout after the prompt and the position (in the full sequence) that predicts each level's token
    prompt = torch.as_tensor(list(prompt_ids), dtype=torch.long, device=device)
    codes_t = torch.as_tensor(codes, device=device)
    pieces, predict_at = [], []
    offset = len(prompt)
    for d in range(n_levels):
        predict_at.append(offset - 1)
        pieces.append(level_ids[d][codes_t[:, d]][:, None])
        offset += 1
        if d < n_levels - 1 and forced[d]:
            pieces.append(torch.as_tensor(forced[d], device=device)[None, :].expand(n_items, -1))
            offset += len(forced[d])
    suffix = torch.cat(pieces, dim=1)
    totals = torch.zeros(n_items, dtype=torch.float64)
    with torch.inference_mode(), eval_mode(model):
        for start in range(0, n_items, chunk_size):
            sl = slice(start, start + chunk_size)
            seq = torch.cat([prompt[None, :].expand(suffix[sl].shape[0], -1), suffix[sl]], dim=1)
            logits = model(input_ids=seq).logits.float()
            for d in range(n_levels):
                lg = logits[:, predict_at[d]]
                if score_normalization == "vocab":
                    lp = torch.log_softmax(lg, dim=-1).index_select(1, level_ids[d])
                elif score_normalization == "level":
                    lp = torch.log_softmax(lg.index_select(1, level_ids[d]), dim=-1)
                elif score_normalization == "trie":
                    siblings = torch.as_tensor(_sibling_mask(codes, d, len(level_ids[d]))[sl], device=device)
                    lp = torch.log_softmax(lg.index_select(1, level_ids[d]).masked_fill(~siblings, -math.inf), dim=-1)
                else:
                    raise ValueError(f"unknown score_normalization {score_normalization!r}")
                totals[sl] += lp.gather(1, codes_t[sl, d : d + 1]).squeeze(1).double().cpu()
    order = sorted(range(n_items), key=lambda i: (-totals[i].item(), i))
    return [(i, float(totals[i])) for i in order]


def hf_beam_search(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    trie: PrefixTrie,
    level_token_ids: Sequence[Any],
    *,
    num_beams: int,
    pad_token_id: int,
) -> BeamResult:
    """The same search with Hugging Face ``generate`` + ``prefix_allowed_tokens_fn`` (the usual baseline).

    Uses a clean :class:`~transformers.GenerationConfig` (no sampling, top-k/top-p, repetition penalty... leaking from
    the checkpoint's ``generation_config``), ``length_penalty=0`` (scores are plain sums of log-probs). Beams HF fills
    with placeholders when a user has fewer valid continuations than beams (score about -1e9, or a non-item) are
    dropped. No ``forced_between_levels`` support.
    """
    from transformers import GenerationConfig

    model = unwrap(model)
    n_levels = trie.depth
    device = model.get_input_embeddings().weight.device
    level_lists = [[int(t) for t in torch.as_tensor(ids).reshape(-1).tolist()] for ids in level_token_ids]
    code_of = [{tok: c for c, tok in enumerate(ids)} for ids in level_lists]
    prompt_len = input_ids.shape[1]
    any_token = [level_lists[0][0]]

    def allowed_fn(batch_id: int, sent: torch.Tensor) -> list[int]:
        gen = sent[prompt_len:].tolist()
        d = len(gen)
        if d >= n_levels:
            return any_token
        node = 0
        for lvl, tok in enumerate(gen):
            c = code_of[lvl].get(tok)
            if c is None:
                return level_lists[d]  # a placeholder beam (already -inf): anything, it is dropped later
            node = int(trie.tables[lvl][node, c])
            if node < 0:
                return level_lists[d]
        codes = np.nonzero(trie.tables[d][node] >= 0)[0]
        return [level_lists[d][c] for c in codes]

    gen_cfg = GenerationConfig(
        do_sample=False,
        num_beams=num_beams,
        num_return_sequences=num_beams,
        max_new_tokens=n_levels,
        min_new_tokens=n_levels,
        length_penalty=0.0,
        early_stopping=True,
        pad_token_id=pad_token_id,
        output_scores=True,
        return_dict_in_generate=True,
        use_cache=True,
    )
    saved = model.generation_config
    model.generation_config = GenerationConfig()  # nothing of the checkpoint's may fill the unset fields
    try:
        with torch.inference_mode(), eval_mode(model):
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=gen_cfg,
                prefix_allowed_tokens_fn=allowed_fn,
            )
    finally:
        model.generation_config = saved
    seqs = out.sequences[:, prompt_len:].cpu().tolist()
    seq_scores = out.sequences_scores.float().cpu().tolist()
    n_users = input_ids.shape[0]
    res = BeamResult(
        items=[[] for _ in range(n_users)],
        scores=[[] for _ in range(n_users)],
        prefill_tokens=int(attention_mask.sum()),
        prefill_padded_tokens=int(attention_mask.numel()),
        decode_tokens=n_users * num_beams * (n_levels - 1),  # HF feeds every beam row, placeholders included
        steps=n_levels - 1,
    )
    for row, (seq, s) in enumerate(zip(seqs, seq_scores, strict=True)):
        u = row // num_beams
        codes = [code_of[d].get(t, -1) for d, t in enumerate(seq[:n_levels])]
        item = trie.lookup(codes) if min(codes) >= 0 else -1
        if item < 0 or not math.isfinite(s) or s < -1e8 or item in res.items[u]:
            continue
        res.items[u].append(item)
        res.scores[u].append(float(s))
    return res
