"""Decoding: trie-constrained beam search over Semantic IDs with a shared KV-cache prefill (see :mod:`.beam`)."""

from .beam import (
    BeamResult,
    batched_beam_search,
    common_prefix_length,
    constrained_beam_search,
    exhaustive_rank,
    hf_beam_search,
    left_pad,
    trie_codes,
)

__all__ = [
    "BeamResult",
    "batched_beam_search",
    "common_prefix_length",
    "constrained_beam_search",
    "exhaustive_rank",
    "hf_beam_search",
    "left_pad",
    "trie_codes",
]
