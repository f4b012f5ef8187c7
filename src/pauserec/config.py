"""Typed configuration: every knob of every stage, documented in one place.

A run is described by one :class:`RunConfig`. It is built from defaults, an optional YAML preset
(``src/pauserec/configs/*.yaml`` by name, or any file path) and dotted overrides
(``train.max_steps=200``), and every run directory stores the resolved result as ``config.yaml``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

PRESET_DIR = Path(__file__).parent / "configs"
#: What a SID softmax normalises over, for ``train.loss`` and ``decode.score_normalization`` alike (widest first).
SOFTMAX_SUPPORT = {
    "vocab": "the whole vocabulary",
    "level": "the SID level's codes",
    "trie": "the codes the catalogue has after the SID prefix",
}
#: Per ``train.loss``, the ``decode.score_normalization`` values that normalise over trained logits only.
DECODABLE = {"vocab": ("vocab", "level", "trie"), "level": ("level", "trie"), "trie": ("trie",)}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the interactions and item texts come from."""

    path: str = Field(
        "builtin:amazon-scientific",
        description="A directory or file in a supported layout, or builtin:amazon-scientific (shipped in this package) "
        "or builtin:ml-100k (inside the recbole wheel).",
    )
    format: Literal["auto", "lcrec", "recbole", "amazon"] = Field("auto", description="Input layout; 'auto' detects it.")
    name: str | None = Field(None, description="Dataset name; defaults to the file stem.")
    min_interactions: int = Field(3, ge=1, description="Users with fewer interactions are too short for leave-one-out.")
    short_users: Literal["drop", "error"] = Field("drop", description="Drop short users (counted) or refuse the data.")
    kcore: int = Field(5, ge=0, description="k-core filtering for raw Amazon reviews (0 = off).")
    max_users: int | None = Field(
        None, ge=3, description="Keep at most this many users, drawn with random.Random(0) (their whole sequences; "
        "items none of them has are dropped): bounds the cost of SIDs and baselines on a large catalogue. None = all.",
    )


class TextConfig(_Section):
    """How an item is written as text (for embeddings and, optionally, prompts)."""

    fields: list[str] = Field(["title", "brand", "categories", "description"], description="Fields, in order.")
    max_chars_per_field: int = Field(300, ge=1, description="Each field is cut to this many characters.")


class SplitConfig(_Section):
    """How users' sequences become training, validation and test examples (``pauserec.data.split``); every model
    (LLM arms, popularity, SASRec, HSTU, TIGER) reads the same split.

    ``leave_one_out``: per user, last item = test target, second to last = validation target, the rest = training
    (one validation and one test example per user). ``temporal`` (MiniOneRec's protocol): every (history -> next
    item) sample of every user, ordered globally by the target's time, cut ``fractions`` (8:1:1); a user can have
    several validation and test examples. Without timestamps (LC-Rec JSON) the order is the target's relative position
    in its user's sequence (docs/data.md). MiniOneRec shows at most 10 history items: ``split.max_history=10``.
    """

    kind: Literal["leave_one_out", "temporal"] = Field("leave_one_out", description="The protocol (see above).")
    max_history: int = Field(20, ge=1, description="Only the most recent N items of a history are shown.")
    sliding_window: bool = Field(True, description="leave_one_out: every prefix of the training part is a training "
                                 "example (temporal: every sample always is).")
    fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="temporal: train / validation / test shares of the time-ordered samples; the "
        "cut points are int(n * train) and int(n * (train + validation)), as MiniOneRec's.",
    )

    @field_validator("fractions")
    @classmethod
    def _fractions_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f <= 0 for f in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ConfigError(f"split.fractions={list(v)} must be three positive shares that sum to 1")
        return v

    def protocol(self) -> dict[str, Any]:
        """The keys that define this kind's split (recorded beside every metric): the other kind's are left out."""
        keys = ("kind", "max_history", "sliding_window") if self.kind == "leave_one_out" else \
            ("kind", "max_history", "fractions")
        dump = self.model_dump(mode="json")
        return {k: dump[k] for k in keys}


class EmbedConfig(_Section):
    """Item text embeddings (sentence-transformers)."""

    model: str = Field("builtin:all-MiniLM-L6-v2", description="A local sentence-transformers path or 'builtin:...'.")
    batch_size: int = Field(64, ge=1)
    normalize: bool = True
    bf16: Literal["auto"] | bool = Field(
        "auto",
        description="Encode under bf16 autocast where the hardware supports it ('auto'): all-MiniLM-L6-v2 on 2 "
        "CPU cores 9.6 s vs 17.7 s per 1,000 Scientific item texts, cosine to the fp32 embedding >= 0.99997. "
        "Part of the cache key.",
    )


