"""``direct``: prompt -> SID, nothing in between."""

from __future__ import annotations

from ..config import DirectArmConfig
from .base import Arm


class DirectArm(Arm):
    name = "direct"

    @classmethod
    def from_config(cls, cfg: DirectArmConfig, *, seed: int) -> DirectArm:
        return cls()

    def lead(self, training: bool) -> list[int]:
        return []
