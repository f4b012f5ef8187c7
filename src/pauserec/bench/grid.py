"""A declared benchmark grid: models (x K) x datasets x seeds, each cell one normal run directory.

A grid file (YAML)::

    name: scientific
    datasets: {scientific: runs/foundation/scientific}   # prepared data directories (dataset.json + sids.json)
    seeds: [0, 1, 2]
    set: {eval.max_users: 2000, train.max_steps: 400}    # shared dotted overrides
    models:
      popularity: {}                                     # a baseline of pauserec.baselines.BASELINES
      sasrec: {set: {baseline.sasrec.epochs: 30}}        # per-model overrides on top of the shared ones
      direct: {}                                         # an LLM arm: direct, pause (with k: [..]) or cot
      pause: {k: [1, 2, 4]}
      cot-short: {arm: cot, set: {arm.max_rationale_tokens: 32}}   # a named variant of an arm

Variants of one arm (pause's K values, named variants) are compared on validation in the table, which marks the
validation-best one (:func:`.table.mark_validation_best`). Every cell's config is built (and so validated) before
anything runs: an unknown model, arm or key is one line naming it. All seeds of a grid evaluate the same users: ``eval.subset_seed`` is 0 unless the file sets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..baselines import BASELINES
from ..config import RunConfig, build_config
from ..errors import ConfigError, PauseRecError

LLM_ARMS = ("direct", "pause", "cot")


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: str | None = Field(None, description="The LLM arm a named variant runs (its model name is then free, e.g. "
                                              "cot-short); default: the model's name.")
    k: list[int] | None = Field(None, description="pause: the K values, one model per K.")
    set: dict[str, Any] = Field({}, description="Dotted overrides for this model only.")


class GridSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    datasets: dict[str, str] = Field(..., min_length=1, description="Name -> prepared data directory.")
    seeds: list[int] = Field([0], min_length=1)
    set: dict[str, Any] = Field({}, description="Dotted overrides shared by every cell.")
    models: dict[str, ModelSpec] = Field(..., min_length=1)


@dataclass(frozen=True)
class Cell:
    """One run: ``model`` (``pause-k4``, ``sasrec``) on ``dataset`` with ``seed``; ``kind`` baseline or llm."""

    model: str
    base: str
    k: int | None
    dataset: str
    data_dir: str
    seed: int
    overrides: tuple[str, ...]

    @property
    def kind(self) -> str:
        return "llm" if self.base in LLM_ARMS else "baseline"

    @property
    def id(self) -> str:
        return f"{self.dataset}/{self.model}/seed{self.seed}"

    def run_dir(self, out: Path) -> Path:
        return out / self.dataset / self.model / f"seed{self.seed}"

    def config(self) -> RunConfig:
        return build_config(overrides=list(self.overrides))


def load_grid(path: str | Path) -> GridSpec:
    """Read and validate a grid file; every problem is one line naming the file and what is wrong."""
    path = Path(path)
    if not path.exists():
        raise PauseRecError(f"grid file {path} not found")
    try:
        return GridSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {where}: {err['msg']}") from None


def expand(grid: GridSpec, source: str = "grid") -> list[Cell]:
    """All cells, each config built once here so that a bad model, arm or key fails before anything runs."""
    cells = []
    for name, spec in grid.models.items():
        base = _base(name, spec, source)
        if spec.k is not None and base != "pause":
            raise ConfigError(f"{source}: model {name!r} takes no k (only pause has K values)")
        for k in (spec.k or [None]) if base == "pause" else [None]:
            for dataset, data_dir in grid.datasets.items():
                for seed in grid.seeds:
                    cell = _cell(grid, name, base, spec, k, dataset, data_dir, seed)
                    _check(cell, source)
                    cells.append(cell)
    return cells


def _base(name: str, spec: ModelSpec, source: str) -> str:
    """The baseline or LLM arm a model runs: its ``arm:``, else its name."""
    if spec.arm is not None:
        if spec.arm not in LLM_ARMS:
            raise ConfigError(f"{source}: model {name!r}: unknown arm {spec.arm!r} (LLM arms: {', '.join(LLM_ARMS)})")
        if name in BASELINES or name in LLM_ARMS:
            raise ConfigError(f"{source}: model {name!r} with arm: needs a name of its own (e.g. {spec.arm}-long)")
        return spec.arm
    if name not in BASELINES and name not in LLM_ARMS:
        raise ConfigError(f"{source}: unknown model {name!r} (baselines: {', '.join(sorted(BASELINES))}; "
                          f"LLM arms: {', '.join(LLM_ARMS)}; a named variant needs arm:)")
    return name


RESERVED = ("seed", "arm.name", "arm.pause_tokens")  # set by the grid itself: seeds, model name, k


def _cell(grid: GridSpec, name: str, base: str, spec: ModelSpec, k: int | None, dataset: str, data_dir: str,
          seed: int) -> Cell:
    for key in RESERVED:
        if key in grid.set or key in spec.set:
            raise ConfigError(f"{key} is set by the grid (seeds:, the model's name and k:), not by an override "
                              f"(model {name!r})")
    arm = [f"arm.name={base}", *([f"arm.pause_tokens={k}"] if k is not None else [])] if base in LLM_ARMS else []
    overrides = [f"{key}={_yaml(v)}" for key, v in {**grid.set, **spec.set}.items()] + arm + [f"seed={seed}"]
    model = name if k is None else f"{name}-k{k}"
    return Cell(model, base, k, dataset, data_dir, seed, tuple(overrides))


def _check(cell: Cell, source: str) -> None:
    try:
        cell.config()
    except ConfigError as e:
        raise ConfigError(f"{source}: model {cell.model}: {' '.join(str(e).split())}") from None
    needed = ["dataset.json"] + (["sids.json"] if cell.kind == "llm" else [])
    for name in needed:
        if not (Path(cell.data_dir) / name).exists():
            raise ConfigError(f"{source}: dataset {cell.dataset!r}: {cell.data_dir} has no {name} "
                              "(a prepared data directory: pauserec prepare, then pauserec sids)")


def _yaml(value: Any) -> str:
    """A value as the YAML text ``parse_override`` reads back (lists and mappings in flow style)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