class RQVAEConfig(_Section):
    hidden_dims: list[int] = [512, 256, 128]
    latent_dim: int = 32
    epochs: int = Field(200, ge=1)
    batch_size: int = 1024
    lr: float = 1e-3
    beta: float = Field(0.25, description="Commitment loss weight.")


class SIDConfig(_Section):
    """Semantic IDs: L levels of C codes learned from item embeddings, plus a collision policy."""

    quantizer: Literal["rqkmeans", "rqvae"] = "rqkmeans"
    levels: int = Field(3, ge=1, le=8)
    codebook_size: int = Field(256, ge=2)
    collision: Literal["reassign", "extra_level"] = Field(
        "reassign", description="Make SIDs unique: move a clashing item to a free last-level code, or add a level."
    )
    kmeans_space: Literal["spherical", "direction", "raw"] = Field(
        "spherical",
        description="RQ-KMeans: cluster residual directions by cosine (spherical k-means: balanced deeper levels on "
        "every catalogue tried), by Euclidean distance to unnormalised centroids (`direction`: the SIDs of results "
        "committed before 2026-12-07; degenerate on Office), or raw residuals.",
    )
    seed: int = 0
    rqvae: RQVAEConfig = RQVAEConfig()


class ModelConfig(_Section):
    """The LLM backbone and what of it trains."""

    backbone: str = Field("builtin:smollm2-135m", description="A local HF causal-LM directory, or 'builtin:smollm2-135m'.")
    trainable: Literal["full", "lora", "new_rows"] = Field("full", description="Full fine-tuning, LoRA + new rows, or new rows only.")
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    new_row_noise: float = Field(
        0.1,
        ge=0.0,
        description="New token rows = mean of the existing rows + Gaussian noise of this many per-dimension stds "
        "(0 makes all SID tokens look alike and stalls learning; 1.0 draws them like ordinary tokens but starts "
        "the SID loss far above uniform on SmolLM2).",
    )
    sid_init: Literal["noise", "title"] = Field(
        "title",
        description="Initial SID token rows: mean row + random noise, or mean row + the average title embedding of "
        "the items carrying the code (same scale, new_row_noise; model/sid_init.py).",
    )
    system_prompt: str = Field("You are a recommender system.", description="System message of the chat template.")


class _ArmSection(_Section):
    """What every arm has: the arm's name (the union's discriminator) and the settings all arms share."""

    show_titles: bool = Field(False, description="Write item titles beside the SIDs in the history (every arm alike).")


class DirectArmConfig(_ArmSection):
    """``direct``: prompt -> SID, nothing in between."""

    name: Literal["direct"] = "direct"


class PauseArmConfig(_ArmSection):
    """``pause`` (PauseRec): K learnable pause tokens between the prompt and the SID."""

    name: Literal["pause"] = "pause"
    pause_tokens: int = Field(
        1,
        ge=0,
        description="K: pause tokens in training. Default picked on Scientific validation Recall@10, never test: "
        "arms-grid-scientific-cpu (K=1, 2, 8 tie at 0.085, K=4 0.080; smallest K among ties) and "
        "arms-grid-scientific-h200 (K=1 0.114 > K=2 0.108); see benchmarks/results/.",
    )
    inference_pause_tokens: int | None = Field(None, ge=0, description="K at inference (None = same as training).")
    distinct_pauses: bool = Field(False, description="K distinct tokens <pause_0>..<pause_K-1> instead of one repeated.")
    pause_placement: Literal["before_sid", "per_level"] = Field(
        "before_sid", description="All K pauses before the SID, or K before each SID level."
    )


class CotArmConfig(_ArmSection):
    """``cot``: explicit chain of thought, a rationale then the SID. Sampled rationales are seeded by the run's
    ``seed``."""

    name: Literal["cot"] = "cot"
    rationales: str | None = Field(
        None, description="The directory made by `pauserec rationales` whose texts the model is trained to write "
        "(training only; at inference the model writes its own)."
    )
    max_rationale_tokens: int = Field(
        48, ge=2, description="Rationale budget in tokens (</think> included): longer training rationales are "
        "cut, generation stops there."
    )
    rationale_samples: int = Field(1, ge=1, description="Rationales sampled per user at inference (N > 1 pools "
                                   "the candidates by best score; needs rationale_temperature > 0).")
    rationale_temperature: float = Field(0.0, ge=0.0, description="0 = greedy rationale, else sampling temperature "
                                         "(the sampling generator is seeded with the run's seed).")


