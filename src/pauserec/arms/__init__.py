"""Reasoning arms: the pluggable piece between the prompt and the SID.

To add an arm, subclass :class:`Arm`, register the class in :data:`ARMS` and its config section in
``pauserec.config.ARM_CONFIGS`` (under the same name); nothing else in the code branches on the arm. Callers ask
the arm's class (:func:`get_arm`) what they need to know: the pause counts a service may vary
(:meth:`Arm.served_pauses`), the upstream stages a run trains on (:meth:`Arm.upstream_stages`), the setting a
grid sweeps (:attr:`Arm.sweep_key`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import IGNORE, Arm, ServedPauses
from .cot import CoTArm
from .direct import DirectArm
from .pause import PauseArm, pause_token_names

if TYPE_CHECKING:
    from ..config import RunConfig

ARMS: dict[str, type[Arm]] = {arm.name: arm for arm in (DirectArm, PauseArm, CoTArm)}


def get_arm(name: str) -> type[Arm]:
    """The arm class registered under ``name``."""
    if name not in ARMS:
        raise ConfigError(f"unknown arm {name!r} (arms: {', '.join(ARMS)})")
    return ARMS[name]


def make_arm(cfg: RunConfig) -> Arm:
    """The arm a run config names (its ``arm`` section; the run's ``seed`` for anything the arm samples)."""
    return get_arm(cfg.arm.name).from_config(cfg.arm, seed=cfg.seed)


__all__ = ["ARMS", "IGNORE", "Arm", "CoTArm", "DirectArm", "PauseArm", "ServedPauses", "get_arm", "make_arm",
           "pause_token_names"]
