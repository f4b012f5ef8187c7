"""One rank of the multi-rank tests (tests/test_multirank.py): ``pauserec train`` / ``pauserec eval`` as the CLI runs
them, started by ``python -m torch.distributed.run`` (or alone, as the one-process reference), with recorders.

    python tests/multirank_worker.py RECORD_DIR train|eval PAUSEREC_ARGS...

Writes ``RECORD_DIR/rank<R>.json``: the training units of every batch this rank's collator packed (each unit as a
hash of its sequences, in order), the files this rank wrote, renamed or removed under the current directory's
``run*`` folders (through Python's audit hooks), and the step training ended at. With ``STOP_ON_RANK=<R>`` the
time cap's clock of rank R alone jumps past any cap after its first reading, as if that rank's machine were slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

RECORD = {"batches": [], "writes": [], "steps": None}


def unit_hash(unit: list[dict]) -> str:
    return hashlib.sha1(json.dumps([row["input_ids"] for row in unit]).encode()).hexdigest()[:16]


def record_batches() -> None:
    from pauserec.train import packing

    call = packing.UnitCollator.__call__

    def recorded(self, units):
        RECORD["batches"].append([unit_hash(u) for u in units])
        return call(self, units)

    packing.UnitCollator.__call__ = recorded


def record_writes(watched: Path) -> None:
    """Audit hooks see every open for writing, rename, removal and new folder, whoever makes it (our code, shutil,
    Hugging Face's json / torch writers); files written by native code (safetensors) are not seen."""

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode = args[0], args[1]
            if not isinstance(path, str | os.PathLike) or not (isinstance(mode, str) and set(mode) & set("wax+")):
                return
            paths = [path]
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"):
            paths = [a for a in args[:2] if isinstance(a, str | os.PathLike)]
        else:
            return
        for p in paths:
            p = Path(os.fsdecode(p)).absolute()
            if p.is_relative_to(watched):
                RECORD["writes"].append([event, str(p.relative_to(watched))])

    sys.addaudithook(hook)


def force_stop_clock() -> None:
    from pauserec.train.trainer import StopAfter

    readings = iter([0.0])
    StopAfter.clock = staticmethod(lambda: next(readings, 1e12))


def record_steps() -> None:
    from pauserec.train import run

    fit = run.fit

    def recorded(*args, **kwargs):
        cost = fit(*args, **kwargs)
        RECORD["steps"] = cost["steps"]
        return cost

    run.fit = recorded


def main() -> None:
    record_dir, command, args = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    rank = int(os.environ.get("RANK", "0"))
    record_batches()
    record_steps()
    if os.environ.get("STOP_ON_RANK") == str(rank):
        force_stop_clock()
    record_writes(Path.cwd().absolute())
    from pauserec.cli import app

    try:
        app([command, *args], standalone_mode=False)
    finally:
        record_dir.mkdir(parents=True, exist_ok=True)
        (record_dir / f"rank{rank}.json").write_text(json.dumps(RECORD))


if __name__ == "__main__":
    main()
