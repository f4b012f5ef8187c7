"""Trie-constrained beam search over Semantic IDs, with one shared KV-cache prefill per user.

The decoder reads a left-padded batch of prefixes (prompt, optional pause tokens, optional rationale -- it does not
care what they contain) and returns, per user, the ``num_beams`` best *real, distinct* catalogue items.

Algorithm (``B`` users, ``W = num_beams``, ``L`` SID levels, ``C_d`` codes at level ``d``)::

    prefill(prefix)  -> KV cache (B rows), hidden state at the last position
    for d in 0..L-1:
        log p(code | beam)  over the C_d level tokens only           (R, C_d)   R = live beams
        mask codes the trie does not allow after the beam's prefix
        keep per user the top min(W, #allowed) (beam, code) pairs by cumulative log-prob
        if d < L-1:
            reorder the cache by beam origin (at d = 0 this is the B -> R expansion; the prompt is never rerun)
            one forward over [chosen level-d token] + forced_between_levels[d] for all live beams

Costs: one prefill per user, ``L-1`` incremental forwards (of ``1 + len(forced)`` tokens per beam), and an LM head
evaluated only at the last position of each forward (the decoder body ``model.base_model`` returns hidden states, the
head ``model.get_output_embeddings()`` is applied to the last one) -- over the full vocabulary (``"vocab"``) or, for
``"level"`` with a plain ``nn.Linear`` head, only over the ``C_d`` rows of the current level. A wrapped head (LoRA,
PEFT ``modules_to_save``) is called as a module so its adapters apply; PEFT models are unwrapped with
``get_base_model()`` (adapters stay active). A ``final_logit_softcapping`` in the config is applied.

Tie-breaking is deterministic: candidates of one user are laid out as ``(beam rank, code)`` in row-major order and
sorted with a *stable* descending sort, so among equal cumulative scores the lower beam rank, then the lower code,
wins. Final results are best first.

Users with fewer valid continuations than beams simply keep fewer beams (never ``-inf`` placeholders): every trie node
has at least one child, so a user ends with ``min(W, number of catalogue items)`` items.

Transformers 5 cache API used here (``transformers.cache_utils``):

* ``cache = DynamicCache(config=model.config)``; forward with
  ``base(input_ids=..., attention_mask=2-D mask over past+new tokens, position_ids=(R, n_new), cache=cache,
  use_cache=True)`` -- the keyword is ``cache`` (``past_key_values`` is a deprecated alias), and the output carries
  ``.cache`` (the same object, updated in place) and ``.last_hidden_state``.
* ``cache.reorder_cache(index)``: ``index_select`` along the batch dimension of every layer. The index may be longer
  than the batch (``[0, 0, 0, 1, 1, ...]``), which is how the prefilled rows are expanded to beams without re-running
  the prompt. (``cache.batch_repeat_interleave(k)`` / ``cache.batch_select_indices(idx)`` also exist.)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..sid.catalog import PrefixTrie

Normalization = Literal["vocab", "level"]

__all__ = [
    "BeamResult",
    "constrained_beam_search",
    "batched_beam_search",
    "common_prefix_length",
    "exhaustive_rank",
    "hf_beam_search",
    "trie_codes",
    "left_pad",
]


@dataclass
class BeamResult:
    """Per-user ranked items and the token counts the decoding cost.

    Attributes:
        items: per user, item indices best first; distinct, all real catalogue items.
        scores: per user, the cumulative log-probabilities (sum over the L levels) aligned with ``items``.
        prefill_tokens: non-pad prefix tokens run through the model (once per user).
        prefill_padded_tokens: prefix positions including padding (``B * T`` per call): the work actually done.
        decode_tokens: tokens fed after the prefill, summed over beams (``sum_d R_d * (1 + len(forced[d]))``).
        steps: incremental forward calls after the prefill (``L - 1`` per call; summed over batches).
    """

    items: list[list[int]] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)
    prefill_tokens: int = 0
    prefill_padded_tokens: int = 0
    decode_tokens: int = 0
    steps: int = 0

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
        }


# --------------------------------------------------------------------------------------------------------------
# helpers


def _unwrap(model: Any) -> Any:
    """The ``PreTrainedModel`` inside a PEFT wrapper (LoRA layers stay injected), else the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _check_causal_lm(model: Any) -> None:
    if model.base_model is model:
        raise TypeError(f"{type(model).__name__} has no separate base model; pass a *ForCausalLM model")
    if model.get_output_embeddings() is None:
        raise TypeError(f"{type(model).__name__} has no output embedding (LM head)")


