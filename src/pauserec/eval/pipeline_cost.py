"""Training cost of a whole pipeline: a run's own training plus every stage it was built from.

The stages come from the run's lineage (``RUN/lineage.json``, :mod:`pauserec.artifacts.lineage`), written at
training time: ``direct`` and ``pause`` on a plain backbone are one stage (SFT); the explicit-CoT arm is three:
SID grounding (the ``backbone`` run), rationale acquisition (the arm's ``rationales`` stage) and reasoning SFT.
Each stage is listed with its wall time, tokens and device; ``seconds`` sums them: the paper's GPU-hours analogue.
A run trained before lineage was recorded gets the lineage its config implies (the same rules, unhashed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..arms import get_arm
from ..artifacts import RunDir
from ..artifacts.lineage import upstream_stages
from ..io import read_json


def _stage(name: str, cost: dict[str, Any], path: Path) -> dict[str, Any]:
    return {
        "stage": name,
        "run": str(path),
        "seconds": float(cost.get("train_seconds", cost.get("seconds", 0.0))),
        "tokens": cost.get("real_tokens"),
        "device": cost.get("device"),
    }


def run_lineage(run: RunDir) -> list[dict[str, Any]]:
    """The run's recorded upstream stages, or, for a run older than ``lineage.json``, those its config implies."""
    recorded = run.lineage()
    if recorded is not None:
        return recorded
    cfg = run.config()
    arm_stages = get_arm(cfg.arm.name).upstream_stages(cfg.arm) if run.env().get("kind", "").startswith("train") \
        else {}
    return upstream_stages(cfg.model.backbone, arm_stages, hashed=False)


def pipeline_cost(run_dir: str | Path) -> dict[str, Any]:
    """``{"stages": [...], "seconds": total}`` for a trained run directory, earliest stage first."""
    stages: list[dict[str, Any]] = []
    run: RunDir | None = RunDir(run_dir)
    seen: set[Path] = set()
    while run is not None and run.path.resolve() not in seen and run.file("train_cost.json").exists():
        seen.add(run.path.resolve())
        stages.append(_stage(run.env().get("kind", "train"), read_json(run.file("train_cost.json")), run.path))
        upstream, run = run_lineage(run), None
        for record in upstream:
            if "run" in record:  # an earlier training stage: followed next
                run = RunDir(record["run"])
            elif (Path(record["path"]) / "cost.json").exists():
                stages.append(_stage(record["stage"], read_json(Path(record["path"]) / "cost.json"),
                                     Path(record["path"])))
    stages.reverse()
    return {"stages": stages, "seconds": sum(s["seconds"] for s in stages)}
