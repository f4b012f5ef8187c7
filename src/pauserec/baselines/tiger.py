"""TIGER baseline: a small T5 encoder-decoder, trained from scratch, that reads the history's SIDs and writes the
target's SID (Rajput et al., "Recommender Systems with Generative Retrieval", NeurIPS 2023).

Tokens (its own vocabulary, no text): ``0 = pad`` (also the decoder start), ``1 = eos`` (ends the encoder input), then
one token per (level, code) of the SID catalogue, level by level. No user token (the paper hashes user ids into 2,000
extra tokens; we leave it out: with 8k users and one example per history it adds little and makes runs incomparable
with the LLM arms, which see no user id either). Encoder input = the SIDs of the last ``split.max_history`` history
items, oldest first, then eos: ``(B, L * n_history + 1)``. Decoder target = the target item's L codes ``(B, L)``, no eos
(the length is always L).

Decoding: trie-constrained beam search with Hugging Face ``generate(num_beams=W, num_return_sequences=W,
prefix_allowed_tokens_fn=...)`` -- *not* our :mod:`pauserec.decode`. That decoder is built around a decoder-only
LM: one causal prefill of the prompt into a ``DynamicCache``, reordered by beam, and ``model.base_model`` returning
the last hidden state. An encoder-decoder needs an encoder pass, cross-attention over encoder states expanded per beam
and an ``EncoderDecoderCache``: a second code path, for a baseline whose decode is 3 tiny steps. ``generate`` is
checked against an exhaustive teacher-forced ranking in ``tests/test_tiger.py``. Scores are plain sums of full-
vocabulary log-probs over the L levels (``length_penalty=0``: every candidate has length L, so no normalisation is
needed and any other value would only rescale all scores alike; 0 makes them exactly comparable with the reference).
``decode.num_beams`` applies; ``decode.score_normalization`` does not (``generate`` scores with the full-vocabulary
softmax the model was trained with).

History exclusion (``eval.exclude_history``): per user, :meth:`PrefixTrie.excluded_codes` forbids an item's last code
and any prefix all of whose items were seen, so no beam is spent on a seen item; validation (model selection) uses it
too, so it is part of the training key.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import RunConfig, TigerConfig
from ..data.split import Example, Split
from ..errors import DataError
from ..eval.contract import Ranking
from ..eval.cost import TrainCost, peak_memory_bytes, reset_peak_memory
from ..eval.evaluate import select_users
from ..eval.exclusion import exclusions
from ..eval.metrics import compute_metrics
from ..io import atomic_directory, read_json, stable_hash, write_json
from ..sid.catalog import PrefixTrie, SIDCatalog

if TYPE_CHECKING:
    from ..artifacts import DataDir, RunDir

PAD, EOS, N_SPECIAL = 0, 1, 2


@dataclass(frozen=True)
class TigerVocab:
    """Token ids of the TIGER model: specials, then ``level_sizes[l]`` code tokens per level."""

    level_sizes: tuple[int, ...]

    @property
    def offsets(self) -> np.ndarray:
        """First token id of each level, shape ``(L,)``."""
        return N_SPECIAL + np.concatenate([[0], np.cumsum(self.level_sizes)[:-1]]).astype(np.int64)

    @property
    def size(self) -> int:
        return N_SPECIAL + int(sum(self.level_sizes))

    def item_tokens(self, codes: np.ndarray) -> np.ndarray:
        """``(n_items, L)`` codes -> ``(n_items, L)`` token ids."""
        return codes + self.offsets[None, :]

    def level_ids(self, level: int) -> list[int]:
        start = int(self.offsets[level])
        return list(range(start, start + self.level_sizes[level]))


def encode(examples: Sequence[Example], item_tokens: np.ndarray) -> dict[str, torch.Tensor]:
    """Right-padded encoder inputs ``input_ids``/``attention_mask`` ``(B, T)`` and ``labels`` ``(B, L)``."""
    rows = [np.append(item_tokens[list(e.history)].reshape(-1), EOS) for e in examples]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    labels = item_tokens[[e.target for e in examples]]
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(ids != PAD).long(),
        "labels": torch.from_numpy(labels),
    }


def build_model(vocab: TigerVocab, tc: TigerConfig) -> Any:
    """A randomly initialised ``T5ForConditionalGeneration`` of the configured size."""
    from transformers import T5Config, T5ForConditionalGeneration

    if tc.d_model % tc.num_heads:
        raise DataError(f"baseline.tiger.d_model={tc.d_model} is not divisible by num_heads={tc.num_heads}")
    config = T5Config(
        vocab_size=vocab.size,
        d_model=tc.d_model,
        d_kv=tc.d_model // tc.num_heads,
        d_ff=tc.d_ff,
        num_layers=tc.num_layers,
        num_decoder_layers=tc.num_layers,
        num_heads=tc.num_heads,
        dropout_rate=tc.dropout,
        feed_forward_proj="relu",
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
    )
    return T5ForConditionalGeneration(config)


# --------------------------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------------------------


def _allowed_fn(trie: PrefixTrie, vocab: TigerVocab, forbid: list[dict[tuple[int, int], frozenset[int]]]):
    """``prefix_allowed_tokens_fn`` for one batch: ``(batch_id, decoder ids so far) -> allowed token ids``."""
    n_levels = trie.depth
    level_lists = [vocab.level_ids(d) for d in range(n_levels)]
    offsets = vocab.offsets

    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        gen = sent[1:].tolist()  # sent[0] is the decoder start token
        d = len(gen)
        if d >= n_levels:
            return [EOS]
        node = 0
        for lvl, tok in enumerate(gen):
            c = tok - int(offsets[lvl])
            if not 0 <= c < vocab.level_sizes[lvl] or node < 0:
                return level_lists[d]  # an HF placeholder beam (score -inf): anything, it is dropped later
            node = int(trie.tables[lvl][node, c])
        if node < 0:
            return level_lists[d]
        codes = np.flatnonzero(trie.tables[d][node] >= 0)
        banned = forbid[batch_id].get((d, node))
        if banned:
            codes = [c for c in codes if c not in banned]
        return [level_lists[d][c] for c in codes] or level_lists[d]

    return allowed


def beam_search(
    model: Any,
    examples: Sequence[Example],
    catalog: SIDCatalog,
    num_beams: int,
    exclude: Sequence[frozenset[int]] | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[list[list[int]], list[list[float]]]:
    """Per example, up to ``num_beams`` distinct real items (never one in ``exclude[i]``), best first, and their
    scores (sum over the L levels of ``log p(code | history, prefix)``, full-vocabulary softmax)."""
    from transformers import GenerationConfig

    vocab = TigerVocab(tuple(catalog.level_sizes))
    item_tokens = vocab.item_tokens(catalog.codes)
    trie, n_levels = catalog.trie, catalog.n_levels
    gen_cfg = GenerationConfig(
        do_sample=False, num_beams=num_beams, num_return_sequences=num_beams, max_new_tokens=n_levels,
        min_new_tokens=n_levels, length_penalty=0.0, early_stopping=True, pad_token_id=PAD, eos_token_id=EOS,
        decoder_start_token_id=PAD, output_scores=True, return_dict_in_generate=True, use_cache=True,
    )
    items: list[list[int]] = []
    scores: list[list[float]] = []
    model.eval()
    batches = range(0, len(examples), batch_size)
    for start in tqdm(batches, desc="tiger decode", disable=not progress, leave=False):
        chunk = examples[start : start + batch_size]
        seen = [exclude[start + i] if exclude is not None else frozenset() for i in range(len(chunk))]
        forbid = [trie.excluded_codes(s) if s else {} for s in seen]
        enc = encode(chunk, item_tokens)
        with torch.inference_mode():
            out = model.generate(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], generation_config=gen_cfg,
                prefix_allowed_tokens_fn=_allowed_fn(trie, vocab, forbid),
            )
        seqs = (out.sequences[:, 1 : 1 + n_levels].numpy() - vocab.offsets[None, :]).tolist()
        seq_scores = out.sequences_scores.float().tolist()
        for u in range(len(chunk)):
            got: list[tuple[float, int]] = []
            for row in range(u * num_beams, (u + 1) * num_beams):
                item, s = trie.lookup(seqs[row]), seq_scores[row]
                if item < 0 or item in seen[u] or not math.isfinite(s) or s < -1e8 or any(i == item for _, i in got):
                    continue  # placeholder beams HF adds when fewer than W items remain
                got.append((s, item))
            got.sort(key=lambda t: -t[0])  # stable: HF's order among ties
            items.append([i for _, i in got])
            scores.append([s for s, _ in got])
    return items, scores


def exhaustive_scores(model: Any, example: Example, catalog: SIDCatalog) -> np.ndarray:
    """Reference (tests only): teacher-forced ``log p(code_l | history, codes_<l)`` of every catalogue item at every
    level, full-vocabulary softmax, shape ``(n_items, L)``; an item's score is the row sum."""
    vocab = TigerVocab(tuple(catalog.level_sizes))
    item_tokens = torch.from_numpy(vocab.item_tokens(catalog.codes))
    enc = encode([example], vocab.item_tokens(catalog.codes))
    n = len(item_tokens)
    model.eval()
    with torch.inference_mode():
        logits = model(
            input_ids=enc["input_ids"].expand(n, -1), attention_mask=enc["attention_mask"].expand(n, -1),
            labels=item_tokens,
        ).logits
    logp = torch.log_softmax(logits.double(), dim=-1).gather(2, item_tokens[:, :, None]).squeeze(2)
    return logp.numpy()


