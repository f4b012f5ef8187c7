"""The think phase: free text (an explicit rationale) generated after the prefix and before the SID search.

Greedy or sampled generation over the full vocabulary (SID tokens suppressed) until the arm's end token; finished
rows are fed a masked filler until every row is done, so the SID search then continues from the very KV cache the
rationale left (the prompt and the rationale are never prefilled again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .scoring import Scorer
from .state import DecodeState


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
