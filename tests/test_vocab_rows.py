"""train.vocab_rows=active trains exactly what the whole matrix would (a reference beside the fast path), and only
where that is exact; train.cpu_allocator=reuse keeps freed memory during training and returns it after."""

import json
import sys

import pytest
import torch
from helpers import make_data_dir, planted_data
from safetensors.torch import load_file

from pauserec.arms.base import IGNORE
from pauserec.config import build_config
from pauserec.model.backbone import load_backbone
from pauserec.model.tiny import make_tiny_backbone
from pauserec.train import vocab_rows
from pauserec.train.batches import LevelSoftmax
from pauserec.train.cpu_memory import freed_memory_kept
from pauserec.train.run import train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rows")
    data_dir = make_data_dir(root / "data", *planted_data())
    backbone = make_tiny_backbone(root / "backbone", hidden=64, layers=2)
    return root, data_dir, backbone


def config(backbone, root, *extra):
    return build_config(overrides=[
        f"model.backbone={backbone}", f"cache_dir={root / 'cache'}", "train.max_steps=8", "train.batch_size=8",
        "train.lr=0.003", "train.eval_every=8", "train.val_users=10", "train.logging_steps=1", "train.bf16=false",
        "decode.num_beams=5", "eval.ks=[1,5]", "arm.name=pause", "arm.pause_tokens=2", *extra,
    ])


def test_active_rows_train_the_same_weights_as_the_whole_matrix(setup):
    root, data_dir, backbone = setup
    runs = {}
    for mode in ("all", "active"):
        cost = train(config(backbone, root, f"train.vocab_rows={mode}"), data_dir, root / mode)
        log = json.loads((root / mode / "train_log.json").read_text())
        runs[mode] = cost, [e["loss"] for e in log if "loss" in e], load_file(root / mode / "model" / "model.safetensors")
    (all_cost, all_losses, all_w), (act_cost, act_losses, act_w) = runs["all"], runs["active"]
    vocab = all_w["model.embed_tokens.weight"].shape[0]
    assert all_cost["vocab_rows_trained"] == vocab
    assert 0 < act_cost["vocab_rows_trained"] < vocab  # the tiny vocabulary still has rows no input uses
    assert len(act_losses) == 8 and act_losses == pytest.approx(all_losses, rel=1e-5)
    assert set(act_w) == set(all_w)  # the saved model is the plain one: no trained-rows table in it
    for name, w in all_w.items():
        torch.testing.assert_close(act_w[name], w, rtol=1e-4, atol=1e-5, msg=name)
    # the rows it did not train are bitwise the initial ones; the trained ones moved
    init, _ = load_backbone(str(backbone), str(root / "cache"))
    old = init.get_input_embeddings().weight.detach()
    unchanged = (act_w["model.embed_tokens.weight"][: old.shape[0]] == old).all(dim=1)
    assert int(unchanged.sum()) >= old.shape[0] - act_cost["vocab_rows_trained"]
    assert not bool(unchanged.all())


def test_trained_rows_gradient_equals_the_dense_one_on_its_rows():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(20, 4))
    ids, tokens, hidden = torch.tensor([2, 5, 7, 11]), torch.tensor([[2, 5, 5, 7]]), torch.randn(3, 4)
    columns = torch.tensor([7, 11])

    def loss_of(embedded, logits):
        return (embedded ** 2).sum() + torch.logsumexp(logits[:, columns], 1).sum() - logits[:, 11].sum()

    dense = loss_of(weight[tokens], hidden @ weight.T)
    dense.backward()
    table = vocab_rows.TrainedRows(weight, ids)
    fast = loss_of(table.embed(tokens, weight.detach()[tokens]), table.logits(hidden, columns))
    fast.backward()
    assert fast.item() == pytest.approx(dense.item(), rel=1e-6)
    torch.testing.assert_close(table.rows.grad, weight.grad[ids])
    outside = torch.ones(20, dtype=torch.bool)
    outside[ids] = False
    assert bool((weight.grad[outside] == 0).all())  # the premise: rows outside get no gradient
    logits = table.logits(hidden, columns)
    assert bool(torch.isinf(logits[:, [0, 2, 5]]).all()) and bool(torch.isfinite(logits[:, columns]).all())
    with pytest.raises(ValueError, match="outside the trained rows"):
        table.logits(hidden, torch.tensor([3]))
    with torch.no_grad():
        table.rows += 1.0
    table.write_back()
    torch.testing.assert_close(weight.detach()[ids], table.rows.detach())


def _tied_model():
    model = torch.nn.Module()
    emb = torch.nn.Embedding(12, 4)
    head = torch.nn.Linear(4, 12, bias=False)
    head.weight = emb.weight
    model.get_input_embeddings, model.get_output_embeddings = (lambda: emb), (lambda: head)
    return model


def test_rows_to_train_by_hand_and_where_it_does_not_apply():
    model = _tied_model()
    softmax = LevelSoftmax([torch.tensor([8, 9]), torch.tensor([10, 11])], 12)
    units = [[{"input_ids": [1, 2, 8], "labels": [IGNORE, IGNORE, 8]}], [{"input_ids": [1, 3, 10], "labels": [IGNORE, IGNORE, 10]}]]
    ok = dict(policy="full", weight_decay=0.0, packed=True)
    assert vocab_rows.rows_to_train(model, units, softmax, **ok).tolist() == [1, 2, 3, 8, 9, 10, 11]
    text_label = [[{"input_ids": [1, 4, 8], "labels": [IGNORE, 4, 8]}]]  # a rationale token: full softmax
    assert vocab_rows.rows_to_train(model, text_label, softmax, **ok) is None
    assert vocab_rows.rows_to_train(model, units, None, **ok) is None  # train.loss=vocab
    assert vocab_rows.rows_to_train(model, units, softmax, **{**ok, "weight_decay": 0.01}) is None
    assert vocab_rows.rows_to_train(model, units, softmax, **{**ok, "policy": "lora"}) is None
    assert vocab_rows.rows_to_train(model, units, softmax, **{**ok, "packed": False}) is None


def _resident_bytes() -> int:
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_memory_is_kept_inside_the_block_and_returned_after():
    mib = 2**20
    with freed_memory_kept() as applied:
        assert applied is True
        before = _resident_bytes()
        block = torch.ones(300 * mib // 4)  # 300 MiB, every page written
        del block
        assert _resident_bytes() > before + 250 * mib  # freed, but kept for the next step
    assert _resident_bytes() < before + 50 * mib  # given back on leaving the block (malloc_trim)
    with freed_memory_kept(enabled=False) as applied:
        assert applied is False
