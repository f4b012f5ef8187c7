"""The LLM backbone: loading (local HF directory or the packaged SmolLM2), vocabulary extension (SID, pause and
marker tokens) and the trainable-parameter policy (full, LoRA + new rows, new rows only)."""

from .backbone import BUILTIN_BACKBONES, load_backbone, resolve_backbone
from .params import (
    apply_trainable_policy,
    count_parameters,
    embeddings_tied,
    merge_for_inference,
    new_row_parameters,
    save_plain_checkpoint,
)
from .tiny import make_tiny_backbone
from .vocab import (
    check_vocabulary,
    extend_vocabulary,
    token_ids_by_level,
)

__all__ = [
    "BUILTIN_BACKBONES",
    "apply_trainable_policy",
    "check_vocabulary",
    "count_parameters",
    "embeddings_tied",
    "extend_vocabulary",
    "load_backbone",
    "make_tiny_backbone",
    "merge_for_inference",
    "new_row_parameters",
    "resolve_backbone",
    "save_plain_checkpoint",
    "token_ids_by_level",
]
