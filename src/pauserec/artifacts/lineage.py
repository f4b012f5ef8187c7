"""Stage lineage: the artifacts of earlier stages a run was built from, recorded in ``RUN/lineage.json``.

A run names two kinds of upstream stage:

* ``backbone``: its ``model.backbone`` when that is another run's selected model (``OTHER_RUN/model``, e.g. the
  grounding stage of the explicit-CoT pipeline); the record has ``run``, that run's directory;
* the arm's own (:meth:`pauserec.arms.Arm.upstream_stages`), e.g. ``rationales``, the acquisition directory the cot
  arm trains on.

Each record holds the stage's name, its path (absolute) and the SHA-256 of its content at training time, so that a
later reader (the pipeline cost, a reviewer) follows what the run was built from instead of guessing from paths,
and can tell when an upstream artifact changed since.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io import file_sha256

FILE = "lineage.json"


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a directory's files (relative names and contents, sorted; hidden files skipped)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(f"{f.relative_to(path).as_posix()}\0{file_sha256(f)}\0".encode())
    return h.hexdigest()


def backbone_run(backbone: str) -> Path | None:
    """The run directory whose selected model ``backbone`` is (``RUN/model`` beside ``RUN/config.yaml`` and
    ``RUN/env.json``), or None (a Hugging Face name, a builtin, a plain checkpoint)."""
    path = Path(backbone)
    run = path.parent
    if path.name == "model" and path.is_dir() and (run / "config.yaml").exists() and (run / "env.json").exists():
        return run.resolve()
    return None


def upstream_stages(backbone: str, arm_stages: Mapping[str, str | os.PathLike], *, hashed: bool = True
                    ) -> list[dict[str, Any]]:
    """The lineage records of a run: its backbone run (if any) and its arm's upstream stages, each
    ``{"stage", "path", "sha256"}`` (``run`` too for the backbone; ``sha256`` None when not ``hashed`` or when
    the path does not exist)."""
    records = []
    run = backbone_run(backbone)
    if run is not None:
        records.append({**_record("backbone", Path(backbone), hashed), "run": str(run)})
    records.extend(_record(stage, Path(path), hashed) for stage, path in arm_stages.items())
    return records


def _record(stage: str, path: Path, hashed: bool) -> dict[str, Any]:
    digest = content_hash(path) if hashed and path.exists() else None
    return {"stage": stage, "path": str(path.resolve()), "sha256": digest}
