"""Training cost of a whole pipeline: a run's own training plus every stage it was built from.

``direct`` and ``pause`` are one stage (SFT). The explicit-CoT arm is three: SID grounding (the run whose
``model/`` is its ``model.backbone``), rationale acquisition (its ``arm.rationales`` directory) and reasoning SFT.
Each stage is listed with its wall time, tokens and device; ``seconds`` sums them: the paper's GPU-hours analogue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import read_json
from ..artifacts import RunDir


def _stage(name: str, cost: dict[str, Any], path: Path) -> dict[str, Any]:
    return {
        "stage": name,
        "run": str(path),
        "seconds": float(cost.get("train_seconds", cost.get("seconds", 0.0))),
        "tokens": cost.get("real_tokens"),
        "device": cost.get("device"),
    }


def pipeline_cost(run_dir: str | Path) -> dict[str, Any]:
    """``{"stages": [...], "seconds": total}`` for a trained run directory, earliest stage first."""
    stages: list[dict[str, Any]] = []
    run = RunDir(run_dir)
    seen: set[Path] = set()
    while run.path.resolve() not in seen and run.file("train_cost.json").exists():
        seen.add(run.path.resolve())
        cfg = run.config()
        kind = run.env().get("kind", "train")
        stages.append(_stage(kind, read_json(run.file("train_cost.json")), run.path))
        rationales = Path(cfg.arm.rationales) if cfg.arm.name == "cot" and cfg.arm.rationales else None
        if rationales is not None and (rationales / "cost.json").exists():
            stages.append(_stage("rationales", read_json(rationales / "cost.json"), rationales))
        parent = Path(cfg.model.backbone).parent  # a backbone that is another run's selected model
        if Path(cfg.model.backbone).name != "model" or not (parent / "config.yaml").exists():
            break
        run = RunDir(parent)
    stages.reverse()
    return {"stages": stages, "seconds": sum(s["seconds"] for s in stages)}