# --------------------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------------------


def validation_metrics(model: Any, examples: Sequence[Example], catalog: SIDCatalog, num_beams: int,
                       batch_size: int, exclude: Sequence[frozenset[int]] | None = None) -> dict[str, float]:
    """Mean Recall@10 and NDCG@10 of the constrained beam search on ``examples``."""
    ranked, _ = beam_search(model, examples, catalog, num_beams, exclude, batch_size=batch_size)
    metrics = compute_metrics(ranked, [e.target for e in examples], [10], bootstrap=0)
    return {name: metrics[name]["mean"] for name in ("recall@10", "ndcg@10")}


def length_batches(lengths: Sequence[int], batch_size: int, gen: torch.Generator, pool: int = 50) -> list[list[int]]:
    """One epoch's batches of example indices: shuffled, then sorted by history length within pools of ``pool``
    batches so a batch pads little (histories are 1-20 items, mean ~4 on Amazon), batch order shuffled again."""
    order = torch.randperm(len(lengths), generator=gen).tolist()
    span = batch_size * pool
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def _lr_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


def train(
    model: Any,
    train_examples: Sequence[Example],
    valid_examples: Sequence[Example],
    catalog: SIDCatalog,
    tc: TigerConfig,
    seed: int,
    num_beams: int,
    progress: bool = True,
    valid_exclude: Sequence[frozenset[int]] | None = None,
) -> dict[str, Any]:
    """Train on ``train_examples``; after each epoch score ``valid_examples`` (minus ``valid_exclude``, as the
    evaluation will) and keep the best epoch's weights (loaded into ``model`` at the end). Returns the training
    record (per-epoch loss and validation metrics)."""
    if not train_examples:
        raise DataError("no training examples for TIGER")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    item_tokens = TigerVocab(tuple(catalog.level_sizes)).item_tokens(catalog.codes)
    lengths = [len(e.history) for e in train_examples]
    steps_per_epoch = len(length_batches(lengths, tc.batch_size, torch.Generator().manual_seed(0)))
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(tc.epochs * steps_per_epoch, tc.warmup_steps))
    best, best_state, history, t0 = -1.0, None, [], time.perf_counter()
    bar = tqdm(range(tc.epochs), desc="tiger epochs", disable=not progress)
    for epoch in bar:
        model.train()
        total = 0.0
        for idx in length_batches(lengths, tc.batch_size, gen):
            batch = encode([train_examples[i] for i in idx], item_tokens)
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item()
        val = validation_metrics(model, valid_examples, catalog, num_beams, tc.decode_batch_size, valid_exclude)
        history.append({"epoch": epoch + 1, "loss": total / steps_per_epoch, **val,
                        "seconds": time.perf_counter() - t0})
        bar.set_postfix(loss=f"{total / steps_per_epoch:.3f}", **{tc.select_metric: f"{val[tc.select_metric]:.4f}"})
        if val[tc.select_metric] > best:
            best, best_state = val[tc.select_metric], copy.deepcopy(model.state_dict())
        best_epoch = max(history, key=lambda h: (h[tc.select_metric], -h["epoch"]))["epoch"]
        out_of_time = tc.max_minutes is not None and time.perf_counter() - t0 > 60 * tc.max_minutes
        if epoch + 1 - best_epoch >= tc.patience or out_of_time:
            break
    model.load_state_dict(best_state)
    return {"epochs": history, "best_epoch": best_epoch, "best": {tc.select_metric: best},
            "train_seconds": time.perf_counter() - t0, "steps_per_epoch": steps_per_epoch}


