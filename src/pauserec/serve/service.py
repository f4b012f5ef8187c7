"""Load a trained run directory and decode batches of histories with it: the service's model side.

A run is loaded exactly as ``pauserec eval`` loads it (:func:`pauserec.artifacts.load_trained`): the stored
config, the data directory named in ``env.json`` (prompt layout, dataset and SID catalogue hashes checked), the
checkpoint in ``RUN/model`` (tokenizer hash checked), the arm and the prompt builder. Decoding goes through :func:`pauserec.recommend.recommend`, the
same trie-constrained beam search the evaluation uses, so a served ranking is the evaluated ranking.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..arms import Arm, get_arm
from ..artifacts import load_trained
from ..config import RunConfig
from ..data.dataset import Dataset
from ..data.split import Example
from ..recommend import recommend
from ..model.backbone import inference_device
from ..model.vocab import check_vocabulary, token_ids_by_level
from ..prompt import PromptBuilder
from ..sid.catalog import SIDCatalog
from .catalogue import ItemCatalogue

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
#: Upper bound on a requested pause count for a shared ``<pause>`` token (each pause is one prefill position).
MAX_PAUSES = 64


@dataclass(frozen=True)
class Query:
    """One request as the decoder sees it: item indices (oldest first, already truncated), list length, pauses, and
    the items never to recommend (the whole history when the run evaluates with ``eval.exclude_history``)."""

    history: tuple[int, ...]
    k: int
    pauses: int
    exclude: frozenset[int] = frozenset()


@dataclass
class Ranked:
    """Best-first item indices and their scores (the decoder's SID log-probabilities)."""

    items: list[int]
    scores: list[float]


@dataclass
class DecoderStats:
    """Counters read by ``/health`` and by the tests (how many decoder calls served how many requests)."""

    calls: int = 0
    queries: int = 0
    seconds: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)


