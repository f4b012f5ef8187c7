"""Running a grid's cells: resumable, failure-tolerant, optionally several at once.

A cell has two steps. ``fit``: an LLM arm trains (``train.run.train``, resuming from its last checkpoint after an
interruption); a baseline runs whole (it trains, ranks and writes its run directory). ``evaluate``: an LLM arm is
decoded (``eval.run_eval.evaluate_run``). With ``parallel > 1`` the fits run in that many processes (CPU threads
split between them), then LLM evaluations run one at a time in this process so each latency is measured alone.

Cells run seed by seed (every model's seed 0, then every model's seed 1, ...), so a grid stopped part-way has
compared every model once. A cell with ``metrics.json`` is finished and skipped. A cell that raises is recorded in
``OUT/grid_state.json`` (``{"cells": {id: {"status": "failed", "error": ...}}}``) and the grid goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ..io import read_json, write_json
from .grid import Cell

STATE = "grid_state.json"


def finished(cell: Cell, out: Path) -> bool:
    return (cell.run_dir(out) / "metrics.json").exists()


def check_stored_configs(cells: Sequence[Cell], out: Path) -> None:
    """Refuse to reuse a cell directory made under another config (the grid file changed since): its numbers would
    be reported under the new settings. ``cache_dir`` may differ (another machine)."""
    from ..config import differing_settings
    from ..errors import ConfigError
    from ..artifacts import RunDir

    for cell in cells:
        if not (cell.run_dir(out) / "config.yaml").exists():
            continue
        changed = list(differing_settings([RunDir(cell.run_dir(out)).config(), cell.config()], ignore=("cache_dir",))[0])
        if changed:
            raise ConfigError(f"{cell.run_dir(out)} was run with another config ({', '.join(changed[:5])} differ): "
                              "remove that cell's directory or use another --out")


def check_stored_foundation(cells: Sequence[Cell], out: Path) -> None:
    """Refuse to reuse a cell trained on another dataset or SID catalogue than its data directory holds now
    (``dataset_hash`` / ``catalog_hash`` in the cell's ``env.json``). Cells saved with ``--results`` on one machine
    and restored on another are only comparable if both built the same foundation: a catalogue rebuilt elsewhere
    (RQ-KMeans in floating point on another CPU) may assign other codes, and the grid would mix two problems."""
    from ..errors import ConfigError

    current: dict[str, dict[str, str]] = {}
    for cell in cells:
        env_path = cell.run_dir(out) / "env.json"
        if not env_path.exists():
            continue
        if cell.data_dir not in current:
            current[cell.data_dir] = foundation_hashes(cell.data_dir)
        stored = read_json(env_path)
        for key, now in current[cell.data_dir].items():
            if key in stored and stored[key] != now:
                what = "SID catalogue" if key == "catalog_hash" else "dataset"
                raise ConfigError(f"{cell.run_dir(out)} was trained on another {what} ({key} {stored[key]}) than "
                                  f"{cell.data_dir} holds now ({now}): rebuild the same foundation, or remove that "
                                  "cell / use another --out or --results")


def foundation_hashes(data_dir: str | Path) -> dict[str, str]:
    """``{"dataset_hash", "catalog_hash"}`` of a prepared data directory (:meth:`DataDir.hashes`)."""
    from ..artifacts import DataDir

    return DataDir(data_dir).hashes()


def fit(cell: Cell, out: Path, progress: bool = False) -> None:
    """Train an LLM cell (resuming), or run a baseline cell whole. A trained cell keeps its selected ``model/`` and
    drops its Trainer ``checkpoints/``: they exist to resume an interrupted training, and a grid of 135M-parameter
    cells would otherwise keep ~3 GB per cell (two checkpoints with optimiser state)."""
    from ..baselines import run_baseline

    run_dir = cell.run_dir(out)
    if cell.kind == "baseline":
        run_baseline(cell.base, cell.config(), cell.data_dir, run_dir, progress=progress)
        return
    if not (run_dir / "model").exists():
        from ..train.run import train

        train(cell.config(), cell.data_dir, run_dir, resume=(run_dir / "checkpoints").exists())
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def evaluate(cell: Cell, out: Path, progress: bool = False) -> None:
    """Decode an LLM cell's test users (nothing to do for a baseline: its fit evaluated it)."""
    if cell.kind == "llm" and not finished(cell, out):
        from ..eval.run_eval import evaluate_run

        evaluate_run(cell.run_dir(out), cell.config(), progress=progress)


def run_cells(cells: Sequence[Cell], out: Path, parallel: int = 1, log: Callable[[str], None] = print,
              on_done: Callable[[Cell], Any] | None = None) -> dict[str, Any]:
    """Run every unfinished cell, calling ``on_done(cell)`` as each finishes; returns the grid state (also written
    to ``OUT/grid_state.json``). The caller checks the stored configs first (:func:`check_stored_configs`)."""
    state = _load_state(out)
    pending = sorted((c for c in cells if not finished(c, out)), key=lambda c: c.seed)  # every model's first seed first
    for c in cells:
        if finished(c, out):
            state[c.id] = {"status": "done"}
    fit_failed = _fit_in_processes(pending, out, parallel, state, log) if parallel > 1 else set()
    for cell in pending:
        if cell.id not in fit_failed:
            _attempt(cell, out, state, log, fit_too=parallel <= 1, on_done=on_done)
    _save_state(out, state)
    return state


def cell_states(cells: Sequence[Cell], out: Path) -> dict[str, Any]:
    """The recorded state of every cell (``done`` where ``metrics.json`` exists, else as last recorded, else
    ``pending``), without running anything."""
    recorded = _load_state(out) if out.exists() else {}
    return {c.id: {"status": "done"} if finished(c, out) else recorded.get(c.id, {"status": "pending"}) for c in cells}


def _attempt(cell: Cell, out: Path, state: dict[str, Any], log: Callable[[str], None], fit_too: bool,
             on_done: Callable[[Cell], Any] | None) -> None:
    try:
        if fit_too:
            fit(cell, out)
        evaluate(cell, out)
        state[cell.id] = {"status": "done"}
        log(f"done   {cell.id}")
        if on_done:
            on_done(cell)
    except Exception as e:  # noqa: BLE001 - a failed cell is recorded, the grid goes on
        _record_failure(cell, e, state, log)
    _save_state(out, state)


def _fit_in_processes(cells: Sequence[Cell], out: Path, workers: int, state: dict[str, Any],
                      log: Callable[[str], None]) -> set[str]:
    """``fit`` of each cell in its own process, ``workers`` at a time, the CPU threads split between them;
    returns the ids of the cells whose fit failed (recorded in ``state``)."""
    failed = set()
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads  # inherited by the spawned workers before they import torch
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = {c.id: (c, pool.submit(fit, c, out)) for c in cells}
            for cell, future in futures.values():
                try:
                    future.result()
                except Exception as e:  # noqa: BLE001
                    failed.add(cell.id)
                    _record_failure(cell, e, state, log)
                    _save_state(out, state)
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    return failed


def _record_failure(cell: Cell, error: BaseException, state: dict[str, Any], log: Callable[[str], None]) -> None:
    line = f"{type(error).__name__}: {error}".splitlines()[0]
    state[cell.id] = {"status": "failed", "error": line, "traceback": traceback.format_exception(error)[-3:]}
    log(f"FAILED {cell.id}: {line}")


def _load_state(out: Path) -> dict[str, Any]:
    path = out / STATE
    return read_json(path)["cells"] if path.exists() else {}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / STATE, {"cells": state})
