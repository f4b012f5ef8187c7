"""Several processes (``torchrun`` / ``accelerate launch``): who this process is, and the few collectives we need.

Nothing here launches anything: the launcher (torchrun, accelerate) starts the processes and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; :func:`init` joins the process group they describe
(``gloo`` on the CPU, ``nccl`` on CUDA, each process on GPU ``LOCAL_RANK``) before anything else needs it (the
Hugging Face Trainer / accelerate adopt a group that exists). In one plain process every helper is the identity:
rank 0 of a world of 1, barriers return at once, a reduction returns its input.

Run files are written by rank 0 alone (:func:`is_main`); the others wait at a :func:`barrier`. Work that is split by
users (validation, evaluation) takes :func:`shard` of the list on each rank and :func:`gather_shards` the results
back in the original order, identical on every rank.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as tdist

T = TypeVar("T")


def launched_world_size() -> int:
    """``WORLD_SIZE`` as set by the launcher (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``; 0 without a launcher): its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init() -> None:
    """Join the launcher's process group once (a no-op in one process, or when already joined): ``nccl`` with CUDA
    (after selecting GPU ``LOCAL_RANK``), ``gloo`` on the CPU."""
    if launched_world_size() <= 1 or not tdist.is_available() or tdist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        tdist.init_process_group("nccl", device_id=torch.device("cuda", local_rank()))
    else:
        tdist.init_process_group("gloo")


def active() -> bool:
    """True where a process group of more than one rank is joined."""
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def world_size() -> int:
    return tdist.get_world_size() if active() else 1


def rank() -> int:
    return tdist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes run files and shows progress."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank got here (e.g. after rank 0 wrote a file the others read)."""
    if active():
        tdist.barrier()


def _device() -> torch.device:
    """Where collectives' tensors live: the rank's GPU under nccl, the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce(values: Sequence[float], op: str = "sum") -> list[float]:
    """Element-wise ``sum`` or ``max`` of ``values`` over the ranks (float64; exact for counts below 2**53)."""
    if not active():
        return [float(v) for v in values]
    reduce_op = {"sum": tdist.ReduceOp.SUM, "max": tdist.ReduceOp.MAX}[op]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    tdist.all_reduce(t, op=reduce_op)
    return t.cpu().tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank where it is True on at least one (a decision every rank must take together)."""
    return all_reduce([1.0 if flag else 0.0], "max")[0] > 0


def shard_bounds(n: int, ranks: int, r: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``r``'s contiguous share of ``n`` items: the first ``n % ranks`` ranks get one
    more (sizes differ by at most one)."""
    base, extra = divmod(n, ranks)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def shard(items: Sequence[T]) -> list[T]:
    """This rank's contiguous share of ``items`` (all of them in one process)."""
    start, stop = shard_bounds(len(items), world_size(), rank())
    return list(items[start:stop])


def gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (picklable objects; ``[obj]`` in one process)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    tdist.all_gather_object(out, obj)
    return out


def gather_shards(part: Sequence[T]) -> list[T]:
    """The per-rank results of :func:`shard` concatenated in rank order: the results of the whole list, in its
    order, on every rank."""
    return [x for piece in gather_objects(list(part)) for x in piece]