#: Each arm's config section, by ``arm.name``; an arm added here also needs its class in ``pauserec.arms.ARMS``.
ARM_CONFIGS: dict[str, type[_ArmSection]] = {"direct": DirectArmConfig, "pause": PauseArmConfig, "cot": CotArmConfig}
DEFAULT_ARM = "pause"
#: The ``arm`` section: one of the per-arm configs, chosen by ``name``.
ArmConfig = Annotated[Union[DirectArmConfig, PauseArmConfig, CotArmConfig], Field(discriminator="name")]
#: Key sets of the flat ``arm`` section that run directories stored before the per-arm configs (every field of every
#: arm, whatever the name): before the cot arm, and with it.
_FLAT_LAYOUTS = (
    frozenset({"name", "show_titles", *PauseArmConfig.model_fields}),
    frozenset({"name", "show_titles", *PauseArmConfig.model_fields, *CotArmConfig.model_fields}),
)


def _arm_fields(name: str) -> set[str]:
    return set(ARM_CONFIGS[name].model_fields)


def _owner(key: str) -> str | None:
    """The arm a setting belongs to (None: no arm has it)."""
    return next((n for n, c in ARM_CONFIGS.items() if key in c.model_fields), None)


def arm_section(tree: dict[str, Any]) -> dict[str, Any]:
    """The ``arm`` mapping ready for the union: ``name`` filled in (default ``pause``), a flat section of an old run
    directory reduced to its arm's fields, and a setting of another arm refused in one line."""
    name = tree.get("name", DEFAULT_ARM)
    if not isinstance(name, str) or name not in ARM_CONFIGS:
        raise ConfigError(f"arm.name={name} is not an arm (arms: {', '.join(ARM_CONFIGS)})")
    own = _arm_fields(name)
    if frozenset(tree) in _FLAT_LAYOUTS:  # stored before the per-arm configs: the other arms' fields were unused
        tree = {k: v for k, v in tree.items() if k in own}
    for key in tree:
        if key not in own:
            owner, takes = _owner(key), ", ".join(sorted(own - {"name"}))
            if owner is None:
                raise ConfigError(f"arm.{key} is not a setting of any arm (arm.name={name} takes {takes})")
            raise ConfigError(f"arm.{key} is a setting of the {owner} arm, not of arm.name={name} (which takes "
                              f"{takes}): set arm.name={owner} or drop arm.{key}")
    return {**tree, "name": name}


def switch_arm(arm: dict[str, Any], overridden: Collection[str]) -> dict[str, Any]:
    """The ``arm`` mapping after an override set ``arm.name``: the settings of the new arm are kept, and any setting
    given by an override; the rest (another arm's settings, from a preset or a base config) are dropped. So
    ``arm.name=direct`` on a stored pause config gives a direct config, while ``arm.name=direct`` with
    ``arm.pause_tokens=4`` is still refused."""
    name = arm.get("name", DEFAULT_ARM)
    if not isinstance(name, str) or name not in ARM_CONFIGS:
        return arm  # refused, in one line, by arm_section
    own = _arm_fields(name)
    return {k: v for k, v in arm.items() if k in own or f"arm.{k}" in overridden}


class TrainConfig(_Section):
    """Supervised fine-tuning (Hugging Face Trainer)."""

    loss: Literal["level", "trie", "vocab"] = Field(
        "level",
        description="Normalise each SID label over its level's tokens (matches decode.score_normalization=level), "
        "over the codes the catalogue has after the label's SID prefix only (decode.score_normalization=trie: no "
        "step is spent learning which codes exist, the trie already knows), or over the whole vocabulary.",
    )
    packing: Literal["prefix_tree", "none"] = Field(
        "prefix_tree",
        description="Merge a batch's examples into prefix trees (shared chat head and history computed once, tree "
        "attention mask; same loss as one by one) or pad examples one per row (the reference, length-grouped).",
    )
    vocab_rows: Literal["active", "all"] = Field(
        "active",
        description="Train only the vocabulary rows that can receive a gradient (the training inputs' tokens and "
        "the SID codes) as one small parameter, written back into the frozen matrix after every step: exact, and "
        "~0.5 s less per default step on 2 CPU cores. Applies to full fine-tuning with prefix-tree packing, the SID "
        "loss, SID labels only and no weight decay (direct, pause); elsewhere, and with 'all', the whole matrix "
        "trains (train_cost.json says which). src/pauserec/train/vocab_rows.py.",
    )
    attention: Literal["auto", "backbone", "eager"] = Field(
        "auto",
        description="Attention implementation of the packed training forward (the tree mask as 0 / -inf): 'auto' = "
        "eager (matmul, add, softmax) on a CPU, the backbone's own (SDPA / flash) on a GPU; or either one forced. On "
        "2 CPU cores eager takes 6-12% off a default step (torch's CPU flash kernel works through the dense T x T "
        "mask at the fp32 rate; benchmarks/results/bench-train.md) and its gradient is about as close to an fp32 "
        "reference as SDPA's under bf16 (relative error 0.033 vs 0.030: benchmarks/results/grad-error.md). "
        "train_cost.json records the one used. Decoding keeps the backbone's.",
    )
    cpu_allocator: Literal["reuse", "system"] = Field(
        "reuse",
        description="Training on a CPU: keep freed memory in malloc's heap for the next step instead of returning "
        "large blocks to the kernel (which page-faults them in again every step); the process's memory stays at "
        "its peak. glibc only; no effect on a GPU. src/pauserec/train/cpu_memory.py.",
    )
    max_row_tokens: int = Field(256, ge=16, description="prefix_tree: at most this many tokens per packed row.")
    max_user_examples: int = Field(
        8, ge=1, description="prefix_tree: a training unit is one user's examples, at most this many (longer users "
        "are cut into several units).",
    )
    max_users: int | None = Field(
        None, ge=1, description="Train on the examples of a fixed random subset of N users (drawn with seed 0: the same "
        "users for every arm and seed; what `pauserec rationales` acquires for). None = all users."
    )
    max_steps: int = Field(800, ge=1, description="Optimizer steps (800 x 8 users = 0.77 epoch of Scientific).")
    batch_size: int = Field(
        8, ge=1, description="Per optimizer micro-step, global: summed over the ranks (each of N ranks under torchrun / "
        "accelerate takes batch_size / N, which must divide evenly, so N ranks train on the batches of one process; "
        "x grad_accum per optimizer step; train_cost.json records world_size, per_rank_batch_size and "
        "global_batch_size). Units: users (prefix_tree: all of a user's targets, up to "
        "max_user_examples) or single examples (packing=none). 8 users (~38 examples) rather than 16: at equal "
        "training time, 3 of 3 seeds reached Scientific validation Recall@10 0.080 in 591-818 s vs 1 of 2 runs with "
        "16 (benchmarks/results/time-to-quality-scientific-seeds.md).",
    )
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(
        5e-4,
        description="Peak learning rate (linear warm-up, then cosine to 0 at max_steps). 5e-4 rather than 1e-3: at "
        "570 steps on Scientific `pause` K=1 collapsed to one list for every user in 2 of 3 seeds at 1e-3 and learned "
        "in 3 of 3 at 5e-4, each seed ahead of every 1e-3 run; `direct` was no worse (validation NDCG@10 0.0355 vs "
        "0.0341; benchmarks/results/lr-scientific-05ep.md). Results committed before this change ran at 1e-3.",
    )
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    bf16: Literal["auto"] | bool = Field("auto", description="bf16 autocast: 'auto' = where the hardware supports it.")
    eval_every: int = Field(100, ge=1, description="Validate (real decoder, Recall@10 and NDCG@10) every N steps.")
    val_users: int = Field(300, ge=1, description="Size of the fixed validation subset validated on every eval_every "
                           "steps (drawn with eval.subset_seed; what select=validation_best selects on).")
    select: Literal["validation_best", "final"] = Field(
        "validation_best",
        description="Which weights become RUN/model: the checkpoint with the best validation NDCG@10 on val_users "
        "(Hugging Face's load_best_model_at_end; the first of ties), or the last step's (validation still runs every "
        "eval_every steps and is logged, for curves, but selects nothing and no best checkpoint is kept for it). One "
        "rule for every LLM model of a comparison: a grid declares it in its shared set:. On the 2-epoch grid 300 "
        "validation users picked an earlier checkpoint of pause K=8 seed 1 whose test NDCG@10 was 0.020 below the "
        "final one's (benchmarks/results/checkpoint-selection-k8-seed1.md); benchmarks/selection_study.py measures "
        "the rules. train_cost.json records the rule (select), the kept step and its validation scores.",
    )
    logging_steps: int = 10
    save_total_limit: int = Field(
        2, ge=0,
        description="Checkpoints kept in RUN/checkpoints (the newest; under select=validation_best the best one "
        "too, so at least 2). 0 = keep every checkpoint, e.g. for benchmarks/selection_study.py (with "
        "resumable=false each is the weights alone: 0.54 GB for SmolLM2-135M; a grid then keeps them too).",
    )
    resumable: bool = Field(
        True,
        description="Checkpoints hold the optimizer state, scheduler and RNG too (~3x the weights: 1.6 GB for "
        "SmolLM2-135M), so `train --resume` continues bit-identically; false = weights only (enough for model "
        "selection; a run that needs no resume), and `--resume` is refused.",
    )
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="Safety net on wall time: stop (validate, save) after this many minutes of training even "
        "before max_steps. The budget that makes arms comparable is max_steps; train_cost.json says if this hit.",
    )


