"""Which parameters train: full fine-tuning, LoRA + the new token rows, or the new token rows only.

The new rows (SID, pause and marker tokens) must train under every policy: plain LoRA leaves a resized
embedding matrix frozen, so the new tokens would keep their initial embeddings. Both parameter-efficient policies
use PEFT's *trainable tokens* (``TrainableTokensLayer``): the selected rows live in a small trainable
``trainable_tokens_delta`` parameter that replaces those rows in the forward pass, while the base embedding matrix
(every old row included) stays frozen and bitwise unchanged until :func:`merge_for_inference` writes the rows back.

Tied embeddings (SmolLM2): PEFT wraps the input embedding and ties ``lm_head`` to the same adapter, so the output
rows of the new tokens are the trained input rows. Untied: ``lm_head`` is targeted explicitly with the same indices,
so the new tokens' output rows train too (PEFT's default for a plain index list would leave them frozen).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..io import atomic_directory
from ..config import ModelConfig
from ..errors import ConfigError


def _module_name(model: nn.Module, module: nn.Module | None) -> str | None:
    if module is None:
        return None
    return next((n for n, m in model.named_modules() if m is module), None)


def embeddings_tied(model: nn.Module) -> bool:
    """True when the output projection shares its weight with the input embedding."""
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def _token_targets(model: nn.Module, ids: list[int]) -> dict[str, list[int]]:
    """Modules whose rows of ``ids`` must train: the input embedding, and ``lm_head`` when untied."""
    targets = {_module_name(model, model.get_input_embeddings()): list(ids)}
    if not embeddings_tied(model):
        out_name = _module_name(model, model.get_output_embeddings())
        if out_name is not None:
            targets[out_name] = list(ids)
    return targets


def apply_trainable_policy(
    model: nn.Module, policy: Literal["full", "lora", "new_rows"], new_token_ids: list[int], cfg: ModelConfig
) -> nn.Module:
    """Make the parameters of ``policy`` trainable; return the model to train (a ``PeftModel`` for lora/new_rows).

    * ``full``: every parameter trains (the model is returned as is).
    * ``lora``: LoRA adapters (``cfg.lora_r``, ``lora_alpha``, ``lora_dropout``, ``lora_target_modules``) on a
      frozen base, plus the rows of ``new_token_ids`` (``LoraConfig.trainable_token_indices``).
    * ``new_rows``: only the rows of ``new_token_ids`` train (``TrainableTokensConfig``); everything else frozen.

    Under lora/new_rows the new tokens' output rows train too: tied to the input rows, or, when untied, through
    ``lm_head`` targeted with the same indices.
    """
    if policy == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if policy not in ("lora", "new_rows"):
        raise ConfigError(f"unknown trainable policy {policy!r} (full, lora, new_rows)")
    if not new_token_ids:
        raise ConfigError(f"trainable policy {policy!r} needs the ids of the new tokens (none given)")
    from peft import LoraConfig, TrainableTokensConfig, get_peft_model

    ids = sorted(set(int(i) for i in new_token_ids))
    targets = _token_targets(model, ids)
    if policy == "lora":
        peft_cfg = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_target_modules),
            trainable_token_indices=targets if len(targets) > 1 else ids,
            task_type="CAUSAL_LM",
        )
    else:
        peft_cfg = TrainableTokensConfig(token_indices=ids, target_modules=list(targets), task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        # TrainableTokensModel does tie lm_head to the embedding's adapter (checked by the tests: logits before and
        # after merging agree), but BaseTuner warns generically that it cannot tie adapters of tied layers.
        warnings.filterwarnings("ignore", message=".*no implementation exists to tie the adapters.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        try:
            return get_peft_model(model, peft_cfg)  # wraps ``model``'s modules in place
        except ValueError as e:  # e.g. target modules that this architecture does not have
            raise ConfigError(f"trainable policy {policy!r}: {e}") from e


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{"trainable": n, "total": n}``, each shared (tied) tensor counted once.

    Under lora/new_rows, ``total`` includes the adapter parameters and ``trainable`` is the adapters (LoRA matrices
    and the new rows' ``trainable_tokens_delta``).
    """
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():  # parameters() already skips duplicates of the same Parameter
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = getattr(p, "ds_numel", p.numel())  # DeepSpeed ZeRO-3 partitions a parameter: its local tensor is empty
        total += n
        if p.requires_grad:
            trainable += n
    return {"trainable": trainable, "total": total}


def new_row_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters holding only new token rows (PEFT ``trainable_tokens_delta``), e.g. for their own learning
    rate. Empty under ``full``, where the new rows are part of the whole embedding matrix."""
    return [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n and p.requires_grad]


def is_peft_model(model: nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


def merge_for_inference(model: nn.Module) -> nn.Module:
    """A plain ``transformers`` model with every adapter merged in (PEFT ``merge_and_unload``), in eval mode.

    A plain model is returned as is. Merging writes into the base model's weights in place: to go on training the
    PEFT model afterwards, merge a ``copy.deepcopy`` of it instead. Tied embeddings stay tied.
    """
    if is_peft_model(model):
        model = model.merge_and_unload()
    if getattr(model.config, "tie_word_embeddings", False) and not embeddings_tied(model):
        model.tie_weights()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def save_plain_checkpoint(model: nn.Module, tokenizer, path: str | os.PathLike,
                          state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Save ``model`` (merged first if it is a PEFT model, see :func:`merge_for_inference`) and ``tokenizer`` as a
    plain Hugging Face checkpoint, loadable with :func:`pauserec.model.backbone.load_backbone`. ``state_dict``:
    the weights to write instead of the model's own (an FSDP-sharded model's gathered whole state dict).

    Written to a temporary directory next to ``path`` and renamed into place; an existing ``path`` is replaced.
    """
    model = merge_for_inference(model)
    with atomic_directory(path) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
    return Path(path)


__all__ = [
    "apply_trainable_policy",
    "count_parameters",
    "embeddings_tied",
    "merge_for_inference",
    "new_row_parameters",
    "save_plain_checkpoint",
]
