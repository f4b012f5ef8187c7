"""Resource accounting shared by training and evaluation."""

from __future__ import annotations

import resource
import sys

import torch


def peak_memory_bytes() -> int:
    """Peak memory of this process: GPU allocator peak on CUDA, else the resident-set high-water mark."""
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB
