"""``local`` rationales: a Hugging Face causal LM as teacher (default: the packaged SmolLM2-135M-Instruct),
generating in length-sorted, left-padded batches with ``generate`` (bf16 where the hardware supports it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..model.chat import chat_text
from .base import RationaleRequest


class LocalProvider:
    """Args:
        model: an HF causal-LM directory or ``builtin:smollm2-135m``; cache_dir: where converted models live.
        max_new_tokens, temperature: decoding (temperature 0 = greedy); batch_size: prompts per ``generate`` call;
        no_repeat_ngram_size: no n-gram of this many tokens twice in a rationale (0 = off).
    """

    def __init__(self, model: str, cache_dir: str, max_new_tokens: int, temperature: float, batch_size: int, seed: int = 0,
                 no_repeat_ngram_size: int = 3):
        self.model_name, self.cache_dir = model, cache_dir
        self.max_new_tokens, self.temperature, self.batch_size, self.seed = max_new_tokens, temperature, batch_size, seed
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self._loaded = None  # (model, tokenizer), loaded on the first call and kept: acquisition calls per chunk

    def teacher(self):
        """``(model, tokenizer)`` of the teacher, loaded on the first call and kept."""
        if self._loaded is None:
            self._loaded = _load_teacher(self.model_name, self.cache_dir)
        return self._loaded

    def settings(self) -> dict[str, Any]:
        return {
            "provider": "local",
            "model": self.model_name,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "seed": self.seed if self.temperature > 0 else None,
        }

    def generate(self, requests: Sequence[RationaleRequest], progress: bool = False) -> list[str]:
        from transformers import GenerationConfig

        model, tok = self.teacher()
        prompts = [chat_text(tok, r.messages(), add_generation_prompt=True) for r in requests]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        gen = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.temperature > 0,
            temperature=self.temperature if self.temperature > 0 else None,
            no_repeat_ngram_size=self.no_repeat_ngram_size or None,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        torch.manual_seed(self.seed)
        out: list[str] = [""] * len(prompts)
        bar = _bar(len(prompts), progress)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                enc = enc.to(model.device)
                ids = model.generate(**enc, generation_config=gen)
                texts = tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                for i, text in zip(idx, texts, strict=True):
                    out[i] = text
                if bar is not None:
                    bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out


def _load_teacher(model_name: str, cache_dir: str):
    from ..model.backbone import inference_device, load_backbone
    from ..precision import bf16_enabled

    dtype = torch.bfloat16 if bf16_enabled("auto") else torch.float32  # half the bytes per decoding step
    model, tok = load_backbone(model_name, cache_dir, dtype=dtype)
    model.to(inference_device()).eval()
    tok.padding_side = "left"
    return model, tok


def _bar(total: int, progress: bool):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="rationale", desc="teacher")
