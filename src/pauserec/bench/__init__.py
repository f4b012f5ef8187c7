"""``pauserec bench GRID.yaml``: a declared grid of models x K x datasets x seeds, one run directory per cell,
summarized in one table (Markdown, CSV, JSON) and three figures.

:mod:`.grid` reads and validates the file and expands it into cells, :mod:`.cells` runs them (resumable,
failures recorded, optionally in parallel), :mod:`.table` aggregates what finished, :mod:`.results` keeps the
finished cells' results (no weights) where a grid outlives its machine or session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cells import cell_states, check_stored_configs, check_stored_foundation, run_cells
from .grid import Cell, expand, load_grid
from .results import restore_results, save_results
from .table import plot_all, summarize, write_table

__all__ = ["Cell", "expand", "load_grid", "run_grid", "select_cells"]


def select_cells(cells: Sequence[Cell], patterns: Sequence[str]) -> list[Cell]:
    """The cells whose id matches one of the glob ``patterns``; a pattern matching none is an error (a typo would
    otherwise run nothing, silently)."""
    from fnmatch import fnmatchcase

    from ..errors import ConfigError

    for pattern in patterns:
        if not any(fnmatchcase(c.id, pattern) for c in cells):
            raise ConfigError(f"--cells {pattern!r} matches no cell of the grid (cells look like {cells[0].id!r})")
    return [c for c in cells if any(fnmatchcase(c.id, p) for p in patterns)]


def run_grid(grid_path: str | Path, out: str | Path, parallel: int = 1, references: Sequence[str] | None = None,
              log: Callable[[str], None] = print, run: bool = True, only: Sequence[str] | None = None,
              results: str | Path | None = None) -> dict[str, Any]:
    """Validate the whole grid, run its unfinished cells (none with ``run=False``: a table of what has finished,
    e.g. while the grid runs elsewhere; only those whose id ``DATASET/MODEL/seedN`` matches a glob of ``only``, e.g.
    ``*/cot-template/seed0``, to put some cells first), and write the table and figures of the whole grid into ``out``.
    With ``results``, cells finished there are restored into ``out`` first and every cell finished in ``out`` is saved
    there as each finishes (:mod:`.results`).

    Returns ``{"cells": grid state, "rows": table rows, "files": written paths}``.
    """
    out = Path(out)
    cells = expand(load_grid(grid_path), source=str(grid_path))
    unknown = [r for r in references or [] if r not in {c.model for c in cells}]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"--reference {unknown[0]!r} is not a model of {grid_path}")
    chosen = select_cells(cells, only) if only else cells
    if results:
        check_stored_configs(cells, Path(results))
        check_stored_foundation(cells, Path(results))
        if restored := restore_results(cells, out, Path(results)):
            log(f"restored {len(restored)} finished cells from {results}")
    check_stored_configs(cells, out)  # every cell, before anything runs: a stale one would be tabulated hours later
    check_stored_foundation(cells, out)
    keep = (lambda cell: save_results([cell], out, Path(results))) if results else None  # as each finishes
    state = run_cells(chosen, out, parallel, log, on_done=keep) if run else {}
    if results and (saved := save_results(cells, out, Path(results))):  # also cells finished before, or elsewhere
        log(f"saved the results of {len(saved)} cells into {results}")
    state = {**cell_states(cells, out), **state}
    rows = summarize(cells, out, references)
    files = {**write_table(rows, out), **{p.stem: p for p in plot_all(rows, out)}}
    return {"cells": state, "rows": rows, "files": {k: str(v) for k, v in files.items()}}
