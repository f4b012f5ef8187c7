"""``pauserec bench GRID.yaml``: the one orchestrator. A declared grid of upstream stages, models x K x datasets x
seeds and eval-only variants, one run directory per cell, summarized in one table (Markdown, CSV, JSON) and three
figures. The demo (:mod:`pauserec.demo`) is a packaged grid run through :func:`run_grid`.

:mod:`.grid` reads and validates the file and expands it into cells, :mod:`.stages` holds the stages a grid can
run, :mod:`.cells` runs the cells in dependency order (resumable, failures recorded, optionally in parallel),
:mod:`.table` aggregates what finished, :mod:`.results` keeps the finished cells' results (no weights) where a grid
outlives its machine or session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import RunConfig
from .cells import cell_states, check_stored_configs, check_stored_foundation, run_cells
from .grid import Cell, GridSpec, expand, load_grid
from .results import restore_results, save_results
from .table import plot_all, summarize, write_table

__all__ = ["Cell", "GridSpec", "expand", "load_grid", "run_grid", "select_cells"]


def select_cells(cells: Sequence[Cell], patterns: Sequence[str]) -> list[Cell]:
    """The cells whose id matches one of the glob ``patterns``; a pattern matching none is an error (a typo would
    otherwise run nothing, silently)."""
    from fnmatch import fnmatchcase

    from ..errors import ConfigError

    for pattern in patterns:
        if not any(fnmatchcase(c.id, pattern) for c in cells):
            raise ConfigError(f"--cells {pattern!r} matches no cell of the grid (cells look like {cells[0].id!r})")
    return [c for c in cells if any(fnmatchcase(c.id, p) for p in patterns)]


def run_grid(grid_path: str | Path | GridSpec, out: str | Path, parallel: int = 1,
             references: Sequence[str] | None = None, log: Callable[[str], None] = print, run: bool = True,
             only: Sequence[str] | None = None, results: str | Path | None = None, defaults: RunConfig | None = None,
             report: bool = True, on_step: Callable[[Cell, str], Any] | None = None,
             progress: bool = False) -> dict[str, Any]:
    """Validate the whole grid (a file, or a loaded :class:`GridSpec`), run its unfinished cells in dependency order
    (none with ``run=False``: a table of what has finished, e.g. while the grid runs elsewhere; only those whose id
    ``DATASET/MODEL/seedN`` (a stage: ``DATASET/STAGE``) matches a glob of ``only``, e.g. ``*/cot-template/seed0``,
    with the unfinished cells they wait for), and write the table and figures of the whole grid into ``out`` (none
    with ``report=False``: the demo writes its own). With ``results``, cells finished there are restored into ``out`` first and every cell finished
    in ``out`` is saved there as each finishes (:mod:`.results`). ``defaults``: the cells' base config instead of the
    grid's ``preset:``; ``on_step(cell, "fit" | "evaluate")`` is called before each step; ``progress``: the steps'
    progress bars.

    Returns ``{"cells": grid state, "rows": table rows, "files": written paths}``.
    """
    out = Path(out)
    spec, source = (grid_path, grid_path.name) if isinstance(grid_path, GridSpec) else (load_grid(grid_path), str(grid_path))
    cells = expand(spec, source=source, defaults=defaults, out=out)
    unknown = [r for r in references or [] if r not in {c.model for c in cells}]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"--reference {unknown[0]!r} is not a model of {source}")
    chosen = select_cells(cells, only) if only else cells
    if results:
        check_stored_configs(cells, Path(results))
        check_stored_foundation(cells, Path(results))
        if restored := restore_results(cells, out, Path(results)):
            log(f"restored {len(restored)} finished cells from {results}")
    check_stored_configs(cells, out)  # every cell, before anything runs: a stale one would be tabulated hours later
    check_stored_foundation(cells, out)
    keep = (lambda cell: save_results([cell], out, Path(results))) if results else None  # as each finishes
    state = run_cells(chosen, out, parallel, log, on_done=keep, on_step=on_step, grid=cells,
                       progress=progress) if run else {}
    if results and (saved := save_results(cells, out, Path(results))):  # also cells finished before, or elsewhere
        log(f"saved the results of {len(saved)} cells into {results}")
    state = {**cell_states(cells, out), **state}
    if not report:
        return {"cells": state, "rows": [], "files": {}}
    rows = summarize(cells, out, references)
    files = {**write_table(rows, out), **{p.stem: p for p in plot_all(rows, out)}}
    return {"cells": state, "rows": rows, "files": {k: str(v) for k, v in files.items()}}
