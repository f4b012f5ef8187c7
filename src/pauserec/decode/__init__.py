"""Decoding: trie-constrained beam search over Semantic IDs with a shared KV-cache prefill, optionally after a
generated rationale (:class:`ThinkSpec`), one concept per module:

* :mod:`.state`: the KV cache, mask and hidden state of the live rows, the left-padded layout and the prefill;
* :mod:`.scoring`: one SID level's log-probabilities from the LM head;
* :mod:`.think`: the think phase (a generated rationale before the SID);
* :mod:`.step`: the constrained step (the trie's allowed codes, the top beams per user);
* :mod:`.search`: :func:`constrained_beam_search`, one left-padded batch through all of the above;
* :mod:`.batching`: :func:`batched_beam_search`, many users in length-grouped batches, samples pooled.

Reference decoders for tests live in :mod:`.reference`. :func:`trie_codes` belongs to the catalogue
(:mod:`pauserec.sid.catalog`) and is re-exported here.
"""

from ..sid.catalog import trie_codes
from .batching import batched_beam_search, common_prefix_length
from .search import BeamResult, constrained_beam_search
from .state import left_pad
from .think import ThinkSpec

__all__ = [
    "BeamResult",
    "ThinkSpec",
    "batched_beam_search",
    "common_prefix_length",
    "constrained_beam_search",
    "left_pad",
    "trie_codes",
]
