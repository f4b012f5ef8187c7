"""Full-softmax next-item baselines (SASRec-CE, HSTU from torch-rechub): training rows and loss against references,
causality, planted structure (item i is followed by item i+1) that popularity cannot learn, the run contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("torch_rechub")

from helpers import make_data_dir, random_codes  # noqa: E402

from pauserec.baselines import BASELINES, make_baseline, run_baseline  # noqa: E402
from pauserec.baselines import next_item  # noqa: E402
from pauserec.baselines.hstu import HSTU  # noqa: E402
from pauserec.baselines.sasrec_ce import SASRecCE  # noqa: E402
from pauserec.config import build_config  # noqa: E402
from pauserec.data.dataset import Dataset  # noqa: E402
from pauserec.data.split import Example  # noqa: E402
from pauserec.errors import ConfigError  # noqa: E402
from pauserec.io import read_json  # noqa: E402
from pauserec.sid.catalog import SIDCatalog  # noqa: E402

TINY = {
    "sasrec_ce": ["baseline.sasrec_ce.hidden=32", "baseline.sasrec_ce.layers=1", "baseline.sasrec_ce.heads=1"],
    "hstu": ["baseline.hstu.d_model=32", "baseline.hstu.layers=1", "baseline.hstu.heads=1", "baseline.hstu.dqk=16",
             "baseline.hstu.dv=16"],
}
TRAIN = ["max_len=5", "epochs=25", "lr=0.005", "batch_size=16", "dropout=0.1", "val_users=40", "patience=25"]
MODELS = {"sasrec_ce": SASRecCE, "hstu": HSTU}


def overrides(name: str, *extra: str) -> list[str]:
    return [*TINY[name], *[f"baseline.{name}.{kv}" for kv in TRAIN], *extra]


def successor_data(tmp_path, n_items: int = 30, n_users: int = 120, length: int = 6):
    """Each user reads a run of consecutive items (mod n_items) from a random start: the next item is always the
    last one + 1, and every item is about equally popular."""
    rng = np.random.default_rng(0)
    seqs = [[(int(s) + t) % n_items for t in range(length)] for s in rng.integers(0, n_items, n_users)]
    dataset = Dataset(name="successor", item_ids=[f"i{i}" for i in range(n_items)],
                      item_fields=[{"title": f"Item {i}"} for i in range(n_items)],
                      user_ids=[f"u{u}" for u in range(n_users)], sequences=seqs)
    catalog = SIDCatalog(random_codes(n_items), [4, 4, 4], dataset.item_ids, dataset.content_hash())
    return dataset, make_data_dir(tmp_path / "data", dataset, catalog)


def test_registry_has_both():
    assert BASELINES["sasrec_ce"] == ".sasrec_ce:SASRecCERanker" and BASELINES["hstu"] == ".hstu:HSTURanker"
    cfg = build_config()
    assert make_baseline("sasrec_ce", cfg).name == "sasrec_ce" and make_baseline("hstu", cfg).name == "hstu"
    with pytest.raises(ConfigError, match="does not divide"):
        build_config(overrides=["baseline.hstu.heads=3"])


def test_training_rows_golden():
    # [0 1 2 3] -> its last max_len + 1 = 3 items 1 2 3 -> tokens 2 3 4; [4 5] -> 5 6; [6] has no next item
    inputs, labels = next_item.training_rows([[0, 1, 2, 3], [4, 5], [6]], max_len=2)
    assert inputs.tolist() == [[2, 3], [0, 5]]
    assert labels.tolist() == [[3, 4], [0, 6]]


class FixedLogits(torch.nn.Module):
    """States = the given logits, output layer = identity: token scores are exactly ``logits``."""

    def __init__(self, logits):
        super().__init__()
        self.value = logits

    def hidden(self, tokens):
        return self.value

    def output_layer(self):
        return torch.eye(self.value.shape[-1]), None


def test_loss_is_cross_entropy_over_items_only_by_hand():
    # one row, two positions; position 0 is padding (label 0) and is ignored; vocab = pad + 2 items
    logits = torch.tensor([[[9.0, 1.0, 2.0], [5.0, 0.0, 1.0]]])
    loss = next_item.next_item_loss(FixedLogits(logits), torch.tensor([[0, 1]]), torch.tensor([[0, 2]]))
    expected = -(1.0 - math.log(math.exp(0.0) + math.exp(1.0)))  # item 2 (token 2) among items 1 and 2; pad's 5 ignored
    assert loss.item() == pytest.approx(expected)


def test_loss_matches_torch_rechub_seq_trainer():
    """Our loss is torch-rechub's own HSTU objective (``SeqTrainer._compute_next_token_loss``)."""
    from torch_rechub.trainers.seq_trainer import SeqTrainer

    torch.manual_seed(0)
    seq = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    target = torch.tensor([5, 6])
    logits = torch.randn(2, 4, 8)
    stub = type("Stub", (), {"loss_fn": torch.nn.CrossEntropyLoss(ignore_index=0)})()
    theirs = SeqTrainer._compute_next_token_loss(stub, logits, seq, target)
    labels = torch.cat([seq[:, 1:], target[:, None]], dim=1).masked_fill(seq.eq(0), 0)
    ours = next_item.next_item_loss(FixedLogits(logits), seq, labels)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


