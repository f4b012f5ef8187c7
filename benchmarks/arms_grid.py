"""FROZEN (issue 42): kept only because committed results cite it (arms-grid-scientific, -cpu, -h200)
and benchmarks/gpu/main.sh and probe.sh call it; do not extend it: write a grid file and run ``pauserec bench``.

The arms grid as before, now a thin wrapper over ``pauserec bench``: arms (+ popularity) on one data directory,
one seed, written as a grid file ``WORK/grid.yaml`` and run by :func:`pauserec.bench.run_grid` (resumable, failures
recorded, ``--parallel`` trains all arms at once and evaluates them one by one). The table and figures land in
``WORK``; the committed result ``benchmarks/results/NAME.{json,md}`` (:mod:`grid_result`) holds the table and,
for the pause arms, the K selected on validation NDCG@10 (never test).

    .venv/bin/python benchmarks/arms_grid.py runs/foundation/scientific --work runs/grid-scientific \
        --arms direct pause:1 pause:2 pause:4 pause:8 --set train.max_steps=120 --set eval.max_users=500

Prefer ``pauserec bench GRID.yaml`` (several datasets, seeds and baselines; see benchmarks/grids/).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from grid_result import commit_grid

from pauserec.config import parse_override
from pauserec.artifacts import environment


def grid_file(data: str, arms: list[str], overrides: list[str], name: str) -> dict:
    """``direct pause:1 pause:4`` -> models ``{popularity, direct, pause: {k: [1, 4]}}``, reference ``direct``."""
    models: dict = {"popularity": {}}
    for spec in arms:
        arm, _, k = spec.partition(":")
        entry = models.setdefault(arm, {})
        if k:
            entry.setdefault("k", []).append(int(k))
    return {"name": name, "datasets": {Path(data).name: data}, "seeds": [0],
            "set": dict(parse_override(o) for o in overrides), "models": models}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--arms", nargs="+", default=["direct", "pause:1", "pause:2", "pause:4", "pause:8"])
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="arms-grid")
    ap.add_argument("--parallel", action="store_true", help="train all arms at once, then evaluate one by one")
    args = ap.parse_args()
    machine = environment()  # the code revision that runs the grid
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    grid = work / "grid.yaml"
    grid.write_text(yaml.safe_dump(grid_file(args.data, args.arms, args.set, args.name), sort_keys=False))
    reference = ["direct"] if "direct" in args.arms else None
    commit_grid(grid, work, args.name, reference, parallel=len(args.arms) if args.parallel else 1, machine=machine)


if __name__ == "__main__":
    main()
