"""A declared benchmark grid: models (x K) x datasets x seeds, each cell one normal run directory.

A grid file (YAML)::

    name: scientific
    datasets: {scientific: runs/foundation/scientific}   # prepared data directories (dataset.json + sids.json)
    seeds: [0, 1, 2]
    set: {eval.max_users: 2000, train.max_steps: 400}    # shared dotted overrides
    models:
      popularity: {}                                     # a baseline of pauserec.baselines.BASELINES
      sasrec: {set: {baseline.sasrec.epochs: 30}}        # per-model overrides on top of the shared ones
      direct: {}                                         # an LLM arm of pauserec.arms.ARMS: direct, pause, cot
      pause: {k: [1, 2, 4]}                              # k: the values of the arm's sweep key (pause: arm.pause_tokens)
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

from ..arms import ARMS
from ..baselines import BASELINES
from ..config import RunConfig, build_config
from ..errors import ConfigError, PauseRecError


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: str | None = Field(None, description="The LLM arm a named variant runs (its model name is then free, e.g. "
                                              "cot-short); default: the model's name.")
    k: list[int] | None = Field(None, description="Values of the arm's sweep key (pause: K, arm.pause_tokens), one "
                                                  "model per value.")
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
        return "llm" if self.base in ARMS else "baseline"

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
        swept = base in ARMS and ARMS[base].sweep_key is not None
        if spec.k is not None and not swept:
            raise ConfigError(f"{source}: model {name!r} takes no k (only an arm with a sweep key has k values: "
                              f"{', '.join(sorted(SWEEP_KEYS))})")
        for k in (spec.k or [None]) if swept else [None]:
            for dataset, data_dir in grid.datasets.items():
                for seed in grid.seeds:
                    cell = _cell(grid, name, base, spec, k, dataset, data_dir, seed)
                    _check(cell, source)
                    cells.append(cell)
    return cells


def _base(name: str, spec: ModelSpec, source: str) -> str:
    """The baseline or LLM arm a model runs: its ``arm:``, else its name."""
    if spec.arm is not None:
        if spec.arm not in ARMS:
            raise ConfigError(f"{source}: model {name!r}: unknown arm {spec.arm!r} (LLM arms: {', '.join(ARMS)})")
        if name in BASELINES or name in ARMS:
            raise ConfigError(f"{source}: model {name!r} with arm: needs a name of its own (e.g. {spec.arm}-long)")
        return spec.arm
    if name not in BASELINES and name not in ARMS:
        raise ConfigError(f"{source}: unknown model {name!r} (baselines: {', '.join(sorted(BASELINES))}; "
                          f"LLM arms: {', '.join(ARMS)}; a named variant needs arm:)")
    return name


#: Per arm with one, the setting a grid's ``k:`` sweeps.
SWEEP_KEYS = {name: f"arm.{arm.sweep_key}" for name, arm in ARMS.items() if arm.sweep_key is not None}
RESERVED = ("seed", "arm.name", *SWEEP_KEYS.values())  # set by the grid itself: seeds, model name, k


def _cell(grid: GridSpec, name: str, base: str, spec: ModelSpec, k: int | None, dataset: str, data_dir: str,
          seed: int) -> Cell:
    for key in RESERVED:
        if key in grid.set or key in spec.set:
            raise ConfigError(f"{key} is set by the grid (seeds:, the model's name and k:), not by an override "
                              f"(model {name!r})")
    arm = [f"arm.name={base}", *(ARMS[base].sweep(k) if k is not None else [])] if base in ARMS else []
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
