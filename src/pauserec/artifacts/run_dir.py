"""Run directories: every run stores its resolved config, its environment and its artifacts.

Layout::

    RUN/config.yaml        resolved RunConfig
    RUN/env.json           versions, machine, git revision, data directory, data / split / SID / tokenizer hashes
    RUN/lineage.json       trained runs: the upstream stages (backbone run, rationales) with paths and hashes
    RUN/metrics.json       metrics with 95% bootstrap intervals
    RUN/predictions.jsonl  one line per user: target and ranked items (external ids)
    RUN/cost.json          the cost record (:class:`pauserec.eval.cost.CostRecord`): training, inference, memory
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config import RunConfig, config_from_yaml, config_to_yaml
from ..errors import ArtifactMismatchError, PauseRecError
from ..io import read_json, stable_hash, write_json, write_text
from . import lineage as _lineage
from .data_dir import DataDir
from .provenance import environment

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

    def record_lineage(self, stages: list[dict[str, Any]]) -> None:
        """Write ``lineage.json``: the upstream stages this run is built from (:mod:`.lineage`)."""
        write_json(self.path / _lineage.FILE, {"upstream": stages})

    def lineage(self) -> list[dict[str, Any]] | None:
        """The upstream stages ``lineage.json`` records, or None for a run written before lineage was recorded."""
        path = self.path / _lineage.FILE
        return read_json(path)["upstream"] if path.exists() else None

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

    def data(self) -> DataDir:
        """The data directory a trained run was built from (``env.json``'s ``data_dir``), checked against what the
        run recorded: the prompt layout it was trained on, the dataset's and the SID catalogue's hashes."""
        from ..prompt import check_prompt_layout

        env = self.env()
        check_prompt_layout(env, f"run {self.path}")
        if "data_dir" not in env:
            raise PauseRecError(f"{self.path}/env.json names no data_dir: it is not a trained run")
        data = DataDir(env["data_dir"])
        self.check_fact("dataset_hash", data.dataset_hash())
        self.check_fact("catalog_hash", data.catalog().content_hash())
        return data

    def evaluation(self) -> dict[str, Any]:
        """``metrics.json`` (``model``, ``split``, ``metrics``) with ``cost`` (``cost.json``, empty if absent)."""
        path = self.file("metrics.json")
        if not path.exists():
            raise PauseRecError(f"{self.path} has no metrics.json: evaluate it first (pauserec eval {self.path})")
        cost = self.file("cost.json")
        return {**read_json(path), "cost": read_json(cost) if cost.exists() else {}}
