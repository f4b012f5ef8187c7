"""Reasoning arms: the pluggable piece between the prompt and the SID."""

from ..config import ArmConfig
from .base import IGNORE, Arm
from .direct import DirectArm
from .pause import PauseArm, pause_token_names


def make_arm(cfg: ArmConfig) -> Arm:
    """The arm a config names (register new arms here)."""
    if cfg.name == "direct":
        return DirectArm()
    return PauseArm(
        cfg.pause_tokens,
        k_inference=cfg.inference_pause_tokens,
        distinct=cfg.distinct_pauses,
        placement=cfg.pause_placement,
    )


__all__ = ["IGNORE", "Arm", "DirectArm", "PauseArm", "make_arm", "pause_token_names"]
