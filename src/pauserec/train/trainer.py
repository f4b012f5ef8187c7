"""Hugging Face Trainer with our loss (LM head only over the SID window) and decoder-based validation.

Everything else — optimiser, schedule, bf16 autocast, gradient accumulation, checkpoints, resume,
multi-GPU / FSDP / DeepSpeed through accelerate — is the Trainer's own.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import get_length_grouped_indices

from .. import dist
from ..errors import DivergedError, PauseRecError
from ..io import write_text
from ..eval.metrics import compute_metrics, distinct_lists
from .batches import IGNORE, LevelSoftmax, label_window_nll
from .packing import attention_implementation, tree_nll
from .vocab_rows import trained_rows

VALIDATION_METRICS = ("recall@10", "ndcg@10")  # computed at every validation, logged as eval_<name>
# Model selection reads NDCG@10: on a few hundred validation users Recall@10 moves in steps of 1/users, so two
# checkpoints often tie and Hugging Face keeps the first of equal bests (an undertrained step-50 model won a 400-step
# run that way); NDCG@10 rarely ties and also rewards a hit ranked higher.
SELECTION_METRIC = "ndcg@10"
# A validation where fewer than this share of users get a top-10 list of their own is logged as a warning: the model
# is not reading the history (untrained, or collapsed to one list for everyone, as `pause` did at lr 1e-3 on a
# 57-step warm-up; docs/training.md). Healthy models give ~every user their own list (1,989 of 2,000 on Scientific).
COLLAPSE_SHARE = 0.1
CHECKPOINT_COMPLETE = "pauserec-complete"  # written last into a checkpoint directory, atomically
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class _TiedHeadIsNotMissing(logging.Filter):
    """Drop Trainer's "missing keys in the checkpoint: ['lm_head.weight']" when reloading the best checkpoint:
    with tied embeddings the head *is* the input embedding, which the checkpoint holds; the warning reads like a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "missing keys in the checkpoint model loaded: ['lm_head.weight']" not in record.getMessage()


_trainer_logger = logging.getLogger("transformers.trainer")
if not any(isinstance(f, _TiedHeadIsNotMissing) for f in _trainer_logger.filters):
    _trainer_logger.addFilter(_TiedHeadIsNotMissing())


