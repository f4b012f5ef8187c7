"""The think phase: free text (an explicit rationale) generated after the prefix and before the SID search.

Greedy or sampled generation over the full vocabulary (SID tokens suppressed) until the arm's end token; finished
rows are fed a masked filler until every row is done, so the SID search then continues from the very KV cache the
rationale left (the prompt and the rationale are never prefilled again).

Except where fillers would change what a row sees: a sliding-window layer keeps and masks cache *slots*, not
positions, so a row that ended its rationale early and then took fillers would see fewer of its own real tokens in
the window than a fresh prefill of its prompt + rationale. Where the model has such a layer, rows ended at different
steps and the whole sequence (cache slots plus the SID search's tokens) exceeds the window, :func:`refill` prefills
prompt + rationale again (one prefill of the batch; exact by construction). A model without a sliding window
(Llama, Qwen, ...) never pays it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .scoring import Scorer
from .state import DecodeState, left_pad, prefill, sliding_window


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


def think_phase(body: Any, scorer: Scorer, state: DecodeState, spec: ThinkSpec) -> tuple[list[list[int]], int]:
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


def refill(body: Any, state: DecodeState, input_ids: torch.Tensor, attention_mask: torch.Tensor, shared: torch.Tensor,
           leads: list[list[int]], config: Any, search_tokens: int) -> tuple[DecodeState, torch.Tensor] | None:
    """After the think phase: a fresh prefill of each row's prefix (``input_ids`` (B, T) left-padded, after
    ``shared``) + its rationale ``leads[row]`` where fillers would fall inside a sliding window (see the module
    docstring; ``search_tokens``: the slots the SID search will still add per beam), else None. Returns the new
    state and its attention mask (B, T'), whose sum and size are the tokens the refill computed."""
    window = sliding_window(state.cache)
    if window is None or len({len(lead) for lead in leads}) < 2 or state.mask.shape[1] + search_tokens <= window:
        return None
    rows = [ids[mask.bool()].tolist() + lead for ids, mask, lead in zip(input_ids, attention_mask, leads, strict=True)]
    ids, mask = left_pad(rows, pad_token_id=0)  # the pad id is never attended to
    ids, mask = ids.to(input_ids.device), mask.to(input_ids.device)
    return prefill(body, ids, mask, shared, config), mask
