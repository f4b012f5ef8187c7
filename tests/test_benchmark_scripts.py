"""The benchmark scripts are not part of the package, so nothing else imports them: these tests keep them from
rotting silently when the package they call changes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py"))


def load(script: Path) -> ModuleType:
    """Import a script as a module (its ``main`` does not run); its folder goes on the path for ``common``."""
    sys.path.insert(0, str(script.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_script_{script.stem}", script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(script.parent))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_every_benchmark_script_imports(script: Path) -> None:
    load(script)


def test_time_to_quality_trains_the_baseline_once_and_every_other_recipe_once_per_seed() -> None:
    ttq = load(BENCHMARKS / "time_to_quality.py")
    groups = ttq.seeded_runs([["committed", "train.lr=1e-3"], ["new", "train.batch_size=8"]], "committed", [0, 1, 2])
    assert groups == {"committed": {"committed": "train.lr=1e-3"},
                      "new": {"new": "train.batch_size=8", "new-s1": "train.batch_size=8 seed=1",
                              "new-s2": "train.batch_size=8 seed=2"}}
    for overrides in groups["new"].values():  # every override must be one the config accepts
        ttq.build_config(overrides=overrides.split())
