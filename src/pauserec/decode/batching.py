"""Many users at once: length-grouped, left-padded batches, a prefix shared by every prompt prefilled once per batch,
and N sampled rationales per user pooled by best score."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from ..sid.catalog import PrefixTrie
from .scoring import Normalization
from .search import BeamResult, constrained_beam_search
from .state import left_pad
from .think import ThinkSpec


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix shared by all prompts, leaving at least one token of each prompt."""
    if not prompts:
        return 0
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


def batched_beam_search(
    model: Any,
    prompts: Sequence[Sequence[int]],
    trie: PrefixTrie,
    level_token_ids: Sequence[Any],
    *,
    num_beams: int,
    batch_size: int,
    pad_token_id: int,
    forced_between_levels: Sequence[Sequence[int]] | None = None,
    score_normalization: Normalization = "vocab",
    progress: bool = False,
    share_prefix: bool = True,
    think: ThinkSpec | None = None,
    exclude: Sequence[Collection[int]] | None = None,
) -> BeamResult:
    """Decode many users in length-grouped, left-padded batches; results come back in the input order.

    Prompts are sorted by length (longest first, stable) so a batch holds similar lengths and padding stays minimal.
    With ``share_prefix`` the tokens every prompt starts with (the chat template's system turn and instruction:
    about half of a short prompt) are prefilled once per batch instead of once per user.
    With ``think.samples = N > 1`` each prompt is decoded N times (sampled rationales) and a user's candidates are
    pooled: every item keeps its best score over the samples, the best ``num_beams`` are returned, and the user's
    lead is that of the sample holding the top item. Counters are summed over batches (and samples).
    ``exclude`` (per prompt, item indices never returned) is passed on to :func:`constrained_beam_search`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_samples = think.samples if think is not None else 1
    rows = [p for p in prompts for _ in range(n_samples)]
    excluded = None if exclude is None else [items for items in exclude for _ in range(n_samples)]
    n = len(rows)
    n_shared = common_prefix_length(rows) if share_prefix else 0
    shared, rows = (list(rows[0][:n_shared]), [p[n_shared:] for p in rows]) if n_shared else (None, rows)
    order = sorted(range(n), key=lambda i: -len(rows[i]))
    total = BeamResult(items=[[] for _ in range(n)], scores=[[] for _ in range(n)], leads=[[] for _ in range(n)])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="user" if n_samples == 1 else "sample", desc="decode")
    try:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            ids, mask = left_pad([rows[i] for i in idx], pad_token_id)
            res = constrained_beam_search(
                model,
                ids,
                mask,
                trie,
                level_token_ids,
                num_beams=num_beams,
                forced_between_levels=forced_between_levels,
                score_normalization=score_normalization,
                shared_prefix=shared,
                think=think,
                exclude=None if excluded is None else [excluded[i] for i in idx],
            )
            for j, i in enumerate(idx):
                total.items[i], total.scores[i], total.leads[i] = res.items[j], res.scores[j], res.leads[j]
            for counter in ("prefill_tokens", "prefill_padded_tokens", "decode_tokens", "steps", "think_tokens"):
                setattr(total, counter, getattr(total, counter) + getattr(res, counter))
            if bar is not None:
                bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
    return pool_samples(total, n_samples, num_beams) if n_samples > 1 else total


def pool_samples(rows: BeamResult, n_samples: int, num_beams: int) -> BeamResult:
    """Merge ``n_samples`` consecutive rows per user: best score per item, the top ``num_beams`` kept."""
    pooled = BeamResult(**{k: v for k, v in vars(rows).items() if k not in ("items", "scores", "leads")})
    for start in range(0, rows.n_users, n_samples):
        best: dict[int, float] = {}
        for r in range(start, start + n_samples):
            for item, s in zip(rows.items[r], rows.scores[r], strict=True):
                best[item] = max(s, best.get(item, -math.inf))
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:num_beams]
        pooled.items.append([item for item, _ in ranked])
        pooled.scores.append([s for _, s in ranked])
        top = max(range(start, start + n_samples), key=lambda r: (rows.scores[r][0] if rows.scores[r] else -math.inf, -r))
        pooled.leads.append(rows.leads[top])
    return pooled
