"""The upstream stages a grid can run before its models: what each one runs, when it is finished, and which
lineage stage (:mod:`pauserec.artifacts.lineage`) its artifact feeds.

A stage cell is one run directory ``OUT/DATASET/STAGE`` per dataset. A model (or another stage) names it in its
``uses:`` under the lineage stage it provides: ``backbone`` (``model.backbone = STAGE_DIR/model``: the grounding
stage) or one of its arm's :attr:`~pauserec.arms.Arm.upstream_keys` (cot: ``rationales``, ``arm.rationales =
STAGE_DIR``). Training then records that lineage in the run, so the pipeline cost adds the stage's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig

BACKBONE = "backbone"  # the lineage stage of a run's model.backbone


@dataclass(frozen=True)
class StageKind:
    """``provides``: the lineage stage its artifact feeds; ``artifact``: that artifact's path inside the stage
    directory ('' = the directory itself); ``done``: the file written last, marking it finished; ``needs_sids``:
    whether its data directory must hold the SID catalogue."""

    provides: str
    artifact: str
    done: str
    needs_sids: bool
    run: Callable[[RunConfig, str, Path], Any]

    def artifact_path(self, stage_dir: Path) -> str:
        return str(stage_dir / self.artifact) if self.artifact else str(stage_dir)


def _ground(cfg: RunConfig, data_dir: str, run_dir: Path) -> Any:
    from ..train.grounding import ground

    return ground(cfg, data_dir, run_dir, resume=(run_dir / "checkpoints").exists())


def _rationales(cfg: RunConfig, data_dir: str, run_dir: Path) -> Any:
    from ..rationale import acquire_rationales

    return acquire_rationales(cfg, data_dir, run_dir, progress=False)


#: The stages a grid's ``stages:`` may run (``run: NAME``).
STAGES: dict[str, StageKind] = {
    "ground": StageKind(BACKBONE, "model", "train_cost.json", True, _ground),
    "rationales": StageKind("rationales", "", "cost.json", False, _rationales),
}