class GroundConfig(_Section):
    """SID grounding (the explicit-CoT pipeline's first stage): language <-> SID alignment tasks trained before the
    reasoning SFT. Steps, batch and learning rate come from ``train``; what trains from ``model.trainable``."""

    tasks: dict[Literal["item2sid", "sid2title", "history_titles"], float] = Field(
        {"item2sid": 1.0, "sid2title": 1.0, "history_titles": 1.0},
        description="Task mix, as relative weights: item text -> SID, SID -> title, and a history written as SIDs "
        "beside titles -> the next item's SID (training examples only).",
    )
    heldout_items: float = Field(
        0.05, ge=0.0, lt=1.0, description="Fraction of items left out of item2sid, on which alignment is validated."
    )


class RationaleConfig(_Section):
    """Rationale acquisition for the explicit-CoT arm (``pauserec rationales``)."""

    provider: Literal["template", "local", "openai"] = Field(
        "template", description="template = built from item metadata; local = a Hugging Face causal LM teacher; "
        "openai = any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama)."
    )
    model: str = Field(
        "builtin:smollm2-135m", description="local: an HF causal-LM directory or builtin:smollm2-135m; openai: the "
        "served model's name."
    )
    base_url: str = Field("http://127.0.0.1:8000/v1", description="openai: the server's /v1 address.")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable holding the key (may be unset).")
    max_new_tokens: int = Field(48, ge=1, description="Teacher's rationale budget (tokens).")
    temperature: float = Field(0.0, ge=0.0, description="Teacher's sampling temperature (0 = greedy).")
    no_repeat_ngram_size: int = Field(
        3, ge=0, description="local: never repeat an n-gram of this many tokens (0 = off). Greedy SmolLM2-135M "
        "otherwise loops ('a product of a product of ...') and copies the target's title; with 3, 1.8% of the 16,789 "
        "rationales of benchmarks/grids/cot-scientific-05ep.yaml's cot-local quoted the target (rationale_stats.json)."
    )
    batch_size: int = Field(32, ge=1, description="local: prompts generated together.")
    concurrency: int = Field(8, ge=1, description="openai: requests in flight at once.")
    timeout_s: float = Field(60.0, gt=0, description="openai: per-request timeout.")
    retries: int = Field(3, ge=0, description="openai: retries with exponential back-off (the openai client's own).")


class DecodeConfig(_Section):
    """Trie-constrained beam search (``pauserec.decode``)."""

    num_beams: int = Field(20, ge=1, description="Beams = length of each user's ranked list.")
    batch_size: int = Field(16, ge=1, description="Users decoded together (length-grouped).")
    score_normalization: Literal["vocab", "level", "trie"] = Field(
        "level",
        description="Log-softmax over the whole vocabulary (the model's true SID probability, as HF generate), "
        "over the current level's SID tokens only (cheaper LM head), or over the codes the catalogue has after the "
        "beam's prefix (scores are log-probabilities over items; pairs with train.loss=trie).",
    )


class EvalConfig(_Section):
    ks: list[int] = [1, 5, 10, 20]
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for 95% intervals (0 = none).")
    split: Literal["valid", "test"] = "test"
    max_users: int | None = Field(None, description="Evaluate only N examples (a fixed random subset; one example per "
                                  "user under leave-one-out, so N users); None = all.")
    subset_seed: int = Field(
        0, ge=0, description="Seed of the max_users subset (and of the validation users). Fixed, not the run's "
        "seed, so that runs with different seeds are decoded on the same users and can be compared per user.",
    )
    exclude_history: bool = Field(
        False,
        description="Rank only items outside the user's own history (all of it, not only the shown window), for "
        "every model alike (RecBole's full-sort default; the generative protocols rank the whole catalogue).",
    )


