"""The decoder's running state: the KV cache of every live row, its attention mask and last hidden state, and the
prefill that creates it.

Transformers 5 cache API used here (``transformers.cache_utils``):

* ``cache = DynamicCache(config=model.config)``; forward with
  ``base(input_ids=..., attention_mask=2-D mask over past+new tokens, position_ids=(R, n_new), cache=cache,
  use_cache=True)`` -- the keyword is ``cache`` (``past_key_values`` is a deprecated alias), and the output carries
  ``.cache`` (the same object, updated in place) and ``.last_hidden_state``.
* ``cache.reorder_cache(index)``: ``index_select`` along the batch dimension of every layer. The index may be longer
  than the batch (``[0, 0, 0, 1, 1, ...]``), which is how the prefilled rows are expanded to beams without re-running
  the prompt. (``cache.batch_repeat_interleave(k)`` / ``cache.batch_select_indices(idx)`` also exist.)
* A sliding-window layer (``cache.layers[i].is_sliding``, Mistral, Gemma-2/3) keeps only its last
  ``sliding_window - 1`` cache *slots*, and its mask counts slots, not positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class DecodeState:
    """The decoder's running state, one row per live sequence (user before the SID search, beam during it).

    cache: the KV cache (rows = R); mask: (R, T) LongTensor over every cached position (0 = padding/filler);
    hidden: (R, H) the hidden state that predicts the next token; last_pos: (R,) position id of the last real token.
    """

    cache: Any
    mask: torch.Tensor
    hidden: torch.Tensor
    last_pos: torch.Tensor

    def feed(self, body: Any, ids: torch.Tensor, live: torch.Tensor | None = None) -> None:
        """Run ``ids`` (R, n) after every row's last token. Rows where ``live`` is False get masked fillers and
        keep their hidden state and position (used while other rows are still thinking)."""
        n_rows, n_new = ids.shape
        live_col = torch.ones(n_rows, dtype=torch.long, device=ids.device) if live is None else live.long()
        self.mask = torch.cat([self.mask, live_col[:, None].expand(-1, n_new)], dim=1)
        positions = self.last_pos[:, None] + torch.arange(1, n_new + 1, device=ids.device)[None, :]
        out = body(input_ids=ids, attention_mask=self.mask, position_ids=positions, cache=self.cache, use_cache=True)
        self.cache = out.cache
        if live is None:
            self.hidden, self.last_pos = out.last_hidden_state[:, -1], positions[:, -1]
        else:
            self.hidden = torch.where(live[:, None], out.last_hidden_state[:, -1], self.hidden)
            self.last_pos = torch.where(live, positions[:, -1], self.last_pos)

    def select(self, rows: torch.Tensor) -> None:
        """Keep (and repeat) the given rows: the cache follows its beams, the prompt is never rerun."""
        self.cache.reorder_cache(rows)
        self.mask = self.mask.index_select(0, rows)
        self.last_pos = self.last_pos.index_select(0, rows)


def prefill(body: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, shared: torch.Tensor, config: Any) -> DecodeState:
    """Prefill left-padded prefixes (after an optional prefix common to all rows, prefilled once and shared)."""
    from transformers import DynamicCache  # local: keeps `import pauserec.decode` light

    n_users, device, n_shared = input_ids.shape[0], input_ids.device, shared.numel()
    cache = DynamicCache(config=config)
    mask = attention_mask
    if n_shared:  # prefill the common prefix once, then give every row a copy of its cache
        positions = torch.arange(n_shared, device=device)[None, :]
        body(input_ids=shared[None, :], position_ids=positions, cache=cache, use_cache=True)
        cache.reorder_cache(torch.zeros(n_users, dtype=torch.long, device=device))
        mask = torch.cat([mask.new_ones((n_users, n_shared)), mask], dim=1)
    position_ids = (n_shared + attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    out = body(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, cache=cache, use_cache=True)
    return DecodeState(out.cache, mask, out.last_hidden_state[:, -1], position_ids[:, -1])


def left_pad(prompts: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into ``(input_ids, attention_mask)``, both LongTensor (B, max_len)."""
    if any(len(p) == 0 for p in prompts):
        raise ValueError("empty prompt")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), int(pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask


def sliding_window(cache: Any) -> int | None:
    """The smallest sliding window among the cache's layers (their ``sliding_window``), None without one."""
    windows = [layer.sliding_window for layer in getattr(cache, "layers", []) if getattr(layer, "is_sliding", False)]
    return min(windows) if windows else None
