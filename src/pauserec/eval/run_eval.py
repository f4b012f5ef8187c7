"""Evaluate a trained run directory under the contract (:func:`.contract.evaluate_ranker`): an LLM arm as a ranker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..arms import make_arm
from ..artifacts import RunDir, TrainedRun, load_trained
from ..config import RunConfig
from ..data.split import Example
from ..io import read_json
from ..model.backbone import inference_device
from ..model.vocab import check_vocabulary, token_ids_by_level
from ..prompt import PromptBuilder
from .contract import Ranking, evaluate_ranker
from .cost import TrainCost
from .pipeline_cost import pipeline_cost
from ..recommend import recommend


class ArmRanker:
    """A trained run's LLM arm as a :class:`.contract.Ranker`: prompts of the histories, then the trie-constrained
    beam search of :func:`pauserec.recommend.recommend` (``decode.num_beams`` items per user, whatever ``k``)."""

    def __init__(self, trained: TrainedRun, progress: bool = False):
        cfg, catalog, tokenizer = trained.cfg, trained.data.catalog(), trained.tokenizer
        self.name, self.cfg, self.catalog, self.progress = cfg.arm.name, cfg, catalog, progress
        self.arm = make_arm(cfg)
        check_vocabulary(tokenizer, catalog, self.arm.new_tokens())
        self.arm.bind(tokenizer)
        self.model = trained.model.to(inference_device()).eval()
        self.pad_token_id = tokenizer.pad_token_id
        self.prompts = PromptBuilder(tokenizer, catalog, trained.data.dataset(), cfg.model.system_prompt,
                                     cfg.arm.show_titles)
        self.level_ids = token_ids_by_level(tokenizer, catalog)

    def rank(self, examples: Sequence[Example], k: int, exclude: Sequence[frozenset[int]] | None) -> Ranking:
        with torch.inference_mode():
            recs = recommend(self.model, self.prompts, self.arm, self.catalog, self.level_ids, examples,
                             self.cfg.decode, self.pad_token_id, progress=self.progress, exclude=exclude)
        n = max(len(examples), 1)
        details = {
            "prefill_tokens": recs.prefill_tokens, "prefill_tokens_per_user": recs.prefill_tokens / n,
            "decode_tokens": recs.decode_tokens, "think_tokens": recs.think_tokens,
            "think_tokens_per_user": recs.think_tokens / n,
            "num_beams": self.cfg.decode.num_beams, "batch_size": self.cfg.decode.batch_size,
        }
        return Ranking(recs.items, recs.scores, recs.rationales, seconds=recs.seconds, details=details)


def recorded_train_cost(run: RunDir) -> TrainCost | None:
    """The training cost ``pauserec train`` recorded (``train_cost.json``), None for a run without one."""
    path = run.file("train_cost.json")
    return TrainCost.from_json(read_json(path)) if path.exists() else None


def evaluate_run(
    run_dir: str | Path, cfg: RunConfig | None = None, progress: bool = True, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Decode ``cfg.eval.split`` for the run's selected model; ``cfg`` defaults to the run's stored config.

    Writes ``metrics.json``, ``predictions.jsonl`` and ``cost.json`` (training cost + the pipeline's stages +
    inference cost) into the run, or into ``out_dir`` (with the evaluation's own ``config.yaml`` and ``env.json``)
    so that an ablation, e.g. another inference K, leaves the run's own evaluation untouched.
    """
    dist.init()  # several ranks (torchrun): each decodes its share of the users (evaluate_ranker), rank 0 writes
    # the tokenizer hash is recorded by training, else by the first evaluation (rank 0's)
    trained = load_trained(run_dir, cfg, record_tokenizer=dist.is_main())
    run, cfg = trained.run, trained.cfg
    ranker = ArmRanker(trained, progress and dist.is_main())
    train = recorded_train_cost(run)
    dest = run
    if out_dir is not None:
        if dist.is_main():
            RunDir.create(out_dir, cfg, kind=f"eval:{cfg.arm.name}", evaluated_run=str(run.path),
                          dataset_hash=trained.data.dataset_hash(), catalog_hash=trained.data.catalog().content_hash())
        dist.barrier()
        dest = RunDir(out_dir)
    return evaluate_ranker(ranker, cfg, trained.data, dest, train, pipeline_cost(run.path) if train else None)
