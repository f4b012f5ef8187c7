"""Where bf16 is used: training autocast, item-text embeddings, the local rationale teacher."""

from __future__ import annotations

import torch


def bf16_enabled(setting: str | bool) -> bool:
    """bf16: on where the hardware supports it (``"auto"``: a CUDA device with bf16, or a CPU with AVX-512 bf16
    instructions), else as forced by the config."""
    if setting != "auto":
        return bool(setting)
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")() in ("AVX512", "AMX")) and bool(
        torch.cpu._is_avx512_bf16_supported()
    )
