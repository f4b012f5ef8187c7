"""Reasoning arms: the pluggable piece between the prompt and the SID.

To add an arm, subclass :class:`Arm` and register a builder in :data:`ARMS` (and its name in
``ArmConfig.name``); nothing else in the code branches on the arm.
"""

from collections.abc import Callable

from ..config import ArmConfig
from .base import IGNORE, Arm
from .cot import CoTArm
from .direct import DirectArm
from .pause import PauseArm, pause_token_names

ARMS: dict[str, Callable[[ArmConfig], Arm]] = {
    "direct": lambda cfg: DirectArm(),
    "pause": lambda cfg: PauseArm(
        cfg.pause_tokens,
        k_inference=cfg.inference_pause_tokens,
        distinct=cfg.distinct_pauses,
        placement=cfg.pause_placement,
    ),
    "cot": lambda cfg: CoTArm(
        cfg.rationales,
        cfg.max_rationale_tokens,
        samples=cfg.rationale_samples,
        temperature=cfg.rationale_temperature,
    ),
}


def make_arm(cfg: ArmConfig) -> Arm:
    """The arm a config names."""
    return ARMS[cfg.name](cfg)


__all__ = ["ARMS", "IGNORE", "Arm", "CoTArm", "DirectArm", "PauseArm", "make_arm", "pause_token_names"]