# --------------------------------------------------------------------------------------------------------------
# the baseline
# --------------------------------------------------------------------------------------------------------------


def training_key(cfg: RunConfig, facts: dict[str, str]) -> str:
    """What a trained model depends on: data, split, the TIGER section, the seed, and what model selection saw
    (beam width, history exclusion)."""
    split = cfg.split.model_dump(include={"max_history", "sliding_window"}) if cfg.split.kind == "leave_one_out" \
        else cfg.split.model_dump(mode="json")  # leave-one-out: the key models trained before split.kind had
    return stable_hash([facts, split, cfg.baseline.tiger.model_dump(), cfg.seed, cfg.decode.num_beams,
                        cfg.eval.exclude_history, cfg.eval.subset_seed])


def trained_model(run_path: Path, cfg: RunConfig, dataset: Any, catalog: SIDCatalog, train_examples: Sequence[Example],
                  valid_all: Sequence[Example], key: str, progress: bool) -> tuple[Any, dict[str, Any]]:
    """The run's model: loaded from ``RUN/model`` when it was trained with this key, else trained and saved there
    atomically (a killed run leaves no half-written model; rerunning retrains or reuses a finished one)."""
    from transformers import T5ForConditionalGeneration

    tc = cfg.baseline.tiger
    model_dir = run_path / "model"
    record_path = model_dir / "tiger.json"
    if record_path.exists() and read_json(record_path).get("key") == key:
        return T5ForConditionalGeneration.from_pretrained(model_dir), read_json(record_path)
    torch.manual_seed(cfg.seed)
    model = build_model(TigerVocab(tuple(catalog.level_sizes)), tc)
    valid = select_users(valid_all, tc.val_users, cfg.eval.subset_seed)  # the same users for every seed
    valid_exclude = exclusions(dataset, valid, "valid", cfg.eval.exclude_history)
    record = train(model, train_examples, valid, catalog, tc, cfg.seed, cfg.decode.num_beams, progress, valid_exclude)
    record = {"key": key, "seed": cfg.seed, "val_users": len(valid), **record}
    with atomic_directory(model_dir) as tmp:
        model.save_pretrained(tmp)
        write_json(tmp / "tiger.json", record)
    return model, record


