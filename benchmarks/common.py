"""Shared by the benchmark scripts: how a committed result is written (JSON + Markdown beside it)."""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pauserec.io import write_json, write_text
from pauserec.artifacts import environment

RESULTS = Path(__file__).resolve().parent / "results"


def command_line() -> str:
    """The exact command that produced a result, as a user would type it from the repository root."""
    in_venv = Path(sys.prefix).resolve() == (RESULTS.parents[1] / ".venv").resolve()
    return " ".join(shlex.quote(a) for a in [".venv/bin/python" if in_venv else "python", *sys.argv])


def write_result(name: str, payload: dict[str, Any], markdown: str, machine: dict[str, Any] | None = None) -> Path:
    """``benchmarks/results/NAME.json`` (numbers + command + git revision + machine) and ``NAME.md``.

    Long benchmarks pass ``machine=environment()`` captured when they started, so the recorded git revision is
    the code that produced the numbers even if the tree changed while they ran.
    """
    record = {
        "name": name,
        "command": command_line(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine or environment(),
        **payload,
    }
    write_json(RESULTS / f"{name}.json", record)
    gpu = f", GPU {record['machine']['cuda']}" if record["machine"].get("cuda") else ", no GPU"
    header = f"# {name}\n\nCommand: `{record['command']}`  \nMachine: {record['machine']['platform']}, " \
             f"{record['machine']['cpu_count']} CPUs{gpu}, torch {record['machine']['torch']}, " \
             f"git {record['machine']['git_revision']}  \nDate: {record['date']}\n\n"
    write_text(RESULTS / f"{name}.md", header + markdown)
    return RESULTS / f"{name}.json"


def step_times(model, batches, loss_fn, bf16: bool, fused: bool = False) -> tuple[list[float], float]:
    """One training step per batch: ``loss_fn(model, batch)`` under bf16 autocast when ``bf16``, backward, AdamW
    (``fused`` as pauserec trains). Returns each step's seconds and the first step's loss."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-7, fused=fused)
    model.train()
    times, first = [], float("nan")
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        first = loss.item() if i == 0 else first
    return times, first


@dataclass
class Recipe:
    """What ``pauserec train`` builds before its first step: config, model (trainable policy applied), tokenizer, the
    SID loss normalisation, the training units (one per user chunk) and their collator."""

    cfg: Any
    model: Any
    tokenizer: Any
    softmax: Any
    units: Any
    collate: Any
    bf16: bool


def load_recipe(data: str, overrides: list[str]) -> Recipe:
    """The training setup of ``data`` under ``overrides`` (none: the default recipe), exactly as
    :func:`pauserec.train.run.train` builds it."""
    from pauserec.artifacts import DataDir
    from pauserec.config import build_config
    from pauserec.precision import bf16_enabled
    from pauserec.train.run import build_training

    cfg = build_config(overrides=overrides)
    d = DataDir(data)
    s = build_training(cfg, d.dataset(), d.catalog(), d.split(cfg))
    return Recipe(cfg, s.model, s.tokenizer, s.softmax, s.train_set, s.collator, bf16_enabled(cfg.train.bf16))