class SASRecConfig(_Section):
    """SASRec (cornac 3.0.1, ``cornac.models.SASRec``) trained on each user's training part.

    Defaults chosen on Scientific validation Recall@10 only (never test): the one-knob-at-a-time grid in
    ``benchmarks/results/sasrec-tuning-scientific.md`` (base hidden 64, 2 layers, dropout 0.2, max_len 20, 10 epochs,
    lr 1e-3: val R@10 0.120; 30 epochs 0.105, hidden 128 0.118, 1 layer 0.113, dropout 0.5 0.115, lr 3e-3 0.107)
    kept the base.
    """

    hidden: int = Field(64, ge=1, description="Item embedding / hidden size (cornac embedding_dim).")
    layers: int = Field(2, ge=1, description="Self-attention blocks (cornac num_blocks).")
    heads: int = Field(1, ge=1, description="Attention heads; must divide hidden.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    max_len: int = Field(20, ge=1, description="Most recent items of a history the encoder reads (training and scoring).")
    epochs: int = Field(10, ge=1, description="Passes over every prefix of every training part (no early stopping; "
                        "30 overfits on Scientific validation).")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    batch_size: int = Field(256, ge=2, description="Training prefixes per step.")
    loss: Literal["ce", "bce", "bpr"] = Field("ce", description="cornac loss over in-batch + sampled negatives.")
    negatives: int = Field(2048, ge=0, description="Popularity-sampled negatives shared per batch (cornac n_sample).")
    score_batch: int = Field(256, ge=1, description="Users scored together at inference.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SASRecConfig:
        if self.hidden % self.heads:
            raise ConfigError(f"baseline.sasrec.heads={self.heads} does not divide baseline.sasrec.hidden={self.hidden}")
        return self


class NextItemConfig(_Section):
    """Training of the full-softmax next-item baselines (``pauserec.baselines.next_item``: SASRec-CE and HSTU).

    Each user's training part (``Split.training_sequences``), its last ``max_len + 1`` items, is one row: the encoder
    reads items ``[:-1]`` (left-padded) and every position predicts the next item with cross-entropy over the whole
    catalogue (no sampled negatives). Adam, a fixed number of epochs at most; after each epoch Recall@10 / NDCG@10 on
    ``val_users`` fixed validation examples, the best epoch's weights are kept (validation only, never test).
    """

    max_len: int = Field(20, ge=2, description="Most recent items the encoder reads (training and scoring).")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    epochs: int = Field(60, ge=1, description="At most this many passes over the users' training parts.")
    lr: float = Field(3e-3, gt=0, description="Adam learning rate (validation-chosen, next-item-tuning-scientific).")
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(128, ge=1, description="Users (training rows) per step.")
    val_users: int = Field(1000, ge=1, description="Fixed validation examples for model selection (eval.subset_seed).")
    select_metric: Literal["recall@10", "ndcg@10"] = Field("ndcg@10", description="Validation metric of the best epoch.")
    patience: int = Field(5, ge=1, description="Stop after this many epochs without a better validation metric.")
    score_batch: int = Field(256, ge=1, description="Examples scored together at inference.")


class SASRecCEConfig(NextItemConfig):
    """SASRec (Kang & McAuley 2018; torch-rechub 0.9.0's ``SASRec`` encoder: learned positions, causal
    self-attention blocks, item embeddings shared with the output) trained with full-softmax cross-entropy instead of
    sampled binary cross-entropy (Klenitskiy & Vasilev, RecSys 2023). Tuned on Scientific leave-one-out validation
    (``benchmarks/results/next-item-tuning-scientific.md``, one knob at a time around hidden 64, 2 layers, dropout
    0.2, lr 1e-3): val NDCG@10 0.0679 base, 0.0682 lr 3e-3, 0.0679 dropout 0.5, 0.0686 hidden 128, all within noise;
    lr 3e-3 kept (half the training time)."""

    hidden: int = Field(64, ge=2, description="Item embedding / hidden size.")
    layers: int = Field(2, ge=1, description="Self-attention blocks.")
    heads: int = Field(1, ge=1, description="Attention heads; must divide hidden.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SASRecCEConfig:
        if self.hidden % self.heads:
            raise ConfigError(f"baseline.sasrec_ce.heads={self.heads} does not divide hidden={self.hidden}")
        return self


class HSTUConfig(NextItemConfig):
    """HSTU (Zhai et al., ICML 2024; torch-rechub 0.9.0's ``HSTUModel``: pointwise SiLU attention with a relative
    position bias, gated output, tied item embeddings) trained with full-softmax cross-entropy. No time input (the
    default data has no clock: ``use_time_embedding=False``, the relative bias is position-only). Tuned like
    SASRec-CE: val NDCG@10 0.0524 base (lr 1e-3), 0.0615 lr 3e-3 (kept), 0.0464 dropout 0.5, 0.0608 d_model 128."""

    d_model: int = Field(64, ge=2, description="Hidden size (item embeddings).")
    layers: int = Field(2, ge=1, description="HSTU layers.")
    heads: int = Field(2, ge=1, description="Attention heads; must divide d_model.")
    dqk: int = Field(32, ge=1, description="Query/key size per head.")
    dv: int = Field(32, ge=1, description="Value/gate size per head.")

    @model_validator(mode="after")
    def _heads_divide_d_model(self) -> HSTUConfig:
        if self.d_model % self.heads:
            raise ConfigError(f"baseline.hstu.heads={self.heads} does not divide d_model={self.d_model}")
        return self


class TigerConfig(_Section):
    """TIGER baseline (``pauserec.baselines.tiger``): a small T5 encoder-decoder trained from scratch on the SIDs.

    Defaults fit a CPU (Amazon Scientific: ~1 min an epoch on one free core, ~3.7 min with three runs on 2 cores).
    Tuned on validation (Recall@10, 500 fixed users), at equal wall time (~9 min): ``d_model`` 64 (d_ff 256) 0.064
    vs 128 (d_ff 512) 0.074, both 2 layers; 4 layers cost 2x per epoch (the paper's 4 could not train to convergence here). Still
    improving when stopped: on a GPU raise ``epochs`` (the paper trains ~200k steps) and ``num_layers``.
    """

    d_model: int = Field(128, ge=8, description="Width of the T5 (embeddings and hidden states).")
    d_ff: int = Field(512, ge=8, description="Feed-forward width.")
    num_layers: int = Field(2, ge=1, description="Encoder layers; the decoder has as many.")
    num_heads: int = Field(4, ge=1, description="Attention heads (d_kv = d_model / num_heads).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    epochs: int = Field(6, ge=1, description="At most this many passes over the training examples (the cosine "
                        "schedule spans them).")
    batch_size: int = Field(256, ge=1)
    lr: float = Field(2e-3, gt=0, description="AdamW peak learning rate (linear warm-up, then cosine to 0 at `epochs`).")
    warmup_steps: int = Field(200, ge=0)
    weight_decay: float = Field(0.01, ge=0.0)
    val_users: int = Field(500, ge=1, description="Fixed validation subset (drawn like the test subset, "
                           "eval.subset_seed) for model selection; the best epoch's weights are kept.")
    select_metric: Literal["recall@10", "ndcg@10"] = Field("recall@10", description="Validation metric of the best epoch.")
    patience: int = Field(4, ge=1, description="Stop after this many epochs without a better validation metric.")
    max_minutes: float | None = Field(
        None, gt=0, description="Stop training after the epoch that passes this much wall time (best epoch kept)."
    )
    decode_batch_size: int = Field(64, ge=1, description="Users per beam-search call.")


class BaselineConfig(_Section):
    """Classic baselines evaluated under the same contract as the LLM arms (``pauserec.baselines.BASELINES``)."""

    sasrec: SASRecConfig = SASRecConfig()
    sasrec_ce: SASRecCEConfig = SASRecCEConfig()
    hstu: HSTUConfig = HSTUConfig()
    tiger: TigerConfig = TigerConfig()


class RunConfig(_Section):
    """Everything a run needs; stored resolved in each run directory."""

    seed: int = 0
    cache_dir: str = Field(
        default_factory=lambda: os.environ.get("PAUSEREC_CACHE", "cache"),
        description="Where prepared data, embeddings, SIDs and converted models are cached.",
    )
    data: DataConfig = DataConfig()
    text: TextConfig = TextConfig()
    split: SplitConfig = SplitConfig()
    embed: EmbedConfig = EmbedConfig()
    sid: SIDConfig = SIDConfig()
    model: ModelConfig = ModelConfig()
    arm: ArmConfig = PauseArmConfig()
    train: TrainConfig = TrainConfig()
    ground: GroundConfig = GroundConfig()
    rationale: RationaleConfig = RationaleConfig()
    decode: DecodeConfig = DecodeConfig()
    eval: EvalConfig = EvalConfig()
    baseline: BaselineConfig = BaselineConfig()

    @model_validator(mode="before")
    @classmethod
    def _old_subset_seed(cls, data: Any) -> Any:
        """Run directories written before ``eval.subset_seed`` had a fixed default store ``null``, which meant the
        run's seed: read them with that meaning."""
        if isinstance(data, dict) and isinstance(data.get("eval"), dict) and data["eval"].get("subset_seed", 0) is None:
            data = {**data, "eval": {**data["eval"], "subset_seed": data.get("seed", 0)}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _arm(cls, data: Any) -> Any:
        """The ``arm`` section through :func:`arm_section`: its name filled in, an old flat section read, a setting
        of another arm refused in one line."""
        if isinstance(data, dict) and isinstance(data.get("arm"), dict):
            data = {**data, "arm": arm_section(data["arm"])}
        return data

    @field_validator("cache_dir")
    @classmethod
    def _expand(cls, v: str) -> str:
        return os.path.expanduser(v)

    @model_validator(mode="after")
    def _beams_cover_every_k(self) -> RunConfig:
        """A ranked list is ``decode.num_beams`` long: Recall@K with K above it would silently be Recall@beams."""
        top = max(self.eval.ks, default=0)
        if self.decode.num_beams < top:
            raise ConfigError(
                f"decode.num_beams={self.decode.num_beams} is smaller than max(eval.ks)={top}: the ranked list would "
                f"be {self.decode.num_beams} items long, so Recall@{top} would silently be Recall@"
                f"{self.decode.num_beams}; raise decode.num_beams to {top} or drop the larger ks "
                f"(e.g. --set eval.ks=[{','.join(str(k) for k in self.eval.ks if k <= self.decode.num_beams)}])"
            )
        return self

    @model_validator(mode="after")
    def _scores_within_the_loss(self) -> RunConfig:
        """Decoding may normalise SID scores over the tokens the loss normalised over, or fewer, never more: the
        logits of tokens outside the loss's softmax were never trained against, so they would move the scores."""
        loss, norm = self.train.loss, self.decode.score_normalization
        if norm not in DECODABLE[loss]:
            raise ConfigError(
                f"decode.score_normalization={norm} normalises over {SOFTMAX_SUPPORT[norm]}, but train.loss={loss} "
                f"trains the softmax over {SOFTMAX_SUPPORT[loss]} only, so the scores would rest on untrained logits; "
                f"use decode.score_normalization={' or '.join(DECODABLE[loss])} (or train.loss={norm})"
            )
        return self


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.lr=1e-4'`` -> ``('train.lr', 1e-4)``; the value is parsed as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def load_preset(name_or_path: str) -> dict[str, Any]:
    """Read a YAML preset by name (from the packaged presets) or by path."""
    path = Path(name_or_path)
    if not path.exists():
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise ConfigError(f"no preset or file {name_or_path!r} (packaged presets: {', '.join(known)})")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a YAML mapping")
    return data


def build_config(preset: str | None = None, overrides: list[str] | None = None, base: dict | None = None) -> RunConfig:
    """Defaults <- preset <- base dict <- dotted overrides, validated.

    An override of ``arm.name`` switches the arm: the preset's and the base's settings of other arms are dropped
    (:func:`switch_arm`); another arm's setting given by an override is refused."""
    tree: dict[str, Any] = {}
    if preset:
        tree = load_preset(preset)
    for dotted, value in _flatten(base or {}):
        _set_dotted(tree, dotted, value)
    overridden = [parse_override(text) for text in overrides or []]
    for dotted, value in overridden:
        _set_dotted(tree, dotted, value)
    keys = {dotted for dotted, _ in overridden}
    if "arm.name" in keys and isinstance(tree.get("arm"), dict):
        tree["arm"] = switch_arm(tree["arm"], keys)
    return validate_config(tree)


def validate_config(tree: Any, source: str | os.PathLike | None = None) -> RunConfig:
    """A :class:`RunConfig` from a nested dict, or a :class:`ConfigError` naming ``source`` (a file) when given."""
    where = f"{source}: " if source is not None else ""
    if not isinstance(tree, dict):
        got = "an empty file" if tree is None else type(tree).__name__
        raise ConfigError(f"{where}a configuration must be a YAML mapping, got {got}")
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(f"{where}invalid configuration:\n{e}") from None
    except ConfigError as e:  # a check of ours: one line, naming the file where there is one
        raise ConfigError(f"{where}{e}") from None


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in tree.items():
        if isinstance(v, dict):
            out.extend(_flatten(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", v))
    return out


def differing_settings(configs: Sequence[BaseModel], ignore: Collection[str] = ()) -> list[dict[str, Any]]:
    """Per config, the dotted keys on which the configs do not all agree (``ignore`` left out), with its values: what
    tells runs apart, e.g. ``[{"train.lr": 0.001}, {"train.lr": 0.0005}]``."""
    flat = [dict(_flatten(c.model_dump(mode="json"))) for c in configs]
    keys = sorted({k for f in flat for k in f} - set(ignore))
    differ = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
    return [{k: f.get(k) for k in differ} for f in flat]


def config_to_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def config_from_yaml(path: str | os.PathLike) -> RunConfig:
    """Read a stored ``config.yaml``; unreadable YAML or invalid content is a :class:`ConfigError` naming the file."""
    try:
        tree = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    return validate_config(tree, path)
