"""Trie-constrained beam search over Semantic IDs, with one shared KV-cache prefill per user.

The decoder reads a left-padded batch of prefixes (prompt, optional pause tokens, optional rationale -- it does not
care what they contain) and returns, per user, the ``num_beams`` best *real, distinct* catalogue items.

Algorithm (``B`` users, ``W = num_beams``, ``L`` SID levels, ``C_d`` codes at level ``d``)::

    prefill(prefix)  -> KV cache (B rows), hidden state at the last position
    [think: generate free text (a rationale) token by token into the same cache until the end token]
    for d in 0..L-1:
        log p(code | beam)  over the C_d level tokens only           (R, C_d)   R = live beams
        mask codes the trie does not allow after the beam's prefix
        keep per user the top min(W, #allowed) (beam, code) pairs by cumulative log-prob
        if d < L-1:
            reorder the cache by beam origin (at d = 0 this is the B -> R expansion; the prompt is never rerun)
            one forward over [chosen level-d token] + forced_between_levels[d] for all live beams

The optional *think* phase (:class:`ThinkSpec`, used by the explicit chain-of-thought arm) is greedy or sampled
generation over the full vocabulary (SID tokens suppressed) until the arm's end token; finished rows are fed a masked
filler until every row is done, so the SID search then continues from the very KV cache the rationale left (the
prompt and the rationale are never prefilled again). With ``samples = N > 1`` every user is decoded N times with
sampled rationales and the candidates are pooled by their best score (:func:`batched_beam_search`).

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
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..model.head import apply_softcap, logit_softcap
from ..sid.catalog import PrefixTrie

Normalization = Literal["vocab", "level", "trie"]

__all__ = [
    "BeamResult",
    "ThinkSpec",
    "constrained_beam_search",
    "batched_beam_search",
    "common_prefix_length",
    "trie_codes",
    "left_pad",
]


@dataclass(frozen=True)
class ThinkSpec:
    """Free text generated after the prefix and before the SID (an explicit rationale).

    Attributes:
        end_token_id: the token that closes the text (e.g. ``</think>``); it is fed, and the SID search starts from
            the hidden state after it. A row that reaches ``max_new_tokens`` is closed with it.
        max_new_tokens: at most this many generated tokens per row, the end token included (>= 1).
        temperature: 0 = greedy (argmax); > 0 = sampling from ``softmax(logits / temperature)``.
        samples: rationales per user (N); > 1 needs ``temperature > 0``; candidates are pooled by best score.
        suppress_token_ids: never generated while thinking (beside the SID codes, which are always suppressed).
        seed: seeds the sampling generator (results are reproducible for a given batch layout).
    """

    end_token_id: int
    max_new_tokens: int
    temperature: float = 0.0
    samples: int = 1
    suppress_token_ids: tuple[int, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"a rationale needs max_new_tokens >= 1 (the end token), got {self.max_new_tokens}")
        if self.samples < 1 or (self.samples > 1 and self.temperature <= 0):
            raise ValueError(f"samples={self.samples} needs samples >= 1, and temperature > 0 when samples > 1")


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
        if normalization not in ("vocab", "level", "trie"):
            raise ValueError(f"score_normalization must be 'vocab', 'level' or 'trie', got {normalization!r}")
        _check_causal_lm(model)
        self.head = model.get_output_embeddings()
        self.softcap = logit_softcap(model)
        self.level_ids = level_ids
        self.normalization = normalization
        # only a plain Linear head may be sliced to the level's rows; a wrapped one (LoRA, PEFT modules_to_save...)
        # is called as a module so that its adapters apply
        self.sliced = normalization != "vocab" and type(self.head) is torch.nn.Linear
        if self.sliced:  # the C_d rows of the head, gathered once per call
            bias = self.head.bias
            self.level_w = [self.head.weight.index_select(0, ids) for ids in level_ids]
            self.level_b = [None if bias is None else bias.index_select(0, ids) for ids in level_ids]

    def _cap(self, logits: torch.Tensor) -> torch.Tensor:
        return apply_softcap(logits, self.softcap)

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` (R, H) -> logits over the whole vocabulary (R, V), float32 (for free-text generation)."""
        return self._cap(self.head(hidden).float())

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


def _without_forbidden(
    allowed: np.ndarray, depth: int, nodes: np.ndarray, user: torch.Tensor, forbidden: list[dict] | None
) -> np.ndarray:
    """``allowed`` (R, C_depth) bool, the trie's codes after each row's node, minus its user's forbidden codes."""
    if forbidden is not None:
        allowed = allowed.copy()
        for r, (u, n) in enumerate(zip(user.tolist(), nodes.tolist())):
            codes = forbidden[u].get((depth, n))
            if codes:
                allowed[r, list(codes)] = False
    return allowed


