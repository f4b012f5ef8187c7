"""The classic baselines on Scientific under both split protocols (issue 44): tabulate the two grids (leave-one-out,
temporal) and commit them as one result, ``benchmarks/results/NAME.{json,md}``, with MiniOneRec's published numbers
beside the temporal table.

    .venv/bin/pauserec bench benchmarks/grids/protocols-scientific-loo.yaml --out runs/bench-protocols-loo \
        --results benchmarks/cells/protocols-scientific-loo
    .venv/bin/pauserec bench benchmarks/grids/protocols-scientific-temporal.yaml --out runs/bench-protocols-temporal \
        --results benchmarks/cells/protocols-scientific-temporal --cells ...   # the grid file's header
    .venv/bin/python benchmarks/protocols_result.py        # tabulates what finished; trains nothing

Under leave-one-out, TIGER and the LLM arms are the arms grid's committed cells (``benchmarks/cells/scientific``:
same dataset, split and 2,000 users, another SID catalogue than runs/data/sci, so no grid holds both): they are
read from there and paired per user with this grid's cells (:func:`arms_grid_rows`).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from common import write_result

from pauserec.artifacts import environment
from pauserec.bench import run_grid
from pauserec.bench.table import METRICS, seed_interval, seed_level_differences
from pauserec.eval.compare import excludes_history, paired_difference, per_user_values, same_tasks
from pauserec.io import read_json
from pauserec.report import fmt_difference, fmt_metric, markdown_table

GRIDS = {
    "leave_one_out": ("benchmarks/grids/protocols-scientific-loo.yaml", "runs/bench-protocols-loo"),
    "temporal": ("benchmarks/grids/protocols-scientific-temporal.yaml", "runs/bench-protocols-temporal"),
}
# MiniOneRec (Kong et al., arXiv 2510.24431) Table 1, its own row: Qwen2.5-7B, SFT + RL, RQ-VAE SIDs, on Amazon 2018
# Industrial_and_Scientific (Oct 2017 - Nov 2018, 5-core), temporal 8:1:1 split, history <= 10, constrained beam 50.
ARMS_GRID_CELLS = Path("benchmarks/cells/scientific/scientific")  # the arms grid's committed leave-one-out cells
ARMS_GRID_MODELS = ("tiger", "direct", "pause-k1")
KS = (5, 10)
MINIONEREC = {"hr@3": 0.1143, "ndcg@3": 0.1011, "hr@5": 0.1321, "ndcg@5": 0.1084, "hr@10": 0.1586, "ndcg@10": 0.1167}


def minionerec_section() -> str:
    cells = " | ".join(f"{v:.4f}" for v in MINIONEREC.values())
    return (
        "\n## MiniOneRec's published Industrial numbers (temporal split)\n\n"
        "| system | " + " | ".join(MINIONEREC) + " |\n|" + "---|" * (len(MINIONEREC) + 1) + "\n"
        f"| MiniOneRec (paper Table 1) | {cells} |\n\n"
        "HR@K with one target per example is our Recall@K. What still differs: MiniOneRec's Industrial is Amazon 2018 "
        "*Industrial_and_Scientific* filtered to Oct 2017 - Nov 2018 (its own 5-core, ~4.5k test samples) and split "
        "on review timestamps; ours is the LC-Rec *Scientific* (8,317 users, 4,344 items) without timestamps, ordered "
        "by relative position (docs/data.md#splits), so its test part is 5,018 users' last items and the two tables "
        "are not the same examples. Its model is Qwen2.5-7B with SFT + language-alignment tasks + GRPO "
        "reinforcement learning on RQ-VAE SIDs; ours is SmolLM2-135M, SFT only, 2 epochs on 2 CPU cores, on RQ-KMeans "
        "SIDs of all-MiniLM-L6-v2 title embeddings, one seed under this split. Numbers are taken from the paper as quoted by a public reproduction's "
        "alignment notes (demon2036/minionerec-jax-repro, PAPER_ALIGNMENT); the paper's own baseline rows are "
        "not reproduced here.\n"
    )


def _cell_values(cell: Path) -> tuple[list[tuple[str, ...]], dict[str, np.ndarray], bool]:
    """Tasks, per-user metrics and history exclusion of one evaluated cell (a run directory, or a ``--results``
    cell whose predictions are gzipped)."""
    if (cell / "predictions.jsonl").exists():
        return (*per_user_values(cell, KS), excludes_history(cell))
    with tempfile.TemporaryDirectory() as tmp:
        with gzip.open(cell / "predictions.jsonl.gz", "rb") as f_in, open(Path(tmp) / "predictions.jsonl", "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
        return (*per_user_values(tmp, KS), excludes_history(cell))


def arms_grid_rows(grid_out: Path, dataset: str, references: list[str], seeds: tuple[int, ...] = (0, 1, 2)
                   ) -> list[dict[str, Any]]:
    """Rows for :data:`ARMS_GRID_MODELS` from the arms grid's committed cells: metrics as mean [t-interval over
    seeds], and per reference (a model of the grid in ``grid_out``) the paired difference on the same users, both
    per-user (metric averaged over the seeds both have, bootstrap over users) and over seeds. Refuses cells that
    ranked other users or another item set than the reference."""
    refs = {ref: [_cell_values(grid_out / dataset / ref / f"seed{s}") for s in seeds] for ref in references}
    rows = []
    for model in ARMS_GRID_MODELS:
        mine = [_cell_values(ARMS_GRID_CELLS / model / f"seed{s}") for s in seeds]
        metrics = [read_json(ARMS_GRID_CELLS / model / f"seed{s}" / "metrics.json")["metrics"] for s in seeds]
        row = {"model": model, "seeds": list(seeds), "users": len(mine[0][0]), "source": str(ARMS_GRID_CELLS / model),
               "metrics": {m: seed_interval([x[m]["mean"] for x in metrics]) for m in METRICS}, "paired": {}}
        for ref in references:
            theirs = refs[ref]
            for (t_a, _, ex_a), (t_b, _, ex_b) in zip(mine, theirs, strict=True):
                if not same_tasks(t_a, t_b) or ex_a != ex_b:
                    raise SystemExit(f"{model} and {ref} were not evaluated on the same users and item set")
            a, b = [v for _, v, _ in mine], [v for _, v, _ in theirs]
            row["paired"][ref] = {m: paired_difference(np.mean([v[m] for v in b], axis=0), np.mean([v[m] for v in a], axis=0))
                                  for m in METRICS} | {"seed_level": seed_level_differences(a, b)}
        rows.append(row)
    return rows


def arms_grid_section(rows: list[dict[str, Any]], references: list[str]) -> str:
    header = ["model", "seeds", "users", *METRICS, *[f"N@10 - {r} (paired)" for r in references],
              *[f"N@10 - {r} (over seeds)" for r in references]]
    lines = [[r["model"], ",".join(map(str, r["seeds"])), str(r["users"]), *[fmt_metric(r["metrics"][m]) for m in METRICS],
              *[fmt_difference(r["paired"][ref]["ndcg@10"]) for ref in references],
              *[fmt_difference(r["paired"][ref]["seed_level"]["ndcg@10"]) for ref in references]] for r in rows]
    return ("\n\nTIGER and the LLM arms under leave-one-out: the arms grid's committed cells "
            f"(`{ARMS_GRID_CELLS}`, 2 epochs, lr 5e-4; the same 2,000 users), paired per user with the cells above:\n\n"
            + markdown_table(header, lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="protocols-scientific")
    ap.add_argument("--note", default="", help="a paragraph above the tables")
    ap.add_argument("--reference", action="append", default=None,
                    help="models the paired differences are taken against (default: sasrec, sasrec_ce: the classic models "
                    "the LLM arms are held against)")
    args = ap.parse_args()
    references = args.reference or ["sasrec", "sasrec_ce"]
    machine = environment()
    md, payload = (f"{args.note}\n\n" if args.note else ""), {"grids": {}, "minionerec_industrial": MINIONEREC}
    for kind, (grid, out) in GRIDS.items():
        result: dict[str, Any] = run_grid(grid, out, references=references, run=False,
                                          results=f"benchmarks/cells/{Path(grid).stem}")
        md += f"\n## {kind.replace('_', '-')}\n\n" + (Path(out) / "table.md").read_text()
        payload["grids"][kind] = {"grid": grid, "out": out, "rows": result["rows"], "cells": result["cells"]}
        if kind == "leave_one_out":
            extra = arms_grid_rows(Path(out), "scientific", references)
            md += arms_grid_section(extra, references)
            payload["grids"][kind]["arms_grid_rows"] = extra
    md += minionerec_section()
    write_result(args.name, payload, md, machine)
    print(md)


if __name__ == "__main__":
    main()
