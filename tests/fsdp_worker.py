"""One rank of the FSDP2 test (tests/test_multirank.py): the training loss, its gradients, decoding and saving of a
model sharded with ``torch.distributed.fsdp.fully_shard`` as accelerate's FSDP plugin shards it (each decoder layer,
then the root), against the same model unsharded, on 2 gloo ranks (CPU).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/fsdp_worker.py DATA BACKBONE OUT

Writes ``OUT/rank<R>.json`` with what it compared.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.distributed.fsdp import fully_shard

from pauserec import dist
from pauserec.artifacts import DataDir
from pauserec.config import build_config
from pauserec.model.params import save_plain_checkpoint
from pauserec.recommend import recommend
from pauserec.train.packing import tree_nll
from pauserec.train.run import build_training


def main() -> None:
    data_dir, backbone, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    dist.init()
    rank, world = dist.rank(), dist.world_size()
    cfg = build_config(overrides=[f"model.backbone={backbone}", f"cache_dir={out / 'cache'}", "arm.name=direct",
                                  "train.vocab_rows=all", "decode.num_beams=5", "eval.ks=[1,5]"])
    data = DataDir(data_dir)
    s = build_training(cfg, data.dataset(), data.catalog(), data.split(cfg))
    plain = s.model
    sharded = copy.deepcopy(plain)
    for layer in sharded.model.layers:
        fully_shard(layer)
    fully_shard(sharded)
    sharded_type = type(next(sharded.parameters()).data).__name__  # the parameters are shards of DTensors

    units = [s.train_set[i] for i in range(6)]
    whole = s.collator(units)
    start, stop = dist.shard_bounds(len(units), world, rank)
    mine = s.collator(units[start:stop])

    def weighted_sum(model, batch):
        nll, _, w = tree_nll(model, batch, s.softmax)
        return (nll * w).sum(), w.sum()

    total, weight = weighted_sum(plain, whole)
    (total / weight).backward()  # the one-process mean over all 6 units
    part, _ = weighted_sum(sharded, mine)
    (part * world / weight).backward()  # SFTTrainer's normalisation: FSDP averages the ranks' gradients
    grads = max((p.grad.full_tensor() - q.grad).abs().max().item()
                for p, q in zip(sharded.parameters(), plain.parameters(), strict=True))

    examples = data.split(cfg).valid[:9]
    lo, hi = dist.shard_bounds(len(examples), world, rank)  # 5 and 4 users: unequal decoding work per rank
    args = (s.prompts, s.arm, data.catalog(), s.level_ids, examples[lo:hi], cfg.decode, s.tokenizer.pad_token_id)
    want = recommend(plain, *args)
    with dist.full_weights(sharded) as model:
        got = recommend(model, *args)
    state = dist.full_state_dict(sharded)  # what training saves RUN/model from
    if dist.is_main():
        save_plain_checkpoint(sharded, s.tokenizer, out / "saved", state_dict=state)
    dist.barrier()
    saved = load_file(str(out / "saved" / "model.safetensors"))
    reference = {k: v for k, v in plain.state_dict().items() if k in saved}
    saved_diff = max((saved[k] - reference[k]).abs().max().item() for k in saved)
    again, _ = weighted_sum(sharded, mine)  # sharded again after the block: training goes on
    record = {"loss": [(total / weight).item(), dist.all_reduce([part.item()])[0] / weight.item()],
              "grad_diff": grads, "decode_equal": got.items == want.items, "users": hi - lo,
              "saved_keys": len(saved), "saved_diff": saved_diff, "again": again.item() == part.item(),
              "sharded_type": sharded_type}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
