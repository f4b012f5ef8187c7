"""The reasoning arm: what sits between the prompt and the SID. It is the only thing that differs
between ``direct``, ``pause`` (PauseRec) and ``cot`` (explicit chain of thought).

An arm is bound to a tokenizer once (:meth:`Arm.bind`) and then builds, from token ids,

* its **training sequence**: ``prompt + segment + sid_0 + between_0 + sid_1 + ... + sid_{L-1}``, where the
  *segment* is the arm's per-example text with its own labels (:meth:`Arm.training_segment`: pauses carry no
  loss, a rationale does) and the SID tokens are always labelled;
* its **inference prefix** ``prompt + lead`` plus the tokens forced between SID levels, which the
  constrained decoder feeds without scoring them; and
* optionally a **think phase** (:meth:`Arm.thinking`): text the decoder generates after the prefix and before the
  SID search, continuing in the same KV cache. It never sees the target: it is generated from the prompt alone.

Nothing outside ``arms/`` branches on the arm's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..data.split import Example
    from ..decode import ThinkSpec

IGNORE = -100  # label of positions that carry no loss (the convention of torch's cross-entropy)


class Arm(ABC):
    """Base class of the arms. Subclasses declare their extra vocabulary and their lead/between tokens."""

    name: str = "arm"

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def new_tokens(self) -> list[str]:
        """Tokens this arm adds to the vocabulary (beside the SID tokens)."""
        return []

    def bind(self, tokenizer) -> Arm:
        """Resolve :meth:`new_tokens` to ids with the (already extended) tokenizer."""
        vocab = tokenizer.get_vocab()
        missing = [t for t in self.new_tokens() if t not in vocab]
        if missing:
            from ..errors import ArtifactMismatchError

            raise ArtifactMismatchError(f"the tokenizer lacks the {self.name} arm's tokens {missing[:4]}")
        self._ids = {t: vocab[t] for t in self.new_tokens()}
        return self

    def token_id(self, token: str) -> int:
        return self._ids[token]

    @abstractmethod
    def lead(self, training: bool) -> list[int]:
        """Token ids between the prompt and the first SID token."""

    def between(self, n_levels: int, training: bool) -> list[list[int]]:
        """Token ids fed after SID level d and before level d+1 (``n_levels - 1`` lists)."""
        return [[] for _ in range(n_levels - 1)]

    def training_segment(self, example: Example | None) -> tuple[list[int], list[int]]:
        """``(ids, labels)`` between the prompt and the first SID token of one training example.

        Default: the static :meth:`lead`, without loss. An arm with per-example text (a rationale) overrides this.
        """
        lead = self.lead(training=True)
        return lead, [IGNORE] * len(lead)

    def training_report(self) -> dict[str, int]:
        """Facts about the training sequences built so far, recorded in ``train_cost.json`` (e.g. rationale coverage)."""
        return {}

    def thinking(self) -> ThinkSpec | None:
        """What the decoder generates after the inference prefix and before the SID (None = nothing)."""
        return None

    def training_sequence(
        self, prompt: Sequence[int], sid: Sequence[int], example: Example | None = None
    ) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` of equal length: the prompt without loss, the arm's segment with its own labels,
        the SID tokens labelled, forced between-level tokens without loss."""
        segment, segment_labels = self.training_segment(example)
        ids = [*prompt, *segment]
        labels = [IGNORE] * len(prompt) + list(segment_labels)
        between = self.between(len(sid), training=True)
        for d, token in enumerate(sid):
            ids.append(token)
            labels.append(token)
            if d < len(sid) - 1:
                ids.extend(between[d])
                labels.extend([IGNORE] * len(between[d]))
        return ids, labels

    def inference_prefix(self, prompt: Sequence[int]) -> list[int]:
        return [*prompt, *self.lead(training=False)]

    def forced_between_levels(self, n_levels: int) -> list[list[int]] | None:
        between = self.between(n_levels, training=False)
        return between if any(between) else None
