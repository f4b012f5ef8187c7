"""Shared by the benchmark scripts: how a committed result is written (JSON + Markdown beside it), the training
setup and the real trainer loop they time, and the machine's limits (matmul rate, copy bandwidth) with the floor
formulas that turn a stage's work into its seconds at those limits."""

from __future__ import annotations

import shlex
import statistics
import sys
import tempfile
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


def matmul_rate(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """FLOP/s of ``(m, k) @ (k, n)`` in ``dtype``, best of repeated timings over about ``seconds``."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * m * k * n / best


def copy_bandwidth(mib: int = 256) -> float:
    """Bytes/s of a large fp32 ``copy_`` (read + write counted), best of 5."""
    src = torch.randn(mib * 2**18)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = min(_timed(lambda: dst.copy_(src)) for _ in range(5))
    return 2 * src.numel() * 4 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def machine_limits(hidden: int, intermediate: int) -> dict[str, float]:
    """bf16 / fp32 matmul rates at the model's shapes (256 tokens) and a square 2048 one, and copy bandwidth."""
    shapes = {"tokens x hidden @ hidden x mlp": (256, hidden, intermediate),
              "tokens x hidden @ hidden x hidden": (256, hidden, hidden), "2048^3": (2048, 2048, 2048)}
    rates = {f"{dt} {name}": matmul_rate(*s, dtype=getattr(torch, dt)) for dt in ("bfloat16", "float32")
             for name, s in shapes.items()}
    model_shapes = [v for k, v in rates.items() if k.startswith("bfloat16") and "2048" not in k]
    return {"matmul_flops": rates, "bf16_model_shapes_flops": statistics.mean(model_shapes),
            "copy_bytes_per_s": copy_bandwidth()}


def train_step_floor(tokens: float, head_logits: float, non_embedding: int, hidden: int, trainable: int,
                     limits: dict[str, float]) -> float:
    """Seconds of one training step at the machine's limit: the matmul work (6 x non-embedding parameters per real
    token, plus 6 x hidden per head logit: labelled nodes x the vocabulary columns the head computes there) at the
    bf16 matmul rate of the model's shapes, plus the optimizer's memory traffic (fused AdamW reads parameter,
    gradient and two moments and writes three: 28 bytes per trainable fp32 parameter) at the copy bandwidth."""
    flops = 6 * non_embedding * tokens + 6 * hidden * head_logits
    return flops / limits["bf16_model_shapes_flops"] + 28 * trainable / limits["copy_bytes_per_s"]


def forward_floor(tokens: float, head_logits: float, non_embedding: int, hidden: int, limits: dict[str, float]) -> float:
    """Seconds of forward passes at the machine's bf16 matmul limit: 2 x non-embedding parameters per token fed,
    plus 2 x hidden per head logit computed (no backward, no optimizer; memory traffic not counted)."""
    return (2 * non_embedding * tokens + 2 * hidden * head_logits) / limits["bf16_model_shapes_flops"]


def trainer_loop(r: Recipe, n: int) -> tuple[list[float], list[float], list[int]]:
    """The real ``SFTTrainer`` (no validation, no checkpoints) for ``n`` optimizer steps of ``r``. Returns per step
    its seconds (from its begin to the next step's begin: the Trainer's own per-step work included), the logged
    losses, and the real tokens the trainer counted in it (its ``real_tokens`` counter)."""
    from transformers import TrainerCallback

    from pauserec.train.cpu_memory import freed_memory_kept
    from pauserec.train.run import training_arguments, training_attention
    from pauserec.train.trainer import SFTTrainer

    marks: list[float] = []
    counted: list[int] = []
    trainer = None

    class Mark(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            marks.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            marks.append(time.perf_counter())
            counted.append(trainer.real_tokens)

    with tempfile.TemporaryDirectory() as tmp:
        targs = training_arguments(r.cfg, Path(tmp))
        targs.max_steps = n
        targs.save_strategy, targs.eval_strategy, targs.load_best_model_at_end = "no", "no", False
        targs.disable_tqdm = True
        trainer = SFTTrainer(model=r.model, args=targs, train_dataset=r.units, eval_dataset=[0],
                             data_collator=r.collate, validate=lambda m: {}, softmax=r.softmax, callbacks=[Mark()],
                             attention=training_attention(r.cfg))
        with freed_memory_kept(r.cfg.train.cpu_allocator == "reuse"):
            trainer.train()
    begins = marks[0::2] + [marks[-1]]
    seconds = [t1 - t0 for t0, t1 in zip(begins[:-1], begins[1:])]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    tokens = [b - a for a, b in zip([0, *counted[:-1]], counted)]
    return seconds, losses, tokens
