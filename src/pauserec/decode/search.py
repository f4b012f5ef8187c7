"""Trie-constrained beam search over Semantic IDs, with one shared KV-cache prefill per user.

The decoder reads a left-padded batch of prefixes (prompt, optional pause tokens, optional rationale -- it does not
care what they contain) and returns, per user, the ``num_beams`` best *real, distinct* catalogue items.

Algorithm (``B`` users, ``W = num_beams``, ``L`` SID levels, ``C_d`` codes at level ``d``)::

    prefill(prefix)  -> KV cache (B rows), hidden state at the last position          (.state)
    [think: generate free text (a rationale) token by token into the same cache until the end token]   (.think)
    for d in 0..L-1:                                                                  (.step)
        log p(code | beam)  over the C_d level tokens only           (R, C_d)   R = live beams   (.scoring)
        mask codes the trie does not allow after the beam's prefix
        keep per user the top min(W, #allowed) (beam, code) pairs by cumulative log-prob
        if d < L-1:
            reorder the cache by beam origin (at d = 0 this is the B -> R expansion; the prompt is never rerun)
            one forward over [chosen level-d token] + forced_between_levels[d] for all live beams

Costs: one prefill per user, ``L-1`` incremental forwards (of ``1 + len(forced)`` tokens per beam), and an LM head
evaluated only at the last position of each forward (:mod:`.scoring`). PEFT models are unwrapped with
``get_base_model()`` (adapters stay active).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..sid.catalog import PrefixTrie
from .scoring import Normalization, Scorer, as_level_ids
from .state import prefill
from .step import Beams, check_forced, constrained_step
from .think import ThinkSpec, refill, think_phase


@dataclass
class BeamResult:
    """Per-user ranked items and the token counts the decoding cost.

    Attributes:
        items: per user, item indices best first; distinct, all real catalogue items.
        scores: per user, the cumulative log-probabilities (sum over the L levels) aligned with ``items``.
        prefill_tokens: non-pad prefix tokens run through the model (once per user; twice, prompt + rationale the
            second time, where a think phase on a sliding-window model needs :func:`.think.refill`).
        prefill_padded_tokens: prefix positions including padding (``B * T`` per call): the work actually done.
        decode_tokens: tokens fed after the prefill, summed over beams (``sum_d R_d * (1 + len(forced[d]))``).
        steps: incremental forward calls after the prefill (``L - 1`` per call; summed over batches).
        think_tokens: generated rationale tokens fed (end tokens included, fillers of finished rows excluded).
        leads: per user, the generated rationale token ids (end token included); empty lists without a think phase.
    """

    items: list[list[int]] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)
    prefill_tokens: int = 0
    prefill_padded_tokens: int = 0
    decode_tokens: int = 0
    steps: int = 0
    think_tokens: int = 0
    leads: list[list[int]] = field(default_factory=list)

    @property
    def n_users(self) -> int:
        return len(self.items)

    def cost(self) -> dict[str, int]:
        return {
            "users": self.n_users,
            "prefill_tokens": self.prefill_tokens,
            "prefill_padded_tokens": self.prefill_padded_tokens,
            "decode_tokens": self.decode_tokens,
            "steps": self.steps,
            "think_tokens": self.think_tokens,
        }


def unwrap(model: Any) -> Any:
    """The ``PreTrainedModel`` inside a PEFT wrapper (LoRA layers stay injected), else the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def constrained_beam_search(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    trie: PrefixTrie,
    level_token_ids: Sequence[Any],
    *,
    num_beams: int,
    forced_between_levels: Sequence[Sequence[int]] | None = None,
    score_normalization: Normalization = "vocab",
    shared_prefix: Sequence[int] | None = None,
    think: ThinkSpec | None = None,
    exclude: Sequence[Collection[int]] | None = None,
) -> BeamResult:
    """Trie-constrained beam search from left-padded prefixes.

    Args:
        model: a Hugging Face causal LM (``*ForCausalLM``; a PEFT wrapper is unwrapped).
        input_ids, attention_mask: (B, T) LongTensor, LEFT-padded; each row's prefix ends where the SID (or, with
            ``think``, the generated rationale) starts.
        trie: the catalogue's :class:`~pauserec.sid.catalog.PrefixTrie` (L levels).
        level_token_ids: L id lists/tensors; ``level_token_ids[d][c]`` = vocabulary id of code ``c`` at level ``d``.
        num_beams: W, beams kept per user (= items returned, unless the catalogue has fewer).
        forced_between_levels: None, or L-1 lists of token ids teacher-forced (not scored) after level ``d`` is
            chosen and before level ``d+1`` is scored.
        score_normalization: ``"vocab"`` = log-softmax over the whole vocabulary, then the level's tokens (what HF
            ``generate`` scores); ``"level"`` = log-softmax over the level's ``C_d`` tokens only; ``"trie"`` = over
            the codes the catalogue has after the beam's prefix only (an item's score is then a log-probability over
            the catalogue's items: what ``train.loss=trie`` trains).
        shared_prefix: token ids that precede *every* row (e.g. the chat template's system turn). They are
            prefilled once for the whole batch and their KV cache is shared; each row is then
            ``shared_prefix + row`` with the padding between the two (masked, positions continue after the prefix),
            which is the same computation as left-padding the full sequences.
        think: generate a rationale per row before the SID search (one sample per row; see
            :func:`batched_beam_search` for N samples).
        exclude: per row, item indices never to return (e.g. the user's history); they are pruned from that row's
            trie (:meth:`~pauserec.sid.catalog.PrefixTrie.excluded_codes`), so no beam is spent on them.
    Returns:
        :class:`BeamResult`, one entry per input row.
    """
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} must both be (B, T)"
        )
    n_levels = trie.depth
    if len(level_token_ids) != n_levels:
        raise ValueError(f"{len(level_token_ids)} level token lists for a {n_levels}-level trie")
    forced = check_forced(forced_between_levels, n_levels)
    model = unwrap(model)
    device = model.get_input_embeddings().weight.device
    level_ids = as_level_ids(level_token_ids, device)
    for d, ids in enumerate(level_ids):
        if ids.numel() != trie.tables[d].shape[1]:
            raise ValueError(f"level {d}: {ids.numel()} token ids but the trie has {trie.tables[d].shape[1]} codes")
    forced_t = [torch.as_tensor(f, dtype=torch.long, device=device) for f in forced]

    input_ids = input_ids.to(device)
    attention_mask = attention_mask.to(device=device, dtype=torch.long)
    n_users, _ = input_ids.shape
    if n_users == 0:
        return BeamResult()
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("prompts must be LEFT-padded: attention_mask[:, -1] must be 1 for every row")
    if exclude is not None and len(exclude) != n_users:
        raise ValueError(f"exclude has {len(exclude)} rows for {n_users} prompts")
    forbidden = None if exclude is None else [trie.excluded_codes(items) for items in exclude]

    shared = torch.as_tensor(list(shared_prefix or []), dtype=torch.long, device=device)
    result = BeamResult(
        prefill_tokens=int(attention_mask.sum()) + shared.numel(),
        prefill_padded_tokens=int(attention_mask.numel()) + shared.numel(),
        leads=[[] for _ in range(n_users)],
    )
    with torch.inference_mode(), eval_mode(model):
        body = model.base_model
        scorer = Scorer(model, level_ids, score_normalization)
        state = prefill(body, input_ids, attention_mask, shared, model.config)
        if think is not None:
            result.leads, result.think_tokens = think_phase(body, scorer, state, think)
            search_tokens = sum(1 + len(f) for f in forced)  # slots the SID search adds after the rationale
            if (fresh := refill(body, state, input_ids, attention_mask, shared, result.leads, model.config,
                                search_tokens)) is not None:
                state, mask = fresh
                result.prefill_tokens += int(mask.sum()) + shared.numel()
                result.prefill_padded_tokens += int(mask.numel()) + shared.numel()

        beams = Beams.roots(n_users, device)  # one live beam per user: the empty SID prefix at the trie root
        for d in range(n_levels):
            beams, origin, code = constrained_step(beams, scorer(state.hidden, d), trie, d, n_users, num_beams,
                                                   score_normalization, forbidden)
            if d == n_levels - 1:
                break
            # the cache follows its beams; at d = 0 this expands B prefilled rows to R beams (no prompt rerun)
            state.select(origin)
            step_ids = level_ids[d][code][:, None]
            if forced_t[d].numel():
                step_ids = torch.cat([step_ids, forced_t[d][None, :].expand(origin.numel(), -1)], dim=1)
            state.feed(body, step_ids)
            result.decode_tokens += step_ids.numel()
            result.steps += 1

    assert (beams.node >= 0).all(), "the trie produced an invalid item"  # guaranteed by the masks
    result.items = [[] for _ in range(n_users)]
    result.scores = [[] for _ in range(n_users)]
    for u, item, s in zip(beams.user.cpu().tolist(), beams.node.tolist(), beams.score.cpu().tolist(), strict=True):
        result.items[u].append(int(item))
        result.scores[u].append(float(s))
    return result
