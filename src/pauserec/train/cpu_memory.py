"""Keep freed CPU memory for reuse during training (``train.cpu_allocator=reuse``).

glibc's ``malloc`` serves every allocation above its mmap threshold (128 KiB, adapting up to 32 MiB) with a fresh
``mmap`` and returns it to the kernel on ``free``. A training step allocates and frees the same large tensors every
step (activations, autocast's bf16 weight copies, gradients), so each of them is page-faulted in again: on 2 CPU cores
zero-filling a fresh 115 MB tensor takes ~40 ms against ~2 ms for reused memory, and a default step spends ~0.1 s on
it (``benchmarks/results/profile-step.md``). ``mallopt`` (the in-process form of ``MALLOC_MMAP_MAX_`` and
``MALLOC_TRIM_THRESHOLD_``) makes malloc carve large blocks from its heap and keep freed ones: the process's memory
stays at its peak instead of shrinking between steps. On leaving :func:`freed_memory_kept` glibc's defaults come back
and ``malloc_trim`` returns the kept memory to the kernel, so what runs after training in the same process (the
demo's evaluation) is measured as usual. Linux with glibc only (a no-op elsewhere; on a GPU the tensors are the CUDA
caching allocator's).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULTS = {_M_MMAP_MAX: 65536, _M_TRIM_THRESHOLD: 128 * 1024}  # glibc's (mallopt.3)
_KEPT = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1}  # no mmap for large blocks; never trim (mallopt takes an int)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        return libc
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return None


@contextmanager
def freed_memory_kept(enabled: bool = True) -> Iterator[bool]:
    """Within the block, large allocations come from malloc's heap and freed memory stays there for reuse; yields
    whether that is in force (False when not ``enabled`` or off glibc). On exit: glibc's defaults, then
    ``malloc_trim(0)``."""
    libc = _libc() if enabled else None
    applied = libc is not None and all(libc.mallopt(k, v) for k, v in _KEPT.items())
    try:
        yield applied
    finally:
        if applied:
            for k, v in _DEFAULTS.items():
                libc.mallopt(k, v)
            libc.malloc_trim(0)
