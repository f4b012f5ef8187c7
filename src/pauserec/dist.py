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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as tdist
from torch.distributed.fsdp import FSDPModule

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


def sharded_training_requested() -> bool:
    """True where the launcher asks for parameter sharding that accelerate will apply: FSDP
    (``accelerate launch --use_fsdp`` sets ``ACCELERATE_USE_FSDP``; on GPUs only: accelerate 1.15 turns FSDP on for
    the multi-accelerator distributed types, on the CPU the flag is ignored and the model trains under DDP, see
    docs/training.md) or DeepSpeed (``--use_deepspeed``: ``ACCELERATE_USE_DEEPSPEED``; DeepSpeed has a CPU
    accelerator, so on the CPU too)."""
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and torch.cuda.is_available()
    return fsdp or os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def _zero3(engine: Any) -> bool:
    """Whether ``engine`` (the Trainer's ``deepspeed``: a DeepSpeed engine, or None) partitions the parameters."""
    return engine is not None and engine.zero_optimization_stage() == 3


@contextmanager
def full_weights(model: torch.nn.Module, engine: Any = None) -> Iterator[torch.nn.Module]:
    """Within the block ``model``'s parameters are whole on every rank, so code that reads weights outside the
    wrapped forward (the decoder: ``model.base_model``, slices of the head's weight) sees the unsharded model, and
    ranks decoding different numbers of batches issue no collectives; on exit they are sharded again. A collective
    where parameters are sharded (every rank must enter); a no-op where they are not (one process, DDP).

    * FSDP2 (``torch.distributed.fsdp.fully_shard``, as accelerate's FSDP plugin applies it): every sharded part
      unsharded and kept whole through its forwards, then resharded with its own setting.
    * DeepSpeed ZeRO-3 (``engine``: the Trainer's DeepSpeed engine): the parameters gathered, the engine's module
      hooks (which would partition them again after each submodule's forward) set aside and registered again on exit.
    """
    if _zero3(engine):
        with _zero3_whole(model, engine):
            yield model
        return
    sharded = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not sharded:
        yield model
        return
    # FSDP2 has no getter for reshard_after_forward (the root's is False, set at its lazy init): keep each group's own
    saved = [(g, g.post_forward_mesh_info) for m in sharded for g in m._get_fsdp_state()._fsdp_param_groups]
    for m in sharded:
        m.unshard()
    for g, _ in saved:
        g.post_forward_mesh_info = None  # no resharding after a forward: the weights stay whole until the end
    try:
        yield model
    finally:
        for g, info in saved:
            g.post_forward_mesh_info = info
        for m in sharded:
            m.reshard()


@contextmanager
def _zero3_whole(model: torch.nn.Module, engine: Any) -> Iterator[None]:
    import deepspeed

    offload = engine.optimizer.parameter_offload
    params = list(model.parameters())
    with deepspeed.zero.GatheredParameters(params):
        for p in params:
            p.ds_active_sub_modules.clear()
        for hook in offload.forward_hooks + offload.backward_hooks:
            hook.remove()
        offload.forward_hooks, offload.backward_hooks = [], []
        try:
            yield
        finally:
            offload._register_deepspeed_module(offload.module)


def full_state_dict(model: torch.nn.Module, engine: Any = None) -> dict[str, torch.Tensor] | None:
    """A sharded model's whole state dict on rank 0's CPU (empty on the other ranks): what ``save_pretrained`` must
    be given, since the model's own ``state_dict()`` holds shards (FSDP2) or empty partitions (ZeRO-3, ``engine``).
    A collective where parameters are sharded; None where they are not (the model's own state dict is whole)."""
    if _zero3(engine):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()} if is_main() else {}
    elif any(isinstance(m, FSDPModule) for m in model.modules()):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        return None
    # a tied parameter (the LM head = the input embedding) under its second name: gathered, it is a copy that
    # save_pretrained would write as a tensor of its own
    aliases = {n for n, _ in model.named_parameters(remove_duplicate=False)} - {n for n, _ in model.named_parameters()}
    return {k: v for k, v in state.items() if k not in aliases}
