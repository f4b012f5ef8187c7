"""A trained run's model, loaded the one way evaluation and serving share, with every check.

:func:`load_trained` checks the run's prompt layout, the dataset and SID catalogue hashes (:meth:`RunDir.data`) and
the tokenizer's hash against the one training recorded; what is served is then exactly what was evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from .data_dir import DataDir
from .run_dir import RunDir, tokenizer_hash


@dataclass
class TrainedRun:
    """A trained run directory, loaded: its config (stored, or the caller's), checked data directory, model
    (``RUN/model``, on the CPU, eval mode not set) and tokenizer."""

    run: RunDir
    cfg: RunConfig
    data: DataDir
    model: Any
    tokenizer: Any


def load_trained(run_dir: str | Path, cfg: RunConfig | None = None, record_tokenizer: bool = False,
                 weights: str | Path | None = None) -> TrainedRun:
    """Load ``run_dir`` (``cfg`` defaults to its stored config). ``record_tokenizer``: write the tokenizer hash into
    ``env.json`` when training did not (the first evaluation of an older run), else only check it. ``weights``: one
    of the run's Trainer checkpoints (``RUN/checkpoints/checkpoint-N``, model and tokenizer) to load instead of
    ``RUN/model``, e.g. for a selection study; its tokenizer is checked against the run's like the model's."""
    from ..model.backbone import load_backbone

    run = RunDir(run_dir)
    cfg = cfg or run.config()
    data = run.data()
    model, tokenizer = load_backbone(str(weights or run.file("model")), cfg.cache_dir)
    (run.pin_fact if record_tokenizer else run.check_fact)("tokenizer_hash", tokenizer_hash(tokenizer))
    return TrainedRun(run, cfg, data, model, tokenizer)