class Recommender:
    """A trained model bound to its catalogue, prompt builder and arm; decodes a batch of :class:`Query`.

    ``decode`` is synchronous and not re-entrant (one decoder call at a time, guarded by a lock); the
    :class:`~pauserec.serve.batcher.MicroBatcher` calls it from one worker thread.
    """

    def __init__(self, model, tokenizer, cfg: RunConfig, dataset: Dataset, catalog: SIDCatalog, *,
                 beams: int | None = None, dtype: str = "float32", run_dir: str | Path | None = None):
        self.model, self.tokenizer, self.cfg, self.catalog = model, tokenizer, cfg, catalog
        self.catalogue = ItemCatalogue(dataset)
        self.beams = int(beams or cfg.decode.num_beams)
        self.dtype, self.run_dir = dtype, str(run_dir) if run_dir is not None else None
        self.max_history = cfg.split.max_history
        self.prompts = PromptBuilder(tokenizer, catalog, dataset, cfg.model.system_prompt, cfg.arm.show_titles)
        self.level_ids = token_ids_by_level(tokenizer, catalog)
        self.decode_cfg = cfg.decode.model_copy(update={"num_beams": self.beams, "batch_size": 4096})
        self.arm_class = get_arm(cfg.arm.name)
        served = self.arm_class.served_pauses(cfg.arm, cap=MAX_PAUSES)  # None: the arm has no pauses
        self.supports_pauses = served is not None
        self.default_pauses, self.max_pauses = (served.default, served.maximum) if served is not None else (0, 0)
        self._arms: dict[int, Arm] = {}
        self._lock = threading.Lock()
        self.stats = DecoderStats()
        self.arm(self.default_pauses)  # fail at start-up, not on the first request, if the arm does not bind

    def check_pauses(self, pauses: int) -> None:
        """Raise ``ValueError`` when this run cannot decode with ``pauses`` pause tokens."""
        if not self.supports_pauses and pauses != 0:
            raise ValueError(f"this run's arm is {self.cfg.arm.name!r}: it has no pause tokens (pauses must be 0)")
        if not 0 <= pauses <= self.max_pauses:
            raise ValueError(f"pauses must be between 0 and {self.max_pauses} for this run, got {pauses}")

    def arm(self, pauses: int) -> Arm:
        """The run's arm with ``pauses`` pause tokens at inference (cached, bound to the tokenizer)."""
        if pauses not in self._arms:
            self.check_pauses(pauses)
            arm_cfg = self.arm_class.with_pauses(self.cfg.arm, pauses) if self.supports_pauses else self.cfg.arm
            arm = self.arm_class.from_config(arm_cfg, seed=self.cfg.seed)
            check_vocabulary(self.tokenizer, self.catalog, arm.new_tokens())
            self._arms[pauses] = arm.bind(self.tokenizer)
        return self._arms[pauses]

    def truncate(self, history: Sequence[int]) -> tuple[int, ...]:
        """The ``split.max_history`` most recent items, as in training."""
        return tuple(history[-self.max_history:])

    def excluded(self, history: Sequence[int]) -> frozenset[int]:
        """Items a request must not get back: its whole history under ``eval.exclude_history``, else none."""
        return frozenset(history) if self.cfg.eval.exclude_history else frozenset()

    def decode(self, queries: Sequence[Query]) -> list[Ranked]:
        """Rankings for every query, in order: one decoder call per distinct pause count in the batch."""
        out: list[Ranked | None] = [None] * len(queries)
        groups: dict[int, list[int]] = {}
        for i, q in enumerate(queries):
            if not 1 <= q.k <= self.beams:
                raise ValueError(f"k must be between 1 and {self.beams} (the beam width), got {q.k}")
            groups.setdefault(q.pauses, []).append(i)
        with self._lock:
            for pauses, idx in groups.items():
                examples = [Example(user=-1, history=tuple(queries[i].history), target=-1) for i in idx]
                t0 = time.perf_counter()
                with torch.inference_mode():
                    recs = recommend(self.model, self.prompts, self.arm(pauses), self.catalog, self.level_ids,
                                     examples, self.decode_cfg, self.tokenizer.pad_token_id,
                                     exclude=[queries[i].exclude for i in idx])
                self.stats.calls += 1
                self.stats.queries += len(idx)
                self.stats.seconds += time.perf_counter() - t0
                self.stats.batch_sizes.append(len(idx))
                for j, i in enumerate(idx):
                    k = queries[i].k
                    out[i] = Ranked(items=list(recs.items[j][:k]), scores=[float(s) for s in recs.scores[j][:k]])
        return [r for r in out if r is not None]

    def popular(self, k: int) -> Ranked:
        """The cold-start answer: the ``k`` most frequent items of the training interactions (score = count)."""
        items = self.catalogue.popular_order[:k]
        return Ranked(items=list(items), scores=[float(self.catalogue.counts[i]) for i in items])

    def describe(self) -> dict[str, object]:
        """What ``/health`` reports about the model."""
        return {
            "run": self.run_dir, "arm": self.cfg.arm.name, "dtype": self.dtype, "beams": self.beams,
            "default_pauses": self.default_pauses, "max_pauses": self.max_pauses, "max_history": self.max_history,
            "items": len(self.catalogue), "device": str(next(self.model.parameters()).device),
        }


def load_recommender(run_dir: str | Path, *, dtype: str = "float32", beams: int | None = None,
                     cfg: RunConfig | None = None) -> Recommender:
    """Load a trained run directory as :func:`~pauserec.eval.run_eval.evaluate_run` does (every check of
    :func:`~pauserec.artifacts.load_trained`), cast to ``dtype``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    trained = load_trained(run_dir, cfg)
    model = trained.model.to(inference_device()).eval()
    model.to(DTYPES[dtype])
    return Recommender(model, trained.tokenizer, trained.cfg, trained.data.dataset(), trained.data.catalog(),
                       beams=beams, dtype=dtype, run_dir=trained.run.path)
