"""A declared benchmark grid: upstream stages, then models (x K) x datasets x seeds, each cell one normal run directory.

A grid file (YAML)::

    name: scientific
    preset: null                                         # the cells' base config (packaged preset or file)
    datasets: {scientific: runs/foundation/scientific}   # prepared data directories (dataset.json + sids.json)
    seeds: [0, 1, 2]
    set: {eval.max_users: 2000, train.max_steps: 400}    # shared dotted overrides
    stages:                                              # run once per dataset, before the models that use them
      ground: {run: ground, set: {train.max_steps: 300}}
      rationales: {run: rationales, set: {rationale.provider: template}}
    models:
      popularity: {}                                     # a baseline of pauserec.baselines.BASELINES
      sasrec: {set: {baseline.sasrec.epochs: 30}}        # per-model overrides on top of the shared ones
      direct: {}                                         # an LLM arm of pauserec.arms.ARMS: direct, pause, cot
      pause: {k: [1, 2, 4]}                              # k: the values of the arm's sweep key (pause: arm.pause_tokens)
      cot-short: {arm: cot, set: {arm.max_rationale_tokens: 32}}   # a named variant of an arm
      cot: {uses: {backbone: ground, rationales: rationales}}      # trained on the stages' artifacts
      pause-k4-infer: {eval_of: pause-k4, k: [0, 8]}     # eval-only: pause-k4's weights decoded with 0 and 8 pauses
      sasrec-exclude: {eval_of: sasrec, set: {eval.exclude_history: true}}   # one SASRec fit, ranked twice

Dependencies: a stage's or model's ``uses:`` maps a lineage stage (``backbone``, or one of the arm's
:attr:`~pauserec.arms.Arm.upstream_keys`) to a stage of the grid (:mod:`.stages`); an eval-only variant
(``eval_of:``) depends on its trained model of the same dataset and seed and may change only decoding settings
(``eval.*``, ``decode.*`` and the arm's :attr:`~pauserec.arms.Arm.inference_keys`; its ``k:`` sweeps the arm's
:attr:`~pauserec.arms.Arm.inference_sweep_key`). A stage runs with the grid's first seed.

Variants of one arm (pause's K values, named variants) are compared on validation in the table, which marks the
validation-best one (:func:`.table.mark_validation_best`); eval-only variants are not (they share their model's
validation). Every cell's config is built (and so validated) before anything runs: an unknown model, arm, stage or
key is one line naming it. All seeds of a grid evaluate the same users: ``eval.subset_seed`` is 0 unless the file
sets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..arms import ARMS
from ..baselines import BASELINES
from ..config import RunConfig, build_config, differing_settings
from ..errors import ConfigError, PauseRecError
from .stages import BACKBONE, STAGES


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str = Field(..., description=f"What the stage runs: {', '.join(STAGES)} (pauserec.bench.stages).")
    set: dict[str, Any] = Field({}, description="Dotted overrides for this stage only.")
    uses: dict[str, str] = Field({}, description="Lineage stage -> a stage of the grid (backbone: a ground stage).")


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: str | None = Field(None, description="The LLM arm a named variant runs (its model name is then free, e.g. "
                                              "cot-short); default: the model's name.")
    k: list[int] | None = Field(None, description="Values of the arm's sweep key (pause: K, arm.pause_tokens), one "
                                                  "model per value; for an eval-only variant, of its inference "
                                                  "sweep key (pause: arm.inference_pause_tokens).")
    set: dict[str, Any] = Field({}, description="Dotted overrides for this model only.")
    uses: dict[str, str] = Field({}, description="Lineage stage (backbone, or the arm's upstream stage, e.g. "
                                                 "rationales) -> the stage of the grid that makes it.")
    eval_of: str | None = Field(None, description="Eval-only variant: the trained model of this grid (its cell "
                                                  "name, e.g. pause-k4) whose weights it decodes, no training.")


class GridSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    preset: str | None = Field(None, description="The cells' base config: a packaged preset or a YAML file.")
    datasets: dict[str, str] = Field(..., min_length=1, description="Name -> prepared data directory.")
    seeds: list[int] = Field([0], min_length=1)
    set: dict[str, Any] = Field({}, description="Dotted overrides shared by every cell.")
    stages: dict[str, StageSpec] = Field({}, description="Upstream stages, once per dataset (the first seed).")
    models: dict[str, ModelSpec] = Field(..., min_length=1)


@dataclass(frozen=True)
class Cell:
    """One run: ``model`` (``pause-k4``, ``sasrec``, a stage's name) on ``dataset`` with ``seed``; ``kind`` stage,
    baseline or llm. ``stage``: the stage kind a stage cell runs; ``source``: the trained cell an eval-only variant
    decodes; ``needs``: the ids of the cells it waits for; ``defaults``: the base config tree (None: the defaults)."""

    model: str
    base: str
    k: int | None
    dataset: str
    data_dir: str
    seed: int
    overrides: tuple[str, ...]
    defaults: dict[str, Any] | None = field(default=None, repr=False)
    stage: str | None = None
    source: Cell | None = field(default=None, repr=False)
    needs: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "stage" if self.stage else "llm" if self.base in ARMS else "baseline"

    @property
    def id(self) -> str:
        return f"{self.dataset}/{self.model}" if self.stage else f"{self.dataset}/{self.model}/seed{self.seed}"

    def run_dir(self, out: Path) -> Path:
        return out / self.dataset / self.model if self.stage else out / self.dataset / self.model / f"seed{self.seed}"

    def config(self) -> RunConfig:
        return build_config(overrides=list(self.overrides), base=self.defaults)


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


def expand(grid: GridSpec, source: str = "grid", defaults: RunConfig | None = None,
           out: str | Path | None = None) -> list[Cell]:
    """All cells (stages first, then trained models, then eval-only variants), each config built once here so that
    a bad model, arm, stage or key fails before anything runs. ``defaults``: the cells' base config, replacing the
    grid's ``preset:`` (what ``pauserec demo --preset/--set`` built); ``out``: the grid folder, where the stages'
    artifacts that ``uses:`` names will be (needed only by a grid with ``uses:``)."""
    tree = defaults.model_dump(mode="json") if defaults is not None else (
        build_config(grid.preset).model_dump(mode="json") if grid.preset else None)
    ctx = _Context(grid, source, None if out is None else Path(out))
    stages = {name: _stage_cells(ctx, name, spec, tree) for name, spec in grid.stages.items()}
    cells = [c for group in stages.values() for c in group]
    trained, variants = [], {}
    for name, spec in grid.models.items():
        if name in grid.stages:
            raise ConfigError(f"{source}: {name!r} is both a stage and a model: give them different names")
        if spec.eval_of is not None:
            variants[name] = spec
            continue
        base = _base(name, spec, source)
        swept = base in ARMS and ARMS[base].sweep_key is not None
        if spec.k is not None and not swept:
            raise ConfigError(f"{source}: model {name!r} takes no k (only an arm with a sweep key has k values: "
                              f"{', '.join(sorted(SWEEP_KEYS))})")
        for k in (spec.k or [None]) if swept else [None]:
            for dataset, data_dir in grid.datasets.items():
                for seed in grid.seeds:
                    cell = _cell(ctx, name, base, spec, k, dataset, data_dir, seed, tree)
                    _check(cell, source)
                    trained.append(cell)
    cells += trained
    for name, spec in variants.items():
        cells += _variant_cells(name, spec, trained, source)
    names = [c.model for c in cells if not c.stage]
    if dup := next((n for n in names if n in grid.stages), None):
        raise ConfigError(f"{source}: model {dup!r} has the name of a stage: give them different names")
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
EVAL_ONLY = ("eval.", "decode.")  # the settings any eval-only variant may change (beside its arm's inference_keys)


def _reserved(grid: GridSpec, overrides: dict[str, Any], what: str) -> None:
    for key in RESERVED:
        if key in grid.set or key in overrides:
            raise ConfigError(f"{key} is set by the grid (seeds:, the model's name and k:), not by an override "
                              f"({what})")


def _overrides(*settings: dict[str, Any]) -> list[str]:
    merged = {k: v for s in settings for k, v in s.items()}
    return [f"{key}={_yaml(v)}" for key, v in merged.items()]


@dataclass(frozen=True)
class _Context:
    grid: GridSpec
    source: str
    out: Path | None


def _stage_cells(ctx: _Context, name: str, spec: StageSpec, tree: dict | None) -> list[Cell]:
    """One cell per dataset, run with the grid's first seed."""
    grid, source = ctx.grid, ctx.source
    if spec.run not in STAGES:
        raise ConfigError(f"{source}: stage {name!r}: unknown run {spec.run!r} (stages: {', '.join(STAGES)})")
    _reserved(grid, spec.set, f"stage {name!r}")
    if extra := sorted(set(spec.uses) - {BACKBONE}):
        raise ConfigError(f"{source}: stage {name!r} uses {extra[0]!r}: a stage uses only a backbone")
    cells = []
    for dataset, data_dir in grid.datasets.items():
        uses, needs = _uses(ctx, spec.uses, spec.set, None, dataset, f"stage {name!r}")
        overrides = _overrides(grid.set, spec.set, uses) + [f"seed={grid.seeds[0]}"]
        cell = Cell(name, spec.run, None, dataset, data_dir, grid.seeds[0], tuple(overrides), tree, stage=spec.run,
                    needs=needs)
        _check(cell, source)
        cells.append(cell)
    return cells


def _uses(ctx: _Context, uses: dict[str, str], own: dict[str, Any], arm: str | None, dataset: str, what: str
          ) -> tuple[dict[str, str], tuple[str, ...]]:
    """The config settings a ``uses:`` mapping makes (``model.backbone``, ``arm.<upstream key>``: the stage's
    artifact under the grid folder) and the ids of the stage cells it waits for."""
    grid, source = ctx.grid, ctx.source
    settings, needs = {}, []
    if uses and ctx.out is None:
        raise ValueError("expand needs the grid folder (out=) for a grid with uses:")
    keys = ARMS[arm].upstream_keys if arm in ARMS else {}
    for slot, stage in uses.items():
        if stage not in grid.stages:
            raise ConfigError(f"{source}: {what} uses {stage!r}, which is not a stage of the grid "
                              f"(stages: {', '.join(grid.stages) or '-'})")
        kind = STAGES[grid.stages[stage].run]
        if slot != BACKBONE and slot not in keys:
            raise ConfigError(f"{source}: {what}: no upstream stage {slot!r} (its uses: backbone"
                              f"{''.join(', ' + k for k in keys)})")
        if kind.provides != slot:
            raise ConfigError(f"{source}: {what} uses {stage!r} as its {slot}, but a {grid.stages[stage].run} "
                              f"stage makes a {kind.provides}")
        key = "model.backbone" if slot == BACKBONE else f"arm.{keys[slot]}"
        if key in own:  # over the shared set: a model uses its stage, the others the shared backbone
            raise ConfigError(f"{source}: {what}: {key} is set by uses: {{{slot}: {stage}}}, not by an override")
        settings[key] = kind.artifact_path(ctx.out / dataset / stage)
        needs.append(f"{dataset}/{stage}")
    return settings, tuple(needs)


def _cell(ctx: _Context, name: str, base: str, spec: ModelSpec, k: int | None, dataset: str, data_dir: str,
          seed: int, tree: dict | None) -> Cell:
    grid = ctx.grid
    _reserved(grid, spec.set, f"model {name!r}")
    uses, needs = _uses(ctx, spec.uses, spec.set, base, dataset, f"model {name!r}")
    arm = [f"arm.name={base}", *(ARMS[base].sweep(k) if k is not None else [])] if base in ARMS else []
    overrides = _overrides(grid.set, spec.set, uses) + arm + [f"seed={seed}"]
    model = name if k is None else f"{name}-k{k}"
    return Cell(model, base, k, dataset, data_dir, seed, tuple(overrides), tree, needs=needs)


def _variant_cells(name: str, spec: ModelSpec, trained: list[Cell], source: str) -> list[Cell]:
    """The eval-only variant ``name`` of each of its trained model's cells, per inference value of ``k:``."""
    sources = [c for c in trained if c.model == spec.eval_of]
    if not sources:
        names = ", ".join(dict.fromkeys(c.model for c in trained))
        raise ConfigError(f"{source}: model {name!r}: eval_of {spec.eval_of!r} is not a trained model of the grid "
                          f"(models: {names})")
    if spec.arm is not None or spec.uses:
        raise ConfigError(f"{source}: model {name!r} is eval-only (eval_of): it takes no arm: or uses:")
    arm = ARMS.get(sources[0].base)
    sweep = arm.inference_sweep_key if arm is not None else None
    if spec.k is not None and sweep is None:
        raise ConfigError(f"{source}: model {name!r} takes no k (an eval-only variant's k: sweeps its arm's "
                          f"inference setting; {sources[0].base} has none)")
    for key in ("seed", "arm.name", *([f"arm.{sweep}"] if spec.k is not None else [])):
        if key in spec.set:
            raise ConfigError(f"{key} is set by the grid (seeds:, eval_of: and k:), not by an override "
                              f"(model {name!r})")
    allowed = (*EVAL_ONLY, *(f"arm.{key}" for key in (arm.inference_keys if arm is not None else ())))
    cells = []
    for src in sources:
        for k in spec.k or [None]:
            overrides = [*src.overrides, *_overrides(spec.set), *(arm.sweep(k, inference=True) if k is not None else [])]
            model = name if k is None else f"{name}-k{k}"
            cell = Cell(model, src.base, k, src.dataset, src.data_dir, src.seed, tuple(overrides), src.defaults,
                        source=src, needs=(src.id,))
            _check(cell, source)
            changed = [key for key in differing_settings([src.config(), cell.config()])[0]
                       if not key.startswith(allowed)]
            if changed:
                raise ConfigError(f"{source}: model {name!r} (eval_of {spec.eval_of}) changes {', '.join(changed)}, "
                                  f"which training depends on: an eval-only variant changes only "
                                  f"{', '.join(k.rstrip('.') + ('*' if k.endswith('.') else '') for k in allowed)}")
            cells.append(cell)
    return cells


def _check(cell: Cell, source: str) -> None:
    try:
        cell.config()
    except ConfigError as e:
        raise ConfigError(f"{source}: {'stage' if cell.stage else 'model'} {cell.model}: {' '.join(str(e).split())}"
                          ) from None
    sids = STAGES[cell.stage].needs_sids if cell.stage else cell.kind == "llm"
    for name in ["dataset.json"] + (["sids.json"] if sids else []):
        if not (Path(cell.data_dir) / name).exists():
            raise ConfigError(f"{source}: dataset {cell.dataset!r}: {cell.data_dir} has no {name} "
                              "(a prepared data directory: pauserec prepare, then pauserec sids)")


def _yaml(value: Any) -> str:
    """A value as the YAML text ``parse_override`` reads back (lists and mappings in flow style)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
