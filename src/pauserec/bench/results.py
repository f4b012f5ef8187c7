"""A grid's results without its weights (``pauserec bench --results DIR``), so a grid too long for one machine or
session accumulates: cells finished in ``DIR`` are restored into the grid folder and not run again, and every cell
finished there is saved back.

``DIR`` mirrors the grid folder (``DATASET/MODEL/seedN/``) with only what the table needs plus provenance: the
resolved config, the environment, metrics, cost and the per-user predictions (gzipped, byte-stable), a few hundred
KB per cell instead of the ~0.5 GB of a trained SmolLM2 cell. Committed, it lets anyone recompute a table and its
paired intervals, and lets the next session run only the missing cells.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..io import atomic_path
from .cells import finished
from .grid import Cell

# metrics.json last: its presence marks a cell finished, so an interrupted copy leaves an unfinished cell.
RESULT_FILES = ("config.yaml", "env.json", "cost.json", "predictions.jsonl", "metrics.json")
COMPRESSED = {"predictions.jsonl"}


def save_results(cells: Sequence[Cell], out: Path, results: Path) -> list[Cell]:
    """Copy each cell finished in ``out`` whose metrics ``results`` lacks or holds otherwise; returns those cells."""
    saved = []
    for cell in cells:
        if cell.stage:  # a stage's artifact is a model or rationales, not a result
            continue
        src, dst = cell.run_dir(out), cell.run_dir(results)
        if not finished(cell, out) or _same(src / "metrics.json", dst / "metrics.json"):
            continue
        (dst / "metrics.json").unlink(missing_ok=True)
        for name in RESULT_FILES:
            if (src / name).exists():
                _copy(src / name, dst / (f"{name}.gz" if name in COMPRESSED else name), compress=name in COMPRESSED)
        saved.append(cell)
    return saved


def restore_results(cells: Sequence[Cell], out: Path, results: Path) -> list[Cell]:
    """Copy each cell finished in ``results`` but not in ``out`` into ``out``; returns those cells."""
    restored = []
    for cell in cells:
        if cell.stage:
            continue
        src, dst = cell.run_dir(results), cell.run_dir(out)
        if not finished(cell, results) or finished(cell, out):
            continue
        for name in RESULT_FILES:
            stored = src / (f"{name}.gz" if name in COMPRESSED else name)
            if stored.exists():
                _copy(stored, dst / name, decompress=name in COMPRESSED)
        restored.append(cell)
    return restored


def _copy(src: Path, dst: Path, compress: bool = False, decompress: bool = False) -> None:
    """Copy ``src`` onto ``dst`` atomically, gzipping (byte-stable, so git sees no change where there is none) or
    gunzipping on the way."""
    with atomic_path(dst) as tmp, (gzip.open if decompress else open)(src, "rb") as f_in, open(tmp, "wb") as raw:
        # no name and no time in the gzip header: the same bytes every time
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) if compress else raw as f_out:
            shutil.copyfileobj(f_in, f_out)


def _same(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and a.read_bytes() == b.read_bytes()
