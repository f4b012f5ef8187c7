"""``direct``: prompt -> SID, nothing in between."""

from __future__ import annotations

from .base import Arm


class DirectArm(Arm):
    name = "direct"

    def lead(self, training: bool) -> list[int]:
        return []
