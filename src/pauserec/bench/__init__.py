"""``pauserec bench GRID.yaml``: a declared grid of models x K x datasets x seeds, one run directory per cell,
summarized in one table (Markdown, CSV, JSON) and three figures.

:mod:`.grid` reads and validates the file and expands it into cells, :mod:`.cells` runs them (resumable,
failures recorded, optionally in parallel), :mod:`.table` aggregates what finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cells import cell_states, run_cells
from .grid import Cell, expand, load_grid
from .table import plot_all, summarize, write_table

__all__ = ["Cell", "expand", "load_grid", "run_grid"]


def run_grid(grid_path: str | Path, out: str | Path, parallel: int = 1, references: Sequence[str] | None = None,
              log: Callable[[str], None] = print, run: bool = True) -> dict[str, Any]:
    """Validate the whole grid, run its unfinished cells (none with ``run=False``: a table of what has finished,
    e.g. while the grid runs elsewhere), and write the table and figures into ``out``.

    Returns ``{"cells": grid state, "rows": table rows, "files": written paths}``.
    """
    out = Path(out)
    cells = expand(load_grid(grid_path), source=str(grid_path))
    unknown = [r for r in references or [] if r not in {c.model for c in cells}]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"--reference {unknown[0]!r} is not a model of {grid_path}")
    state = run_cells(cells, out, parallel, log) if run else cell_states(cells, out)
    rows = summarize(cells, out, references)
    files = {**write_table(rows, out), **{p.stem: p for p in plot_all(rows, out)}}
    return {"cells": state, "rows": rows, "files": {k: str(v) for k, v in files.items()}}
