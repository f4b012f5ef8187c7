"""LLM inference, used by training's validation, grounding, the evaluation's ranker and serving: recommend with a
trained LLM: arm prefix per user, the arm's think phase if it has one (a generated rationale),
then the trie-constrained beam search."""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch

from .arms.base import Arm
from .config import DecodeConfig
from .data.split import Example
from .errors import DivergedError
from .decode import batched_beam_search
from .prompt import PromptBuilder
from .sid.catalog import SIDCatalog


@dataclass
class Recommendations:
    """Ranked items per example (best first, distinct real items) and what producing them cost."""

    items: list[list[int]]
    scores: list[list[float]]
    seconds: float
    prefill_tokens: int
    decode_tokens: int
    think_tokens: int = 0
    rationales: list[str] | None = None  # per example, the generated rationale (arms with a think phase)


def recommend(
    model,
    prompts: PromptBuilder,
    arm: Arm,
    catalog: SIDCatalog,
    level_token_ids: list[torch.Tensor],
    examples: Sequence[Example],
    cfg: DecodeConfig,
    pad_token_id: int,
    progress: bool = False,
    exclude: Sequence[Collection[int]] | None = None,
) -> Recommendations:
    """Top-``cfg.num_beams`` items for every example, decoded under the catalogue's prefix trie.

    Only ``ex.history`` is read: the target never reaches the prompt, nor the rationale generated from it.
    ``exclude``: per example, items never recommended (:func:`pauserec.eval.exclusion.exclusions`).
    """
    prompt_ids = [prompts.ids(ex.history) for ex in examples]
    return recommend_from_prompts(
        model, prompt_ids, arm, catalog, level_token_ids, cfg, pad_token_id, prompts.tokenizer, progress, exclude
    )


def recommend_from_prompts(
    model,
    prompt_ids: Sequence[Sequence[int]],
    arm: Arm,
    catalog: SIDCatalog,
    level_token_ids: list[torch.Tensor],
    cfg: DecodeConfig,
    pad_token_id: int,
    tokenizer,
    progress: bool = False,
    exclude: Sequence[Collection[int]] | None = None,
) -> Recommendations:
    """:func:`recommend` from prompt token ids already built (any prompt: e.g. SID grounding's item probes)."""
    t0 = time.perf_counter()
    prefixes = [arm.inference_prefix(p) for p in prompt_ids]
    think = arm.thinking()
    result = batched_beam_search(
        model,
        prefixes,
        catalog.trie,
        level_token_ids,
        num_beams=cfg.num_beams,
        batch_size=cfg.batch_size,
        pad_token_id=pad_token_id,
        forced_between_levels=arm.forced_between_levels(catalog.n_levels),
        score_normalization=cfg.score_normalization,
        progress=progress,
        think=think,
        exclude=exclude,
    )
    if any(math.isnan(v) for row in result.scores for v in row):
        raise DivergedError("the model's SID scores are NaN: its weights are broken (a diverged training run?)")
    return Recommendations(
        items=result.items,
        scores=result.scores,
        seconds=time.perf_counter() - t0,
        prefill_tokens=result.prefill_tokens,
        decode_tokens=result.decode_tokens,
        think_tokens=result.think_tokens,
        rationales=[tokenizer.decode(lead, skip_special_tokens=True) for lead in result.leads] if think else None,
    )
