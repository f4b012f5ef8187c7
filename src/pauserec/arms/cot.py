"""``cot``: explicit chain of thought. The model writes a rationale, then the SID.

Training sequence: ``prompt + <think> rationale </think> + SID`` with loss on the rationale, on ``</think>`` and
on the SID (reasoning SFT). The rationale of each training example comes from an acquisition directory made by
``pauserec rationales`` (template or teacher LM; it may have seen the target, as these pipelines do). At inference
the decoder generates the rationale itself from the prompt alone (:meth:`CoTArm.thinking`), then runs the
trie-constrained SID search from the KV cache the rationale left.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..config import CotArmConfig
from ..decode import ThinkSpec
from ..errors import ConfigError
from .base import IGNORE, Arm

OPEN, CLOSE = "<think>", "</think>"


class CoTArm(Arm):
    """Args:
        rationales: the acquisition directory (``rationales.jsonl``) or a ``{example key: text}`` mapping;
            only read when training.
        max_tokens: rationale budget in tokens, ``</think>`` included, in training (longer ones are cut) and at
            inference (generation stops there).
        samples, temperature, seed: inference rationales per user (N > 1 pools candidates by best score) and
            their sampling (``temperature`` 0 = greedy; ``seed``: the run's, see :meth:`from_config`).
    """

    name = "cot"
    #: The rationale acquisition directory the run trains on (none set: a run that cannot train).
    upstream_keys = {"rationales": "rationales"}
    inference_keys = ("rationale_samples", "rationale_temperature")

    def __init__(
        self,
        rationales: str | Path | Mapping[str, str] | None,
        max_tokens: int,
        *,
        samples: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ):
        super().__init__()
        if max_tokens < 2:
            raise ConfigError(f"arm.max_rationale_tokens must be >= 2 (text and </think>), got {max_tokens}")
        self.spec_args = dict(max_new_tokens=max_tokens, temperature=temperature, samples=samples, seed=seed)
        ThinkSpec(end_token_id=0, **self.spec_args)  # validates samples/temperature now, not at inference
        self.max_tokens = max_tokens
        self._source = rationales
        self._texts: Mapping[str, str] | None = rationales if isinstance(rationales, Mapping) else None
        self._tokenizer = None
        self.with_rationale = self.without_rationale = 0

    @classmethod
    def from_config(cls, cfg: CotArmConfig, *, seed: int) -> CoTArm:
        """Sampled rationales (``rationale_temperature > 0``) are drawn with the run's ``seed``."""
        return cls(cfg.rationales, cfg.max_rationale_tokens, samples=cfg.rationale_samples,
                   temperature=cfg.rationale_temperature, seed=seed)

    def new_tokens(self) -> list[str]:
        return [OPEN, CLOSE]

    def bind(self, tokenizer) -> CoTArm:
        super().bind(tokenizer)
        self._tokenizer = tokenizer
        return self

    def lead(self, training: bool) -> list[int]:
        return [self.token_id(OPEN)]

    def _rationales(self) -> Mapping[str, str]:
        if self._texts is None:
            if self._source is None:
                raise ConfigError(
                    "the cot arm trains on rationales: set arm.rationales to a directory made by `pauserec rationales`"
                )
            from ..rationale.store import load_rationales

            self._texts = load_rationales(self._source)
        return self._texts

    def training_segment(self, example) -> tuple[list[int], list[int]]:
        """``<think> rationale </think>``: loss on the rationale tokens and on ``</think>``, not on ``<think>``.
        An example without a usable rationale (filtered, or not acquired) gets an empty one, counted."""
        if example is None:
            raise ValueError("the cot arm's training segment needs the example (its rationale)")
        text = self._rationales().get(example.key, "")
        body = self._tokenizer(text, add_special_tokens=False)["input_ids"][: self.max_tokens - 1] if text else []
        if body:
            self.with_rationale += 1
        else:
            self.without_rationale += 1
        close = self.token_id(CLOSE)
        return [self.token_id(OPEN), *body, close], [IGNORE, *body, close]

    def thinking(self) -> ThinkSpec:
        return ThinkSpec(
            end_token_id=self.token_id(CLOSE), suppress_token_ids=(self.token_id(OPEN),), **self.spec_args
        )

    def training_report(self) -> dict[str, int]:
        """Training examples built with and without a rationale so far."""
        return {"with_rationale": self.with_rationale, "without_rationale": self.without_rationale}