class SeededSampler(torch.utils.data.Sampler[int]):
    """The training order as a function of ``seed`` and the epoch only, never of the global RNG.

    Hugging Face's samplers draw their permutation from the global torch RNG (``LengthGroupedSampler``) or from
    ``torch.random.initial_seed()`` (accelerate's seedable ``RandomSampler``), so anything that consumes or reseeds
    the global RNG before training (model init, an arm's extra rows, dropout) changes the batches: two arms with one
    seed could train on different orders, and a resumed run relies on the restored RNG state. Here epoch ``e`` is a
    permutation drawn from a private generator seeded with ``(seed, e)``; with ``lengths`` it is Hugging Face's
    length-grouped order (mega-batches of similar lengths) drawn from that generator.

    Args:
        n: dataset size.
        seed: the run's seed (``cfg.seed``).
        lengths: per item, its length (``group_by_length``), or None for a plain permutation.
        group_size: examples per optimizer step (batch size x gradient accumulation), for length grouping.
    """

    def __init__(self, n: int, seed: int, lengths: list[int] | None = None, group_size: int = 1):
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"{len(lengths)} lengths for {n} items")
        self.n, self.seed, self.lengths, self.group_size = n, seed, lengths, group_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer (through accelerate) before each epoch, a resumed one included."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def order(self, epoch: int) -> list[int]:
        """The item order of ``epoch``."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.lengths is None:
            return torch.randperm(self.n, generator=generator).tolist()
        return list(get_length_grouped_indices(self.lengths, self.group_size, generator=generator))

    def __iter__(self):
        return iter(self.order(self.epoch))


class SFTTrainer(Trainer):
    """``validate(model) -> {"recall@10": ..., "ndcg@10": ...}`` (see :func:`validation_scores`) replaces Trainer's loss-based evaluation; ``softmax`` (optional)
    normalises SID labels over their level's tokens.

    Batches are either padded examples (:class:`~.batches.RightPadCollator`) or prefix-tree rows
    (:class:`~.packing.PrefixTreeCollator`, recognised by their ``parents``). It counts the tokens it trains on:
    ``real_tokens`` (positions computed, without padding) and ``padded_tokens`` (all positions), and the training examples (target items) it saw, ``examples_seen``.

    With ``softmax`` each logged ``loss`` comes with its two parts since the previous log (every rank's tokens):
    ``sid_loss`` over SID labels and ``lead_loss`` over the other labels (a cot rationale and ``</think>``, a
    grounding task's text), so an easy rationale cannot hide an SID loss that does not fall.
    """

    # compute_loss divides each micro-batch's weighted NLL sum by the label weight of the whole optimizer step (all
    # accumulated micro-batches, all ranks: `num_items_in_batch`, see _get_num_items_in_batch) times the world size
    # (DDP / FSDP average the ranks' gradients): the loss is already scaled for accumulation, and N ranks compute the
    # gradient of the one-process mean over the same global batch
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *args,
        validate: Callable[[torch.nn.Module], dict[str, float]],
        softmax: LevelSoftmax | None = None,
        attention: str | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.validate = validate
        self.softmax = softmax
        self.attention = attention  # the attention implementation of packed training forwards (train.attention)
        self.real_tokens = 0
        self.padded_tokens = 0
        self.examples_seen = 0
        self._started: float | None = None
        self._validation_seconds = 0.0
        self._clock_before = 0.0  # training seconds spent before a resumed checkpoint
        self.wall_before = 0.0  # wall seconds (validation included) spent before a resumed checkpoint
        self.counted_from_step = 0  # the step the token and example counts start at (> 0: resumed, not logged)
        self._parts: torch.Tensor | None = None  # (4,) NLL sum and weight of SID labels, then of the others

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        self._started, self._validation_seconds = time.perf_counter(), 0.0
        if resume_from_checkpoint is True and Path(self.args.output_dir).is_dir():  # "the latest", HF's shorthand
            resume_from_checkpoint = last_complete_checkpoint(Path(self.args.output_dir))
        elif isinstance(resume_from_checkpoint, str | Path):
            resume_from_checkpoint = last_complete_checkpoint(Path(resume_from_checkpoint).parent)
        if resume_from_checkpoint:
            self._restore_progress(progress_at(Path(resume_from_checkpoint)))
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _restore_progress(self, before: Progress) -> None:
        """Go on from a checkpoint's clocks and counts, so a resumed run's cost covers the whole run. The logged
        counts are sums over the ranks: rank 0 goes on from them, the others from 0 (see :meth:`global_counts`)."""
        self._clock_before, self.wall_before = before.clock, before.wall
        if dist.is_main():
            self.real_tokens, self.padded_tokens = before.real_tokens, before.padded_tokens
            self.examples_seen = before.examples_seen
        self.counted_from_step = before.counted_from_step

    def global_counts(self) -> dict[str, int]:
        """The :data:`PROGRESS_COUNTS` summed over the ranks (this process's own in one process); a collective:
        every rank must call it."""
        totals = dist.all_reduce([getattr(self, c) for c in PROGRESS_COUNTS])
        return {c: int(v) for c, v in zip(PROGRESS_COUNTS, totals)}

    def _save_checkpoint(self, model, trial) -> None:
        """Hugging Face writes a checkpoint in place, file by file; the marker written last says it is whole."""
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            write_text(folder / CHECKPOINT_COMPLETE, f"{self.state.global_step}\n")

    def _get_train_sampler(self, train_dataset=None) -> torch.utils.data.Sampler | None:
        """:class:`SeededSampler` for ``random`` and ``group_by_length``: the batch order depends on the seed only."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        strategy = self.args.train_sampling_strategy
        if dataset is None or not hasattr(dataset, "__len__") or strategy not in ("random", "group_by_length"):
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        lengths = [len(dataset[i]["input_ids"]) for i in range(len(dataset))] if strategy == "group_by_length" else None
        group = self.args.train_batch_size * self.args.gradient_accumulation_steps * dist.world_size()  # global
        return SeededSampler(len(dataset), seed, lengths, group)

    def create_optimizer(self):
        """Hugging Face's optimizer; with ``train.vocab_rows=active`` the trained rows are written back into the
        vocabulary matrix after every step (so validation and checkpoints read the matrix as it would be)."""
        optimizer = super().create_optimizer()
        table = trained_rows(self.model)
        if table is not None:
            optimizer.register_step_post_hook(lambda *_: table.write_back())
        return optimizer

    def training_seconds(self) -> float:
        """Training wall time so far, without the time spent validating; a resumed run goes on from the clock of
        its checkpoint (so time to quality is not reset by an interruption; the time lost to it is not counted)."""
        return self._clock_before + time.perf_counter() - (self._started or time.perf_counter()) - self._validation_seconds

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor:
        """The label weight of one optimizer step: its micro-batches' label weights (:func:`label_weight`),
        summed over the ranks, so every rank divides by the same global count (float32, exact below 2**24)."""
        local = sum(float(label_weight(b)) for b in batch_samples)
        return torch.tensor(dist.all_reduce([local])[0], dtype=torch.float32, device=device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "parents" in inputs:
            with attention_implementation(model, self.attention):
                nll, target, w = tree_nll(model, inputs, self.softmax)
            self.real_tokens += int(inputs["real_tokens"])
            self.examples_seen += int(inputs["n_sequences"])
            self.padded_tokens += inputs["input_ids"].numel()
        else:
            nll, target, w = label_window_nll(model, inputs, self.softmax)
            self.real_tokens += int(inputs["attention_mask"].sum())
            self.examples_seen += inputs["input_ids"].shape[0]
            self.padded_tokens += inputs["attention_mask"].numel()
        # the mean over the step's global batch: (nll * w).sum() / w.sum() in one process without accumulation
        per_rank = w.sum() if num_items_in_batch is None else num_items_in_batch / dist.world_size()
        loss = (nll * w).sum() / per_rank
        self._add_parts(nll.detach(), target, w)
        return (loss, None) if return_outputs else loss

    def _add_parts(self, nll: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> None:
        if self.softmax is None:
            return
        is_sid = self.softmax.is_sid(target).to(nll.dtype)
        weighted = nll * w
        parts = torch.stack([(weighted * is_sid).sum(), (w * is_sid).sum(),
                             (weighted * (1 - is_sid)).sum(), (w * (1 - is_sid)).sum()])
        self._parts = parts if self._parts is None else self._parts + parts  # on the device: no sync per step

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._parts is not None:
            sid, sid_w, lead, lead_w = dist.all_reduce(self._parts.tolist())  # over the ranks' tokens
            parts = {"sid_loss": sid / sid_w if sid_w else None, "lead_loss": lead / lead_w if lead_w else None}
            logs = {**logs, **{k: round(v, 4) for k, v in parts.items() if v is not None}}
            self._parts = None
        super().log(logs, *args, **kwargs)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        t0 = time.perf_counter()
        train_seconds = self.training_seconds()
        try:
            with dist.full_weights(self.model, self.deepspeed) as whole:  # FSDP / ZeRO-3: the decoder reads them
                metrics = {f"{metric_key_prefix}_{k}": v for k, v in self.validate(whole).items()}
        finally:
            self.model.train(was_training)
            self._validation_seconds += time.perf_counter() - t0
        warn_if_collapsed(metrics.get(f"{metric_key_prefix}_distinct_lists"), self.state.global_step)
        metrics[f"{metric_key_prefix}_train_seconds"] = train_seconds  # the time-to-quality clock
        metrics[f"{metric_key_prefix}_wall_seconds"] = self.wall_before + time.perf_counter() - (self._started or t0)
        for counter, total in self.global_counts().items():  # logged with the clocks: a resumed run restores them
            metrics[f"{metric_key_prefix}_{counter}"] = total
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def label_weight(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss weight a batch carries (what :meth:`SFTTrainer.compute_loss` sums its NLL over): prefix-tree
    rows' ``label_weights`` (0 at unlabelled nodes), or the count of labelled positions of padded rows."""
    if "parents" in batch:
        return batch["label_weights"].sum()
    return (batch["labels"] != IGNORE).sum()


def sharded_validation(decode: Callable[[int, int], tuple[list[list[int]], float]],
                       targets: list[int]) -> dict[str, float]:
    """:func:`validation_scores` of all ``targets`` with the decoding split over the ranks: ``decode(start, stop)``
    ranks users ``[start, stop)`` (this rank's share) and returns ``(lists, seconds)``; the lists are gathered in
    order, so every rank scores every user and takes the same selection decision (``val_seconds``: the slowest
    rank's). In one process: ``decode(0, len(targets))``."""
    start, stop = dist.shard_bounds(len(targets), dist.world_size(), dist.rank())
    items, seconds = decode(start, stop) if stop > start else ([], 0.0)
    return validation_scores(dist.gather_shards(items), targets, dist.all_reduce([seconds], "max")[0])


def validation_scores(ranked: list[list[int]], targets: list[int], seconds: float) -> dict[str, float]:
    """The validation log entry: each of :data:`VALIDATION_METRICS` (mean over users), ``distinct_lists`` (distinct
    top-10 lists / users: 1/users when the model gives everyone the same list) and the decoding time."""
    metrics = compute_metrics(ranked, targets, [10], bootstrap=0)
    share = distinct_lists(ranked, 10) / max(len(ranked), 1)
    return {**{name: metrics[name]["mean"] for name in VALIDATION_METRICS}, "distinct_lists": share,
            "val_seconds": seconds}


def warn_if_collapsed(distinct_lists: float | None, step: int) -> None:
    """Log a warning when validation's share of distinct top-10 lists is below :data:`COLLAPSE_SHARE`."""
    if distinct_lists is not None and distinct_lists < COLLAPSE_SHARE:
        logging.getLogger(__name__).warning(
            "step %d: only %.1f%% of validation users get a top-10 list of their own: the model is not reading the "
            "history (too early, or collapsed to one list for everyone; a lower train.lr helps, docs/training.md)",
            step, 100 * distinct_lists)


def best_validation(log_history: list[dict], best_step: int | None) -> dict[str, float]:
    """``{"best_val_recall@10": ..., "best_val_ndcg@10": ...}`` at the selected step (None where not validated)."""
    entry = next((e for e in log_history if e.get("step") == best_step and f"eval_{SELECTION_METRIC}" in e), {})
    return {f"best_val_{name}": entry.get(f"eval_{name}") for name in VALIDATION_METRICS}


PROGRESS_COUNTS = ("real_tokens", "padded_tokens", "examples_seen")


class Progress(NamedTuple):
    """How far a run had got at a checkpoint: ``clock`` (training seconds, validation excluded), ``wall`` (seconds,
    validation included), the :data:`PROGRESS_COUNTS`, and ``counted_from_step``: 0, or the checkpoint's step where
    it predates logged counts (the resumed run then counts from there)."""

    clock: float = 0.0
    wall: float = 0.0
    real_tokens: int = 0
    padded_tokens: int = 0
    examples_seen: int = 0
    counted_from_step: int = 0


def progress_at(checkpoint: Path) -> Progress:
    """The :class:`Progress` logged at the validation of ``checkpoint``'s step (checkpoints are saved right after
    one): ``eval_train_seconds``, ``eval_wall_seconds`` (for a checkpoint from before that was logged: the clock plus
    the validations' decoding seconds) and ``eval_<count>``. Where nothing was logged: zeros, counted from the
    checkpoint's step."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return Progress()
    step = state.get("global_step", -1)
    logged = [e for e in state.get("log_history", []) if "eval_train_seconds" in e and e.get("step", -1) <= step]
    if not logged:
        return Progress(counted_from_step=max(step, 0))
    clock = max(e["eval_train_seconds"] for e in logged)
    wall = max((e["eval_wall_seconds"] for e in logged if "eval_wall_seconds" in e),
               default=clock + sum(e.get("eval_val_seconds", 0.0) for e in logged))
    last = max(logged, key=lambda e: e.get("step", -1))
    if not all(f"eval_{c}" in last for c in PROGRESS_COUNTS):
        return Progress(clock, wall, counted_from_step=step)
    return Progress(clock, wall, *(int(last[f"eval_{c}"]) for c in PROGRESS_COUNTS))


def _legacy_complete(checkpoint: Path, step: int) -> bool:
    """A checkpoint from before the marker: whole if its trainer state (Hugging Face writes it last) parses."""
    try:
        return json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == step
    except (OSError, ValueError, KeyError, TypeError):
        return False


def last_complete_checkpoint(folder: Path) -> str:
    """The newest whole checkpoint in ``folder``; newer torn ones (a kill while saving) are deleted.

    Raises :class:`PauseRecError` when there is none (a kill during the first save leaves nothing to resume).
    Under several ranks every rank reads the folder first, then rank 0 alone deletes (the others wait).
    """
    found = sorted(
        ((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))),
        reverse=True,
    )
    marked = any((p / CHECKPOINT_COMPLETE).exists() for _, p in found)
    chosen, torn = None, []
    for step, checkpoint in found:
        if (checkpoint / CHECKPOINT_COMPLETE).exists() or (not marked and _legacy_complete(checkpoint, step)):
            chosen = checkpoint
            break
        torn.append(checkpoint)
    dist.barrier()  # every rank has read the folder before rank 0 changes it
    if dist.is_main():
        for checkpoint in torn:
            logging.getLogger(__name__).warning("removing torn checkpoint %s (killed while saving)", checkpoint)
            shutil.rmtree(checkpoint, ignore_errors=True)
    dist.barrier()
    if chosen is None:
        raise PauseRecError(f"no complete checkpoint in {folder} to resume from: train again without --resume")
    return str(chosen)


def validate_and_save(control):
    """Make the Trainer validate and checkpoint at the end of this step, so model selection sees these weights."""
    control.should_evaluate = True
    control.should_save = True
    return control


class EvaluateAtEnd(TrainerCallback):
    """Validate and save at the last step too, so model selection sees the final weights."""

    def on_step_end(self, args, state, control, **kwargs):
        return validate_and_save(control) if state.global_step >= state.max_steps else control


class StopAfter(TrainerCallback):
    """Stop training after ``seconds`` of wall time (validate and save first, like the last step).

    Under several ranks the decision is taken together after every step: all stop where any rank's clock says so
    (a max over the ranks), so none is left waiting in a collective of a step the others do not take.
    """

    clock: Callable[[], float] = staticmethod(time.perf_counter)  # seconds; tests replace it on one rank

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started: float | None = None
        self.fired = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        if dist.any_rank(self.started is not None and self.clock() - self.started >= self.seconds):
            self.fired = True
            control.should_training_stop = True
            return validate_and_save(control)
        return control


class FailOnNonFinite(TrainerCallback):
    """Stop with :class:`DivergedError` as soon as a logged gradient norm or loss is NaN/inf.

    Without it a diverged run trains on for its whole budget: the weights are NaN, the loss log shows 0.0
    (Trainer filters non-finite losses), and only the metrics at the end reveal it.
    """

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("grad_norm", "loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                raise DivergedError(
                    f"training diverged: {key} = {value} at step {state.global_step} "
                    f"(lower train.lr, or check the inputs; the last checkpoint is in {args.output_dir})"
                )