@dataclass
class _State:
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


def _prefill(body: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, shared: torch.Tensor, config: Any) -> _State:
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
    return _State(out.cache, mask, out.last_hidden_state[:, -1], position_ids[:, -1])


def _think(body: Any, scorer: _Scorer, state: _State, spec: ThinkSpec) -> tuple[list[list[int]], int]:
    """Generate each row's free text into ``state`` until ``spec.end_token_id``; returns the generated ids per row
    (end token included) and the number of tokens fed (fillers of finished rows excluded)."""
    n_rows, device = state.hidden.shape[0], state.hidden.device
    live = torch.ones(n_rows, dtype=torch.bool, device=device)
    end = torch.full((n_rows,), spec.end_token_id, dtype=torch.long, device=device)
    # a rationale is language: never an SID code, nor what the spec suppresses
    suppress = torch.cat([torch.as_tensor(spec.suppress_token_ids, dtype=torch.long, device=device), *scorer.level_ids])
    generator = torch.Generator(device=device).manual_seed(spec.seed) if spec.temperature > 0 else None
    steps: list[torch.Tensor] = []
    fed = 0
    for t in range(spec.max_new_tokens):
        logits = scorer.vocab_logits(state.hidden)
        if suppress.numel():
            logits.index_fill_(1, suppress, -math.inf)
        if generator is None:
            token = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(logits / spec.temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        if t == spec.max_new_tokens - 1:
            token = end  # out of budget: close the rationale
        token = torch.where(live, token, end)  # finished rows get a (masked) filler
        steps.append(torch.where(live, token, -1))
        state.feed(body, token[:, None], live)
        fed += int(live.sum())
        live &= token != spec.end_token_id
        if not bool(live.any()):
            break
    generated = torch.stack(steps, dim=1).cpu().tolist()
    return [[tok for tok in row if tok >= 0] for row in generated], fed


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
    if exclude is not None and len(exclude) != n_users:
        raise ValueError(f"exclude has {len(exclude)} rows for {n_users} prompts")
    forbidden = None if exclude is None else [trie.excluded_codes(items) for items in exclude]

    shared = torch.as_tensor(list(shared_prefix or []), dtype=torch.long, device=device)
    result = BeamResult(
        prefill_tokens=int(attention_mask.sum()) + shared.numel(),
        prefill_padded_tokens=int(attention_mask.numel()) + shared.numel(),
        leads=[[] for _ in range(n_users)],
    )
    with torch.inference_mode(), _eval_mode(model):
        body = model.base_model
        scorer = _Scorer(model, level_ids, score_normalization)
        state = _prefill(body, input_ids, attention_mask, shared, model.config)
        if think is not None:
            result.leads, result.think_tokens = _think(body, scorer, state, think)

        # one live beam per user: the empty SID prefix at the trie root
        user = torch.arange(n_users, device=device)
        rank = torch.zeros(n_users, dtype=torch.long, device=device)
        score = torch.zeros(n_users, dtype=torch.float32, device=device)
        node = np.zeros(n_users, dtype=np.int64)
        for d in range(n_levels):
            in_trie = trie.allowed(d, node)
            logp = scorer(state.hidden, d)
            if score_normalization == "trie":  # renormalise over the codes the catalogue has after this prefix
                logp = torch.log_softmax(logp.masked_fill(~torch.from_numpy(in_trie).to(device), -math.inf), dim=-1)
            # excluded items are masked after normalising: the survivors keep their scores, only their rank moves up
            allowed = torch.from_numpy(_without_forbidden(in_trie, d, node, user, forbidden)).to(device)
            cum = (score[:, None] + logp).masked_fill(~allowed, -math.inf)
            origin, code, user, rank, score = _select(cum, allowed, user, rank, n_users, num_beams)
            node = trie.step(d, node[origin.cpu().numpy()], code.cpu().numpy()).astype(np.int64)
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

    assert (node >= 0).all(), "the trie produced an invalid item"  # guaranteed by the masks
    result.items = [[] for _ in range(n_users)]
    result.scores = [[] for _ in range(n_users)]
    for u, item, s in zip(user.cpu().tolist(), node.tolist(), score.cpu().tolist(), strict=True):
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
    return _pool_samples(total, n_samples, num_beams) if n_samples > 1 else total


def _pool_samples(rows: BeamResult, n_samples: int, num_beams: int) -> BeamResult:
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