def _as_level_ids(level_token_ids: Sequence[Any], device: torch.device) -> list[torch.Tensor]:
    return [torch.as_tensor(ids, dtype=torch.long, device=device).reshape(-1) for ids in level_token_ids]


def _check_forced(forced: Sequence[Sequence[int]] | None, n_levels: int) -> list[list[int]]:
    if forced is None:
        return [[] for _ in range(max(n_levels - 1, 0))]
    forced = [[int(t) for t in f] for f in forced]
    if len(forced) != n_levels - 1:
        raise ValueError(
            f"forced_between_levels needs {n_levels - 1} lists (one between each pair of levels), got {len(forced)}"
        )
    return forced


class _Scorer:
    """Log-probabilities of one level's code tokens from last-position hidden states."""

    def __init__(self, model: Any, level_ids: list[torch.Tensor], normalization: Normalization):
        if normalization not in ("vocab", "level"):
            raise ValueError(f"score_normalization must be 'vocab' or 'level', got {normalization!r}")
        _check_causal_lm(model)
        self.head = model.get_output_embeddings()
        self.softcap = getattr(model.config.get_text_config(decoder=True), "final_logit_softcapping", None)
        self.level_ids = level_ids
        self.normalization = normalization
        # only a plain Linear head may be sliced to the level's rows; a wrapped one (LoRA, PEFT modules_to_save...)
        # is called as a module so that its adapters apply
        self.sliced = normalization == "level" and type(self.head) is torch.nn.Linear
        if self.sliced:  # the C_d rows of the head, gathered once per call
            bias = self.head.bias
            self.level_w = [self.head.weight.index_select(0, ids) for ids in level_ids]
            self.level_b = [None if bias is None else bias.index_select(0, ids) for ids in level_ids]

    def _cap(self, logits: torch.Tensor) -> torch.Tensor:
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def __call__(self, hidden: torch.Tensor, level: int) -> torch.Tensor:
        """``hidden`` (R, H) -> log-probs (R, C_level), float32."""
        if self.sliced:
            logits = self._cap(F.linear(hidden, self.level_w[level], self.level_b[level]).float())
            return torch.log_softmax(logits, dim=-1)
        logits = self._cap(self.head(hidden).float())
        if self.normalization == "vocab":
            return torch.log_softmax(logits, dim=-1).index_select(1, self.level_ids[level])
        return torch.log_softmax(logits.index_select(1, self.level_ids[level]), dim=-1)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


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


def trie_codes(trie: PrefixTrie) -> np.ndarray:
    """Every SID stored in ``trie`` as codes ``(n_items, L)``, row ``i`` = item ``i``."""
    nodes = np.zeros(1, dtype=np.int64)
    prefixes = np.zeros((1, 0), dtype=np.int64)
    for d, table in enumerate(trie.tables):
        rows, codes = np.nonzero(table[nodes] >= 0)
        children = table[nodes[rows], codes].astype(np.int64)
        prefixes = np.concatenate([prefixes[rows], codes[:, None]], axis=1)
        nodes = children
    out = np.empty_like(prefixes)
    out[nodes] = prefixes  # at the last depth the "node" is the item index
    return out


# --------------------------------------------------------------------------------------------------------------
# the decoder


