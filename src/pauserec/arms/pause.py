"""``pause`` (PauseRec): K learnable pause tokens between the prompt and the SID.

Pauses carry no loss; their embeddings train through the SID loss. At inference they cost K extra
prefill positions and no decoding step (or, with ``per_level`` placement, K forced positions per level).
"""

from __future__ import annotations

from typing import Literal

from ..config import PauseArmConfig
from ..errors import ConfigError
from .base import Arm, ServedPauses


def pause_token_names(k: int, distinct: bool) -> list[str]:
    """The pause vocabulary: one shared ``<pause>``, or ``<pause_0>`` ... ``<pause_{k-1}>``."""
    if k < 0:
        raise ConfigError(f"the number of pause tokens must be >= 0, got {k}")
    if not distinct:
        return ["<pause>"]
    return [f"<pause_{i}>" for i in range(k)]


class PauseArm(Arm):
    name = "pause"
    sweep_key = "pause_tokens"
    inference_keys = ("inference_pause_tokens",)
    inference_sweep_key = "inference_pause_tokens"

    def __init__(
        self,
        k: int,
        *,
        k_inference: int | None = None,
        distinct: bool = False,
        placement: Literal["before_sid", "per_level"] = "before_sid",
    ):
        super().__init__()
        k_inference = k if k_inference is None else k_inference
        if k < 0 or k_inference < 0:
            raise ConfigError(f"pause counts must be >= 0 (training K={k}, inference K={k_inference})")
        if distinct and k_inference > k:
            raise ConfigError(f"with distinct pauses, inference K ({k_inference}) cannot exceed training K ({k})")
        self.k, self.k_inference, self.distinct, self.placement = k, k_inference, distinct, placement

    @classmethod
    def from_config(cls, cfg: PauseArmConfig, *, seed: int) -> PauseArm:
        return cls(cfg.pause_tokens, k_inference=cfg.inference_pause_tokens, distinct=cfg.distinct_pauses,
                   placement=cfg.pause_placement)

    @classmethod
    def served_pauses(cls, cfg: PauseArmConfig, cap: int) -> ServedPauses:
        """Any count up to the K distinct tokens trained, or up to ``cap`` repeats of a shared ``<pause>``."""
        default = cfg.pause_tokens if cfg.inference_pause_tokens is None else cfg.inference_pause_tokens
        return ServedPauses(default=default, maximum=cfg.pause_tokens if cfg.distinct_pauses else cap)

    @classmethod
    def with_pauses(cls, cfg: PauseArmConfig, pauses: int) -> PauseArmConfig:
        return cfg.model_copy(update={"inference_pause_tokens": pauses})

    def new_tokens(self) -> list[str]:
        return pause_token_names(self.k, self.distinct) if self.k or self.k_inference else []

    def _pauses(self, training: bool) -> list[int]:
        k = self.k if training else self.k_inference
        names = pause_token_names(k, self.distinct) if self.distinct else ["<pause>"] * k
        return [self.token_id(t) for t in names]

    def lead(self, training: bool) -> list[int]:
        return self._pauses(training)

    def between(self, n_levels: int, training: bool) -> list[list[int]]:
        if self.placement == "per_level":
            return [self._pauses(training) for _ in range(n_levels - 1)]
        return super().between(n_levels, training)
