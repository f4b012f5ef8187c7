"""Resource accounting: the peak-memory figure covers only what ran since the last reset."""

from pathlib import Path

import numpy as np
import pytest

from pauserec.eval.cost import peak_memory_bytes, reset_peak_memory


def test_reset_forgets_an_earlier_peak():
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("no writable /proc/self/clear_refs (not Linux, or a sandbox without it)")
    block = np.ones(400 * 2**20 // 8)  # 400 MiB resident (every page written)
    with_block = peak_memory_bytes()
    del block
    reset_peak_memory()
    assert peak_memory_bytes() < with_block - 200 * 2**20
