"""Run directories: every run stores its resolved config, its environment and its artifacts.

Layout::

    RUN/config.yaml        resolved RunConfig
    RUN/env.json           versions, machine, git revision, data and SID hashes
    RUN/metrics.json       metrics with 95% bootstrap intervals
    RUN/predictions.jsonl  one line per user: target and ranked items (external ids)
    RUN/cost.json          wall times, tokens, latency, memory
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import RunConfig, config_from_yaml, config_to_yaml
from .errors import ArtifactMismatchError, PauseRecError
from .io import read_json, stable_hash, write_json, write_text

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def git_revision() -> str | None:
    """The git revision of the pauserec code running in this process (``+dirty`` when it had uncommitted
    changes), if it comes from a checkout.

    Read once, when this module is first imported: a long run (a grid that trains arm after arm) records the
    code it loaded, not commits made while it ran. ``$PAUSEREC_GIT_REVISION``, when set, wins: a copy of the
    tree shipped to another machine may carry no ``.git`` or a stale one.
    """
    return os.environ.get("PAUSEREC_GIT_REVISION") or _REVISION_AT_IMPORT


def _checkout_revision() -> str | None:
    # generous timeouts: on a loaded machine (a training beside the tests, memory pressure) `git status` took > 5 s,
    # and a run would have recorded no revision at all
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=60,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


_REVISION_AT_IMPORT = _checkout_revision()


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every run and benchmark result."""
    import numpy
    import torch
    import transformers

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_revision": git_revision(),
        "command": " ".join(sys.argv),
    }


_FACTS = {
    "dataset_hash": "dataset (DATA/dataset.json)",
    "catalog_hash": "SID catalogue (DATA/sids.json)",
    "split_hash": "train/valid/test split",
    "tokenizer_hash": "tokenizer (RUN/model)",
}


def tokenizer_hash(tokenizer: Any) -> str:
    """Content hash of a tokenizer's vocabulary (every token and its id, added tokens included)."""
    return stable_hash(sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]))


class RunDir:
    """A directory holding one run's config, environment and artifacts."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | os.PathLike, cfg: RunConfig, **facts: Any) -> RunDir:
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        write_text(run.path / "config.yaml", config_to_yaml(cfg))
        write_json(run.path / "env.json", {**environment(), **facts})
        return run

    def config(self) -> RunConfig:
        path = self.path / "config.yaml"
        if not path.exists():
            raise PauseRecError(f"{self.path} is not a run directory (no config.yaml)")
        return config_from_yaml(path)

    def env(self) -> dict[str, Any]:
        return read_json(self.path / "env.json")

    def check_fact(self, key: str, expected: str) -> None:
        """Refuse to mix artifacts: e.g. a run trained on another dataset, SID catalogue or tokenizer."""
        found = self.env().get(key)
        if found is not None and found != expected:
            what = _FACTS.get(key, key)
            raise ArtifactMismatchError(
                f"run {self.path} was made with {key}={found}, but the {what} in use now has {expected}: "
                f"it changed since; use the {what} the run was made with, or train again"
            )

    def pin_fact(self, key: str, value: str) -> None:
        """:meth:`check_fact`, and record ``value`` in ``env.json`` when the run has none yet (first use)."""
        env = self.env()
        if key not in env:
            write_json(self.path / "env.json", {**env, key: value})
        self.check_fact(key, value)

    def file(self, name: str) -> Path:
        return self.path / name

    def evaluation(self) -> dict[str, Any]:
        """``metrics.json`` (``model``, ``split``, ``metrics``) with ``cost`` (``cost.json``, empty if absent)."""
        path = self.file("metrics.json")
        if not path.exists():
            raise PauseRecError(f"{self.path} has no metrics.json: evaluate it first (pauserec eval {self.path})")
        cost = self.file("cost.json")
        return {**read_json(path), "cost": read_json(cost) if cost.exists() else {}}