def _select(
    cum: torch.Tensor,
    allowed: torch.Tensor,
    user: torch.Tensor,
    rank: torch.Tensor,
    n_users: int,
    num_beams: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top ``min(W, #allowed)`` (beam, code) pairs per user.

    Args:
        cum: (R, C) cumulative scores (disallowed already ``-inf``); rows grouped by user, ranked within a user.
        allowed: (R, C) bool.
        user, rank: (R,) the row's user and its rank among that user's beams.
    Returns:
        origin row (R'), code (R'), new user (R'), new rank (R'), new score (R'), ordered by user then rank.
    """
    n_rows, n_codes = cum.shape
    width = num_beams * n_codes
    table = cum.new_full((n_users, num_beams, n_codes), -math.inf)
    table[user, rank] = cum
    ok = torch.zeros((n_users, num_beams, n_codes), dtype=torch.bool, device=cum.device)
    ok[user, rank] = allowed
    # stable descending sort: among equal scores the lower (beam rank, code) flat index comes first
    order = torch.sort(table.view(n_users, width), dim=1, descending=True, stable=True).indices[:, :num_beams]
    n_keep = ok.view(n_users, width).sum(1).clamp(max=num_beams)
    keep = torch.arange(order.shape[1], device=cum.device)[None, :] < n_keep[:, None]
    keep &= ok.view(n_users, width).gather(1, order)  # never a disallowed pair, whatever the scores
    new_user, new_rank = keep.nonzero(as_tuple=True)  # row-major: user, then rank
    flat = order[new_user, new_rank]
    slot, code = flat // n_codes, flat % n_codes
    row_of = torch.full((n_users, num_beams), -1, dtype=torch.long, device=cum.device)
    row_of[user, rank] = torch.arange(n_rows, device=cum.device)
    origin = row_of[new_user, slot]
    score = table.view(n_users, width)[new_user, flat]
    # ranks must be contiguous 0..k-1 per user; `keep` is a prefix per user so new_rank already is
    return origin, code, new_user, new_rank, score


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
) -> BeamResult:
    """Trie-constrained beam search from left-padded prefixes.

    Args:
        model: a Hugging Face causal LM (``*ForCausalLM``; a PEFT wrapper is unwrapped).
        input_ids, attention_mask: (B, T) LongTensor, LEFT-padded; each row's prefix ends where the SID starts.
        trie: the catalogue's :class:`~pauserec.sid.catalog.PrefixTrie` (L levels).
        level_token_ids: L id lists/tensors; ``level_token_ids[d][c]`` = vocabulary id of code ``c`` at level ``d``.
        num_beams: W, beams kept per user (= items returned, unless the catalogue has fewer).
        forced_between_levels: None, or L-1 lists of token ids teacher-forced (not scored) after level ``d`` is
            chosen and before level ``d+1`` is scored.
        score_normalization: ``"vocab"`` = log-softmax over the whole vocabulary, then the level's tokens (what HF
            ``generate`` scores); ``"level"`` = log-softmax over the level's ``C_d`` tokens only.
        shared_prefix: token ids that precede *every* row (e.g. the chat template's system turn). They are
            prefilled once for the whole batch and their KV cache is shared; each row is then
            ``shared_prefix + row`` with the padding between the two (masked, positions continue after the prefix),
            which is the same computation as left-padding the full sequences.
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
    forced = _check_forced(forced_between_levels, n_levels)
    model = _unwrap(model)
    device = model.get_input_embeddings().weight.device
    level_ids = _as_level_ids(level_token_ids, device)
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

    shared = torch.as_tensor(list(shared_prefix or []), dtype=torch.long, device=device)
    n_shared = shared.numel()
    result = BeamResult(
        prefill_tokens=int(attention_mask.sum()) + n_shared,
        prefill_padded_tokens=int(attention_mask.numel()) + n_shared,
    )
    from transformers import DynamicCache  # local: keeps `import pauserec.decode` light

    with torch.inference_mode(), _eval_mode(model):
        body = model.base_model
        scorer = _Scorer(model, level_ids, score_normalization)
        cache = DynamicCache(config=model.config)
        mask = attention_mask
        if n_shared:  # prefill the common prefix once, then give every row a copy of its cache
            positions = torch.arange(n_shared, device=device)[None, :]
            body(input_ids=shared[None, :], position_ids=positions, cache=cache, use_cache=True)
            cache.reorder_cache(torch.zeros(n_users, dtype=torch.long, device=device))
            mask = torch.cat([mask.new_ones((n_users, n_shared)), mask], dim=1)
        position_ids = (n_shared + attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        out = body(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, cache=cache, use_cache=True)
        hidden = out.last_hidden_state[:, -1]
        cache = out.cache
        last_pos = position_ids[:, -1]

        # one live beam per user: the empty SID prefix at the trie root
        user = torch.arange(n_users, device=device)
        rank = torch.zeros(n_users, dtype=torch.long, device=device)
        score = torch.zeros(n_users, dtype=torch.float32, device=device)
        node = np.zeros(n_users, dtype=np.int64)
        for d in range(n_levels):
            allowed_np = trie.allowed(d, node)
            allowed = torch.from_numpy(allowed_np).to(device)
            logp = scorer(hidden, d)
            cum = (score[:, None] + logp).masked_fill(~allowed, -math.inf)
            origin, code, user, rank, score = _select(cum, allowed, user, rank, n_users, num_beams)
            origin_np, code_np = origin.cpu().numpy(), code.cpu().numpy()
            node = trie.step(d, node[origin_np], code_np).astype(np.int64)
            if d == n_levels - 1:
                break
            # the cache follows its beams; at d = 0 this expands B prefilled rows to R beams (no prompt rerun)
            cache.reorder_cache(origin)
            mask = mask.index_select(0, origin)
            last_pos = last_pos.index_select(0, origin)
            n_rows = origin.numel()
            step_ids = level_ids[d][code][:, None]
            if forced_t[d].numel():
                step_ids = torch.cat([step_ids, forced_t[d][None, :].expand(n_rows, -1)], dim=1)
            n_new = step_ids.shape[1]
            mask = torch.cat([mask, mask.new_ones((n_rows, n_new))], dim=1)
            step_pos = last_pos[:, None] + torch.arange(1, n_new + 1, device=device)[None, :]
            out = body(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, cache=cache, use_cache=True)
            hidden, cache = out.last_hidden_state[:, -1], out.cache
            last_pos = step_pos[:, -1]
            result.decode_tokens += n_rows * n_new
            result.steps += 1

    assert (node >= 0).all(), "the trie produced an invalid item"  # guaranteed by the masks
    users = user.cpu().tolist()
    scores = score.cpu().tolist()
    result.items = [[] for _ in range(n_users)]
    result.scores = [[] for _ in range(n_users)]
    for u, item, s in zip(users, node.tolist(), scores, strict=True):
        result.items[u].append(int(item))
        result.scores[u].append(float(s))
    return result


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
) -> BeamResult:
    """Decode many users in length-grouped, left-padded batches; results come back in the input order.

    Prompts are sorted by length (longest first, stable) so a batch holds similar lengths and padding stays minimal.
    With ``share_prefix`` the tokens every prompt starts with (the chat template's system turn and instruction:
    about half of a short prompt) are prefilled once per batch instead of once per user.
    Counters are summed over batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(prompts)
    n_shared = common_prefix_length(prompts) if share_prefix else 0
    shared, prompts = (list(prompts[0][:n_shared]), [p[n_shared:] for p in prompts]) if n_shared else (None, prompts)
    order = sorted(range(n), key=lambda i: -len(prompts[i]))
    total = BeamResult(items=[[] for _ in range(n)], scores=[[] for _ in range(n)])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="user", desc="decode")
    try:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            ids, mask = left_pad([prompts[i] for i in idx], pad_token_id)
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
            )
            for j, i in enumerate(idx):
                total.items[i], total.scores[i] = res.items[j], res.scores[j]
            total.prefill_tokens += res.prefill_tokens
            total.prefill_padded_tokens += res.prefill_padded_tokens
            total.decode_tokens += res.decode_tokens
            total.steps += res.steps
            if bar is not None:
                bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
    return total


# --------------------------------------------------------------------------------------------------------------
# references


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
    forced = _check_forced(forced_between_levels, n_levels)
    model = _unwrap(model)
    device = model.get_input_embeddings().weight.device
    level_ids = _as_level_ids(level_token_ids, device)
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
    with torch.inference_mode(), _eval_mode(model):
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
                else:
                    raise ValueError(f"score_normalization must be 'vocab' or 'level', got {score_normalization!r}")
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

    model = _unwrap(model)
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
        with torch.inference_mode(), _eval_mode(model):
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