class TigerRanker:
    """TIGER as a :class:`pauserec.eval.contract.Baseline`: :func:`trained_model` (trained, or reused from
    ``RUN/model`` when its training key matches), then :func:`beam_search` with ``decode.num_beams`` beams (a
    ranking is up to ``num_beams`` items long, whatever ``k``)."""

    name = "tiger"
    uses_catalog = True

    def __init__(self, cfg: RunConfig, progress: bool = False):
        self.cfg, self.progress = cfg, progress
        self.model: Any = None
        self.catalog: SIDCatalog | None = None

    def fit(self, data: DataDir, split: Split, run: RunDir) -> TrainCost:
        """Train (or reuse) the model; cost: the recorded training seconds, the peak memory of this fit (bytes),
        epochs run, the best epoch, parameters."""
        self.catalog = data.catalog()
        facts = {"dataset_hash": data.dataset_hash(), "catalog_hash": self.catalog.content_hash(),
                 "split_hash": split.content_hash()}
        reset_peak_memory()
        self.model, record = trained_model(run.path, self.cfg, data.dataset(), self.catalog, split.train, split.valid,
                                           training_key(self.cfg, facts), self.progress)
        return TrainCost(record["train_seconds"], peak_memory_bytes(),
                         parameters=sum(p.numel() for p in self.model.parameters()),
                         details={"epochs": len(record["epochs"]), "best_epoch": record["best_epoch"]})

    def rank(self, examples: Sequence[Example], k: int, exclude: Sequence[frozenset[int]] | None) -> Ranking:
        batch = self.cfg.baseline.tiger.decode_batch_size
        items, scores = beam_search(self.model, examples, self.catalog, self.cfg.decode.num_beams, exclude, batch,
                                    self.progress)
        return Ranking(items, scores, details={"batch_size": batch, "num_beams": self.cfg.decode.num_beams})
