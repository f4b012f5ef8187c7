"""Commit a ``pauserec bench`` grid's table as a result: runs the grid's unfinished cells (or, with
``--table-only``, none) and writes ``benchmarks/results/NAME.{json,md}`` with the table, the figures, the command
and the machine. A grid that runs across sessions is committed part-way with ``--table-only``; its table says how
many seeds each row has; with ``--results benchmarks/cells/NAME`` its cells' results (no weights) are committed
too, so the table can be recomputed anywhere and the next session runs only the missing cells.

    .venv/bin/python benchmarks/grid_result.py benchmarks/grids/scientific.yaml --out runs/bench-scientific \
        --name arms-grid-scientific-2ep --table-only
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from common import RESULTS, write_result

from pauserec.bench import run_grid
from pauserec.artifacts import environment

FIGURES = ("accuracy_vs_latency", "accuracy_vs_train_cost", "pause_curve")


def commit_grid(grid: Path, out: Path, name: str, references: list[str] | None = None, run: bool = True,
                parallel: int = 1, note: str = "", machine: dict[str, Any] | None = None,
                results: Path | None = None) -> dict[str, Any]:
    """Run (``run``) and tabulate ``grid`` into ``out``, then commit the table and figures as result ``name``.
    Returns the grid's ``{"cells", "rows", "files"}``."""
    machine = machine or environment()  # the code revision that runs the grid
    result = run_grid(grid, out, parallel=parallel, references=references, run=run, results=results)
    md = (f"{note}\n\n" if note else "") + (out / "table.md").read_text()
    best = [r["model"] for r in result["rows"] if r.get("val_best")]
    md += f"\nValidation-best variants (NDCG@10 on validation users, never test): {', '.join(best) or '-'}\n"
    for png in FIGURES:
        if (out / f"{png}.png").exists():
            shutil.copyfile(out / f"{png}.png", RESULTS / f"{name}-{png}.png")
            md += f"\n![{png}]({name}-{png}.png)\n"
    write_result(name, {"grid": str(grid), "out": str(out), "results": str(results) if results else None, "note": note, "validation_best": best,
                        "rows": result["rows"], "cells": result["cells"]}, md, machine)
    print(md)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the grid folder (as pauserec bench --out)")
    ap.add_argument("--name", required=True, help="result name under benchmarks/results/")
    ap.add_argument("--reference", action="append", default=None, help="paired-difference reference (repeatable)")
    ap.add_argument("--table-only", action="store_true", help="run nothing: commit what has finished")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--results", type=Path, default=None,
                    help="the cells' results folder (as pauserec bench --results), e.g. benchmarks/cells/NAME")
    ap.add_argument("--note", default="", help="a paragraph above the table: what it shows and what it does not")
    args = ap.parse_args()
    commit_grid(args.grid, args.out, args.name, args.reference, not args.table_only, args.parallel, args.note,
                results=args.results)


if __name__ == "__main__":
    main()
