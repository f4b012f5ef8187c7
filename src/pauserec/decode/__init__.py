"""Decoding: trie-constrained beam search over Semantic IDs with a shared KV-cache prefill (see :mod:`.beam`),
optionally after a generated rationale (:class:`ThinkSpec`). Reference decoders for tests live in :mod:`.reference`."""

from .beam import (
    BeamResult,
    ThinkSpec,
    batched_beam_search,
    common_prefix_length,
    constrained_beam_search,
    left_pad,
    trie_codes,
)

__all__ = [
    "BeamResult",
    "ThinkSpec",
    "batched_beam_search",
    "common_prefix_length",
    "constrained_beam_search",
    "left_pad",
    "trie_codes",
]
