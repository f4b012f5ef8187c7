"""Resource accounting shared by training and evaluation, and the one cost record every run writes.

``RUN/cost.json`` has one schema for every model (:class:`CostRecord`)::

    {"schema": 2,
     "train": {"train_seconds", "peak_memory_bytes", "parameters", ...model-specific} | null,
     "pipeline": {"stages": [...], "seconds"} | null,      # an LLM arm: every stage it was built from
     "inference": {"users", "seconds", "latency_per_user_s", "users_per_second", "peak_memory_bytes",
                   "threads", "measured_at", ...model-specific (batch_size, num_beams, tokens)}}

Memory is in bytes everywhere (``peak_memory_bytes``). Records written before schema 2 gave some peaks in GB
(``peak_memory_gb``); :func:`peak_memory_gb` reads either.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

COST_SCHEMA = 2


def reset_peak_memory() -> None:
    """Start a new peak: what :func:`peak_memory_bytes` reports next covers only what runs from here on.

    Without it, evaluating right after training in one process (the demo, the arms grid) would report the
    training peak as the inference peak. On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets
    ``VmHWM`` to the current resident set; elsewhere (no such file) the CPU peak stays the process's.
    """
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_bytes() -> int:
    """Peak memory of this process: GPU allocator peak on CUDA, else the resident-set high-water mark.

    On Linux this reads ``VmHWM`` (per address space): ``ru_maxrss`` survives ``fork``/``exec`` and would report
    a parent's peak for a fresh child process.
    """
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


@dataclass(frozen=True)
class TrainCost:
    """What fitting a model cost: wall seconds, peak memory (bytes, :func:`peak_memory_bytes` over the fit),
    parameters (a count, or ``{"trainable", "total"}`` for an LLM), and model-specific ``details`` (epochs, tokens,
    the validation score that selected the model, ...)."""

    train_seconds: float
    peak_memory_bytes: int | None = None
    parameters: int | dict[str, int] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"train_seconds": self.train_seconds, "peak_memory_bytes": self.peak_memory_bytes,
                "parameters": self.parameters, **self.details}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> TrainCost:
        """A recorded training cost (e.g. an LLM run's ``train_cost.json``); other keys go to ``details``."""
        rest = {k: v for k, v in record.items() if k not in ("train_seconds", "peak_memory_bytes", "parameters")}
        return cls(float(record["train_seconds"]), record.get("peak_memory_bytes"), record.get("parameters"), rest)


@dataclass(frozen=True)
class InferenceCost:
    """What ranking the evaluated users cost: ``users`` ranked in ``seconds`` (wall), peak memory in bytes over
    the ranking, and model-specific ``details`` (batch size, beams, prefill / decode / think tokens)."""

    users: int
    seconds: float
    peak_memory_bytes: int
    details: dict[str, Any] = field(default_factory=dict)
    measured_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    def to_json(self) -> dict[str, Any]:
        return {"users": self.users, "seconds": self.seconds,
                "latency_per_user_s": self.seconds / max(self.users, 1),
                "users_per_second": self.users / max(self.seconds, 1e-9),
                "peak_memory_bytes": self.peak_memory_bytes, "threads": torch.get_num_threads(),
                "measured_at": self.measured_at, **self.details}


@dataclass(frozen=True)
class CostRecord:
    """``RUN/cost.json``: training (None where the run holds no record of it), the whole pipeline of stages a run
    was built from (LLM arms; None elsewhere), inference."""

    train: TrainCost | None
    inference: InferenceCost
    pipeline: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"schema": COST_SCHEMA, "train": self.train.to_json() if self.train else None,
                "pipeline": self.pipeline, "inference": self.inference.to_json()}


def peak_memory_gb(section: dict[str, Any] | None) -> float | None:
    """The peak memory of a ``cost.json`` section in GB: ``peak_memory_bytes``, or the ``peak_memory_gb`` of
    records written before schema 2; None where it has neither."""
    if not section:
        return None
    if section.get("peak_memory_bytes") is not None:
        return section["peak_memory_bytes"] / 1e9
    return section.get("peak_memory_gb")
