"""What every analysis reads and writes: the models under study, the catalogue they were trained on, the items
probed, and the output folder (a PNG, a Markdown table and a JSON table per analysis).

A model under study is a trained run's ``RUN/model`` (a plain Hugging Face checkpoint + tokenizer) or a backbone
spec (``builtin:smollm2-135m``: the untouched base model). The data directory is the one the first run was trained
on (``RUN/env.json["data_dir"]``) unless given.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig, build_config
from ..data.dataset import Dataset
from ..errors import PauseRecError
from ..io import write_json, write_text
from ..artifacts import DataDir, RunDir
from ..sid.catalog import SIDCatalog
from ..train.grounding import split_heldout_items

BASE_NAME = "base"


@dataclass(frozen=True)
class ModelSpec:
    """One model under study: a display ``name``, the backbone spec or checkpoint directory ``path``, and the run
    directory it came from (``None`` for a bare backbone)."""

    name: str
    path: str
    run: Path | None = None


@dataclass(frozen=True)
class StudyData:
    """The catalogue the models were trained on."""

    data_dir: Path
    dataset: Dataset
    catalog: SIDCatalog


def model_specs(runs: Sequence[str | Path], base: str | None) -> list[ModelSpec]:
    """``base`` first (when given), then each run's ``RUN/model``, named after the run directory, or after as many
    of its last path parts as tell the runs apart (a grid's cells: ``direct/seed0``, ``pause-k1/seed0``).

    Raises:
        PauseRecError: a run has no trained ``model/``, or two runs are the same directory.
    """
    runs = [Path(r) for r in runs]
    for run in runs:
        if not (run / "model" / "config.json").is_file():
            raise PauseRecError(f"{run} has no trained model (no {run / 'model' / 'config.json'}): train it first")
    names = distinct_names(runs, taken={BASE_NAME} if base else set())
    return ([ModelSpec(BASE_NAME, base)] if base else []) + [
        ModelSpec(name, str(run / "model"), run) for name, run in zip(names, runs)]


def distinct_names(runs: Sequence[Path], taken: set[str] = frozenset()) -> list[str]:
    """The shortest path suffixes (same depth for all) that name every run differently and none as in ``taken``."""
    parts = [run.resolve().parts for run in runs]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names) and not taken & set(names):
            return names
    raise PauseRecError(f"two runs are the same directory: {[str(r) for r in runs]}")


def run_data_dir(run: str | Path) -> Path:
    """The data directory a run was trained on (``env.json["data_dir"]``)."""
    env = RunDir(run).env() if (Path(run) / "env.json").exists() else {}
    if not env.get("data_dir"):
        raise PauseRecError(f"{run}/env.json names no data_dir: pass --data DIR")
    return Path(env["data_dir"])


def load_study_data(runs: Sequence[str | Path], data_dir: str | Path | None) -> StudyData:
    """Dataset and SID catalogue from ``data_dir``, else from the first run's data directory."""
    if data_dir is None:
        if not runs:
            raise PauseRecError("no run given: pass --data DIR (a data directory with sids.json)")
        data_dir = run_data_dir(runs[0])
    data_dir = Path(data_dir)
    data = DataDir(data_dir)
    return StudyData(data_dir, data.dataset(), data.catalog())


def study_config(runs: Sequence[str | Path]) -> RunConfig:
    """The first run's stored config (for ``ground.heldout_items``, ``cache_dir``...), else the defaults."""
    return RunDir(runs[0]).config() if runs else build_config()


def probe_items(candidates: Sequence[int], n_items: int, heldout_fraction: float, n: int, seed: int) -> list[int]:
    """A fixed sample of ``n`` of ``candidates``, items held out of grounding first.

    The held-out items are those of :func:`pauserec.train.grounding.split_heldout_items` (``heldout_fraction``
    of ``n_items``); when fewer than ``n`` of them are candidates, the sample is filled from the other candidates.
    Both parts are drawn with ``random.Random(seed)``; the result is sorted.
    """
    allowed = set(candidates)
    heldout, seen = split_heldout_items(n_items, heldout_fraction)
    rng = random.Random(seed)
    first = [i for i in heldout if i in allowed]
    chosen = rng.sample(first, min(n, len(first)))
    rest = sorted(allowed - set(chosen))
    chosen += rng.sample(rest, min(n - len(chosen), len(rest)))
    return sorted(chosen)


def heldout_set(n_items: int, heldout_fraction: float) -> set[int]:
    return set(split_heldout_items(n_items, heldout_fraction)[0])


def load_model(spec: ModelSpec, cache_dir: str | Path) -> tuple[Any, Any]:
    """``(model in eval mode, tokenizer)`` of one model under study (float32, the inference device)."""
    import torch

    from ..model.backbone import inference_device, load_backbone

    model, tokenizer = load_backbone(spec.path, cache_dir, dtype=torch.float32)
    return model.to(inference_device()).eval(), tokenizer


def iter_models(specs: Sequence[ModelSpec], cache_dir: str | Path) -> Iterator[tuple[ModelSpec, Any, Any]]:
    """Load one model at a time (two 135M models never sit in memory together)."""
    for spec in specs:
        model, tokenizer = load_model(spec, cache_dir)
        yield spec, model, tokenizer
        del model


def default_out(runs: Sequence[str | Path], out: str | Path | None) -> Path:
    """``out``, else an ``analysis/`` folder beside the first run."""
    if out is not None:
        return Path(out)
    if not runs:
        raise PauseRecError("no run given: pass --out DIR")
    return Path(runs[0]).resolve().parent / "analysis"


def write_outputs(out: str | Path, stem: str, table: dict[str, Any], markdown: str, figure) -> dict[str, Path]:
    """Write ``OUT/STEM.json`` (``table`` and the environment: command, git revision, machine), ``OUT/STEM.md`` and
    ``OUT/STEM.png`` (``figure``), each atomically."""
    from ..report import save_figure
    from ..artifacts import environment

    out = Path(out)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    write_json(paths["json"], {**table, "environment": environment()})
    write_text(paths["md"], markdown)
    save_figure(figure, paths["png"])
    return paths
