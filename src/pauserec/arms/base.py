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

Nothing outside ``arms/`` branches on the arm's name: what a caller needs to know about an arm (the pause counts
a service may vary, the upstream stages a run trains on, the setting a grid sweeps) it asks the arm's class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..config import ArmConfig
    from ..data.split import Example
    from ..decode import ThinkSpec

IGNORE = -100  # label of positions that carry no loss (the convention of torch's cross-entropy)


@dataclass(frozen=True)
class ServedPauses:
    """The pause counts a service may decode a run with: ``0..maximum``, ``default`` when a request names none."""

    default: int
    maximum: int


class Arm(ABC):
    """Base class of the arms. Subclasses declare their extra vocabulary and their lead/between tokens.

    What callers ask about an arm without building one (the service, the grid, the pipeline cost) are the class
    methods and attributes below; each arm class is registered in :data:`pauserec.arms.ARMS` by its :attr:`name`.
    """

    name: ClassVar[str] = "arm"
    #: The ``arm.*`` setting a grid's ``k:`` list sweeps (one model per value), or None: the arm takes no ``k:``.
    sweep_key: ClassVar[str | None] = None
    #: The ``arm.*`` settings that change decoding only (a grid's eval-only variant of a trained model may set them).
    inference_keys: ClassVar[tuple[str, ...]] = ()
    #: The ``arm.*`` setting an eval-only variant's ``k:`` list sweeps (one of :attr:`inference_keys`), or None.
    inference_sweep_key: ClassVar[str | None] = None
    #: Upstream stage name -> the ``arm.*`` setting naming its artifact (e.g. cot: ``{"rationales": "rationales"}``):
    #: what :meth:`upstream_stages` reads and what a grid's ``uses:`` sets.
    upstream_keys: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: ArmConfig, *, seed: int) -> Arm:
        """The arm an ``arm`` config section describes; ``seed`` is the run's (for anything the arm samples)."""

    @classmethod
    def upstream_stages(cls, cfg: ArmConfig) -> dict[str, str]:
        """Artifacts of earlier stages a run of this arm trains on, by stage name (e.g. ``{"rationales": DIR}``),
        beside the backbone; recorded in the run's lineage (:mod:`pauserec.artifacts.lineage`). Those of
        :attr:`upstream_keys` that are set."""
        return {stage: getattr(cfg, key) for stage, key in cls.upstream_keys.items() if getattr(cfg, key, None)}

    @classmethod
    def served_pauses(cls, cfg: ArmConfig, cap: int) -> ServedPauses | None:
        """The pause counts a service may vary per request (``cap``: the service's bound where the arm sets
        none), or None: the arm has no pauses, a request must ask for 0."""
        return None

    @classmethod
    def with_pauses(cls, cfg: ArmConfig, pauses: int) -> ArmConfig:
        """``cfg`` decoding with ``pauses`` pause tokens (only for an arm whose :meth:`served_pauses` is not None)."""
        raise ValueError(f"the {cls.name} arm has no pause tokens")

    @classmethod
    def sweep(cls, value: Any, inference: bool = False) -> list[str]:
        """The dotted overrides that set :attr:`sweep_key` (``inference``: :attr:`inference_sweep_key`) to ``value``."""
        key = cls.inference_sweep_key if inference else cls.sweep_key
        if key is None:
            raise ValueError(f"the {cls.name} arm has no {'inference ' if inference else ''}sweep key")
        return [f"arm.{key}={value}"]

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