@pytest.mark.parametrize("name", ["sasrec_ce", "hstu"])
def test_masked_scores_equal_the_models_full_logits(name):
    """``hidden`` + ``output_layer`` at labelled positions == the model's own all-position logits (HSTU: torch-rechub's
    ``HSTUModel.forward``), loss and last-position scores alike."""
    cfg = build_config(overrides=overrides(name))
    torch.manual_seed(0)
    model = MODELS[name](20, getattr(cfg.baseline, name)).eval()
    x = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 6], [0, 0, 0, 0, 7]])
    y = torch.tensor([[0, 0, 4, 5, 6], [2, 3, 4, 5, 7], [0, 0, 0, 0, 8]])
    full = model.logits(x)[..., 1:]
    reference = torch.nn.functional.cross_entropy(full.reshape(-1, 20), (y - 1).reshape(-1), ignore_index=-1)
    assert next_item.next_item_loss(model, x, y).item() == pytest.approx(reference.item(), rel=1e-5)
    torch.testing.assert_close(next_item.item_logits(model, model.hidden(x)[:, -1]), full[:, -1])


@pytest.mark.parametrize("name", ["sasrec_ce", "hstu"])
def test_causal_and_single_row(name):
    cfg = build_config(overrides=overrides(name))
    torch.manual_seed(0)
    model = MODELS[name](20, getattr(cfg.baseline, name)).eval()
    a = model.logits(torch.tensor([[1, 2, 3, 4, 5]]))
    b = model.logits(torch.tensor([[1, 2, 3, 4, 9]]))
    assert a.shape == (1, 5, 21)
    torch.testing.assert_close(a[:, :4], b[:, :4])  # a later item never changes an earlier position
    assert not torch.allclose(a[:, 4], b[:, 4])
    both = model.logits(torch.tensor([[1, 2, 3, 4, 5], [0, 0, 6, 7, 8]]))
    torch.testing.assert_close(both[:1], a, rtol=1e-5, atol=1e-5)  # a batch of one = the same row in a batch


@pytest.mark.parametrize("name", ["sasrec_ce", "hstu"])
def test_learns_the_successor_that_popularity_cannot(name, tmp_path):
    _, data = successor_data(tmp_path)
    cfg = build_config(overrides=overrides(name, "eval.split=valid", "eval.bootstrap=0", "eval.ks=[10]"))
    result = run_baseline(name, cfg, data, tmp_path / name, progress=False)
    pop = run_baseline("popularity", cfg, data, tmp_path / "pop")
    recall, pop_recall = result["metrics"]["recall@10"]["mean"], pop["metrics"]["recall@10"]["mean"]
    print(f"{name} R@10 {recall:.3f} popularity {pop_recall:.3f}")
    assert recall > 0.9 and pop_recall < 0.6, (recall, pop_recall)


@pytest.mark.parametrize("name", ["sasrec_ce", "hstu"])
def test_run_contract_and_determinism(name, tmp_path):
    _, data = successor_data(tmp_path, n_users=40)
    cfg = build_config(overrides=overrides(name, f"baseline.{name}.epochs=2", "eval.max_users=15", "eval.bootstrap=10",
                                           "eval.exclude_history=true"))
    first = run_baseline(name, cfg, data, tmp_path / "a", progress=False)
    second = run_baseline(name, cfg, data, tmp_path / "b", progress=False)
    run = tmp_path / "a"
    for f in ("config.yaml", "env.json", "metrics.json", "predictions.jsonl", "cost.json", "next_item.json"):
        assert (run / f).exists(), f
    assert first["model"] == name and first["metrics"]["users"]["count"] == 15
    assert first["cost"]["train"]["epochs"] == 2 and first["cost"]["train"]["parameters"] > 0
    assert (run / "predictions.jsonl").read_text() == (tmp_path / "b" / "predictions.jsonl").read_text()  # seeded
    assert first["metrics"]["recall@10"] == second["metrics"]["recall@10"]
    record = read_json(run / "next_item.json")
    assert [e["epoch"] for e in record["epochs"]] == [1, 2] and record["best_epoch"] in (1, 2)


def test_padding_is_never_ranked_and_exclusion_applies():
    cfg = build_config(overrides=overrides("hstu"))
    torch.manual_seed(0)
    model = HSTU(6, cfg.baseline.hstu)
    examples = [Example(0, (1, 2), 3, 2), Example(1, (4,), 5, 1)]
    items, _ = next_item.rank(model, examples, k=6, max_len=5, batch=1, exclude=[frozenset({1, 2}), frozenset()])
    assert sorted(items[1]) == list(range(6))  # all six items, no padding token
    assert len(items[0]) == 6 and set(items[0][:4]) == {0, 3, 4, 5}  # excluded items only after the others
