"""Running a grid's cells: in dependency order, resumable, failure-tolerant, optionally several fits at once.

A cell has two steps. ``fit``: a stage runs (:mod:`.stages`); an LLM arm trains (``train.run.train``, resuming from
its last checkpoint after an interruption); a baseline runs whole (it trains, ranks and writes its run directory,
and ranks its eval-only variants with the same fitted model). ``evaluate``: an LLM arm is decoded
(``eval.run_eval.evaluate_run``; an eval-only variant decodes its trained cell's model into its own directory).
With ``parallel > 1`` the model fits run in that many processes (CPU threads split between them), then LLM
evaluations run one at a time in this process so each latency is measured alone.

Stages run first (each before the stages that use it), then cells seed by seed (every model's seed 0, then every
model's seed 1, ...; an eval-only variant after its trained cell), so a grid stopped part-way has compared every
model once. A cell is finished when its marker exists (``metrics.json``; a stage's :attr:`.stages.StageKind.done`)
and is skipped. Only the stages and trained cells that an unfinished chosen cell waits for run with it. A cell
that raises is recorded in ``OUT/grid_state.json`` (``{"cells": {id: {"status": "failed", "error": ...}}}``), the
cells that wait for it are recorded ``skipped`` (naming it), and the grid goes on; a cell that finishes records
the seconds of its steps (``{"status": "done", "seconds": {"fit": s, "evaluate": s}}``).
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io import read_json, write_json
from .grid import Cell
from .stages import STAGES

STATE = "grid_state.json"
Step = Callable[[Cell, str], Any]  # called before each step of a cell ("fit" or "evaluate")


def finished(cell: Cell, out: Path) -> bool:
    marker = STAGES[cell.stage].done if cell.stage else "metrics.json"
    return (cell.run_dir(out) / marker).exists()


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


def fit(cell: Cell, out: Path, variants: Sequence[Cell] = (), progress: bool = False) -> None:
    """Run a stage, train an LLM cell (resuming), or run a baseline cell whole with its eval-only ``variants``
    (one fit, each ranking unless finished). A trained cell keeps its selected ``model/`` and drops its Trainer
    ``checkpoints/``: they exist to resume an interrupted training, and a grid of 135M-parameter cells would
    otherwise keep ~3 GB per cell (two checkpoints with optimiser state); a grid that sets
    ``train.save_total_limit: 0`` (keep every checkpoint, for ``benchmarks/selection_study.py``) keeps them. An eval-only variant of a baseline whose
    own cell finished earlier fits the baseline again (a baseline keeps no weights); of an LLM, it has no fit."""
    run_dir = cell.run_dir(out)
    if cell.stage:
        STAGES[cell.stage].run(cell.config(), cell.data_dir, run_dir)
    elif cell.kind == "baseline":
        trained = cell.source or cell
        _fit_baseline(trained, [c for c in ([cell] if cell.source else [cell, *variants]) if not finished(c, out)],
                      out, progress)
        return
    elif cell.source is None and not (run_dir / "model").exists():
        from ..train.run import train

        train(cell.config(), cell.data_dir, run_dir, resume=(run_dir / "checkpoints").exists())
    if cell.config().train.save_total_limit != 0:  # 0 = keep every checkpoint: asked for (a selection study)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def _fit_baseline(trained: Cell, cells: Sequence[Cell], out: Path, progress: bool) -> None:
    """Fit baseline ``trained.base`` once under ``trained``'s config and rank each of ``cells`` (it and its
    eval-only variants) under its own config into its own run directory."""
    from ..artifacts import DataDir, RunDir
    from ..baselines import make_baseline
    from ..eval.contract import evaluate_ranker

    cfg, data = trained.config(), DataDir(trained.data_dir)
    ranker, cost = make_baseline(trained.base, cfg, progress), None
    for cell in cells:
        cell_cfg = cell.config()
        split = data.split(cell_cfg)
        run = RunDir.create(cell.run_dir(out), cell_cfg, kind=f"baseline:{trained.base}",
                            **data.facts(split, catalog=ranker.uses_catalog))
        if cost is None:
            cost = ranker.fit(data, split, run)
        evaluate_ranker(ranker, cell_cfg, data, run, cost, split=split)


def evaluate(cell: Cell, out: Path, progress: bool = False) -> None:
    """Decode an LLM cell's test users (an eval-only variant: its trained cell's model, into its own directory);
    nothing to do for a stage or a baseline (its fit evaluated it)."""
    if cell.kind == "llm" and not finished(cell, out):
        from ..eval.run_eval import evaluate_run

        if cell.source is None:
            evaluate_run(cell.run_dir(out), cell.config(), progress=progress)
        else:
            evaluate_run(cell.source.run_dir(out), cell.config(), progress=progress, out_dir=cell.run_dir(out))


def plan(chosen: Sequence[Cell], cells: Sequence[Cell], out: Path) -> list[Cell]:
    """The unfinished ``chosen`` cells and the unfinished cells of ``cells`` they wait for (transitively), in run
    order: stages by depth, then model cells seed by seed, each after what it waits for."""
    by_id = {c.id: c for c in cells}
    todo: dict[str, Cell] = {}

    def add(cell: Cell) -> None:
        if cell.id in todo or finished(cell, out):
            return
        for need in cell.needs:
            add(by_id[need])
        todo[cell.id] = cell

    for cell in chosen:
        add(cell)
    depth: dict[str, int] = {}

    def depth_of(cell: Cell) -> int:
        if cell.id not in depth:
            depth[cell.id] = 1 + max((depth_of(by_id[n]) for n in cell.needs), default=-1)
        return depth[cell.id]

    index = {c.id: i for i, c in enumerate(cells)}
    return sorted(todo.values(), key=lambda c: (c.kind != "stage", -1 if c.stage else c.seed, depth_of(c),
                                                index[c.id]))


def run_cells(cells: Sequence[Cell], out: Path, parallel: int = 1, log: Callable[[str], None] = print,
              on_done: Callable[[Cell], Any] | None = None, on_step: Step | None = None,
              grid: Sequence[Cell] | None = None, progress: bool = False) -> dict[str, Any]:
    """Run every unfinished cell of ``cells`` and the unfinished cells of ``grid`` (default ``cells``) they wait
    for, calling ``on_done(cell)`` as each finishes (``progress``: progress bars of the steps run in this process);
    returns the grid state (also written to ``OUT/grid_state.json``). The caller checks the stored configs first (:func:`check_stored_configs`)."""
    grid = list(grid if grid is not None else cells)
    state = {**_load_state(out), **{c.id: s for c, s in zip(grid, cell_states(grid, out).values())
                                    if finished(c, out)}}
    pending = plan(cells, grid, out)
    variants = {c.id: [v for v in grid if v.source is not None and v.source.id == c.id] for c in pending}
    for cell in pending:
        if cell.stage:
            _attempt(cell, out, state, log, True, on_done, on_step, [], progress)
    models = [c for c in pending if not c.stage]
    fit_failed: set[str] = set()
    if parallel > 1:
        ready = [c for c in models if c.source is None and _waiting_for(c, out, state) is None]
        fit_failed = _fit_in_processes(ready, out, parallel, state, log, variants)
    for cell in models:
        if cell.id not in fit_failed:
            _attempt(cell, out, state, log, parallel <= 1 or cell.source is not None, on_done, on_step,
                     variants.get(cell.id, []), progress)
    _save_state(out, state)
    return state


def _waiting_for(cell: Cell, out: Path, state: dict[str, Any]) -> str | None:
    """Why ``cell`` cannot run yet (the first cell it waits for, and what is missing), or None."""
    for need in cell.needs:
        status = state.get(need, {}).get("status", "pending")
        if cell.source is not None and need == cell.source.id:  # an eval-only variant
            if status in ("failed", "skipped"):
                return f"{need} ({status})"
            if cell.kind == "llm" and not (cell.source.run_dir(out) / "model").exists():
                return f"{need} (no trained model/ in {cell.source.run_dir(out)})"
        elif status != "done":
            return f"{need} ({status})"
    return None


def cell_states(cells: Sequence[Cell], out: Path) -> dict[str, Any]:
    """The recorded state of every cell (``done`` where its marker exists, else as last recorded, else
    ``pending``), without running anything."""
    recorded = _load_state(out) if out.exists() else {}
    states = {}
    for c in cells:
        prior = recorded.get(c.id, {})
        if finished(c, out):
            states[c.id] = prior if prior.get("status") == "done" else {"status": "done"}
        else:
            states[c.id] = prior or {"status": "pending"}
    return states


def _attempt(cell: Cell, out: Path, state: dict[str, Any], log: Callable[[str], None], fit_too: bool,
             on_done: Callable[[Cell], Any] | None, on_step: Step | None, variants: Sequence[Cell],
             progress: bool = False) -> None:
    if finished(cell, out):  # e.g. an eval-only variant its baseline's fit has ranked
        if on_done:
            on_done(cell)
        return
    if (waiting := _waiting_for(cell, out, state)) is not None:
        state[cell.id] = {"status": "skipped", "error": f"waits for {waiting}"}
        log(f"SKIPPED {cell.id}: waits for {waiting}")
        _save_state(out, state)
        return
    seconds: dict[str, float] = {}
    try:
        if fit_too:
            if on_step:
                on_step(cell, "fit")
            t0 = time.perf_counter()
            fit(cell, out, variants=variants, progress=progress)
            seconds["fit"] = time.perf_counter() - t0
        if cell.kind == "llm":
            if on_step:
                on_step(cell, "evaluate")
            t0 = time.perf_counter()
            evaluate(cell, out, progress=progress)
            seconds["evaluate"] = time.perf_counter() - t0
        state[cell.id] = {"status": "done", "seconds": seconds}
        log(f"done   {cell.id}")
        if on_done:
            on_done(cell)
        for v in variants:  # ranked by a baseline's fit
            if finished(v, out):
                state[v.id] = {"status": "done", "seconds": {"evaluate": 0.0}}
    except Exception as e:  # noqa: BLE001 - a failed cell is recorded, the grid goes on
        _record_failure(cell, e, state, log)
    _save_state(out, state)


def _timed_fit(cell: Cell, out: Path, variants: Sequence[Cell]) -> float:
    t0 = time.perf_counter()
    fit(cell, out, variants=variants)
    return time.perf_counter() - t0


def _fit_in_processes(cells: Sequence[Cell], out: Path, workers: int, state: dict[str, Any],
                      log: Callable[[str], None], variants: dict[str, list[Cell]]) -> set[str]:
    """``fit`` of each cell in its own process, ``workers`` at a time, the CPU threads split between them;
    returns the ids of the cells whose fit failed (recorded in ``state``)."""
    # imported here, not with the module: with them loaded, the demo's SASRec fit took ~0.3 s longer (measured
    # on the tiny demo, a one-off cost; its cause not pinned down)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    failed = set()
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads  # inherited by the spawned workers before they import torch
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = {c.id: (c, pool.submit(_timed_fit, c, out, variants.get(c.id, []))) for c in cells}
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
