"""Training batches: right padding (no fully masked attention rows) and the label-window loss against a
per-example reference computed without padding and with the full LM head."""

import torch

from pauserec.arms.base import IGNORE
from pauserec.model.tiny import make_tiny_backbone
from pauserec.train.batches import LevelSoftmax, RightPadCollator, label_window_loss


def rows():
    # three sequences of different lengths; labels on their last 3 tokens (the "SID"), as the arms build them
    seqs = [[5, 6, 7, 8, 20, 21, 22], [5, 9, 20, 23, 24], [5, 6, 7, 8, 9, 10, 11, 21, 22, 23]]
    return [{"input_ids": s, "labels": [IGNORE] * (len(s) - 3) + s[-3:]} for s in seqs]


def test_collator_pads_on_the_right_so_every_row_sees_a_real_token():
    batch = RightPadCollator(pad_token_id=0)(rows())
    assert batch["input_ids"].shape == (3, 10)
    assert batch["attention_mask"][:, 0].all()  # causal attention: every query row has a real key
    assert batch["input_ids"][1].tolist() == [5, 9, 20, 23, 24, 0, 0, 0, 0, 0]
    assert batch["attention_mask"][1].tolist() == [1] * 5 + [0] * 5
    assert batch["labels"][1].tolist() == [IGNORE, IGNORE, 20, 23, 24] + [IGNORE] * 5


def reference_loss(model, rows, softmax=None):
    """Each example alone (no padding), full logits, mean NLL over all labelled tokens."""
    nll = []
    for r in rows:
        ids = torch.tensor([r["input_ids"]])
        logits = model(input_ids=ids).logits[0, :-1].float()
        target = torch.tensor(r["labels"][1:])
        keep = target != IGNORE
        f = softmax.nll if softmax else lambda lg, t: torch.nn.functional.cross_entropy(lg, t, reduction="none")
        nll.append(f(logits[keep], target[keep]))
    return torch.cat(nll).mean()


def test_window_loss_equals_unpadded_reference(tmp_path):
    from transformers import AutoModelForCausalLM

    path = make_tiny_backbone(tmp_path / "bb", hidden=32, layers=2)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    batch = RightPadCollator(pad_token_id=0)(rows())
    softmax = LevelSoftmax([torch.tensor([20, 21, 22]), torch.tensor([23, 24])], model.config.vocab_size)
    for sm in (None, softmax):
        loss, n = label_window_loss(model, batch, sm)
        assert n == 9
        torch.testing.assert_close(loss, reference_loss(model, rows(), sm), rtol=1e-5, atol=1e-5)


def test_window_loss_gradients_are_finite_and_reach_the_prompt(tmp_path):
    from transformers import AutoModelForCausalLM

    path = make_tiny_backbone(tmp_path / "bb", hidden=32, layers=2)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    loss, _ = label_window_loss(model, RightPadCollator(pad_token_id=0)(rows()))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.get_input_embeddings().weight.grad[[5, 6, 7]].abs().sum() > 0  # prompt tokens get gradient


def test_level_softmax_nll_by_hand_for_sid_only_and_mixed_labels():
    """SID labels: cross-entropy over their level's codes only; other labels: over the whole vocabulary; the
    gradient reaches only the columns each label's softmax reads."""
    softmax = LevelSoftmax([torch.tensor([2, 3]), torch.tensor([4, 5, 6])], vocab_size=8)
    logits = torch.tensor([[0.0, 9.0, 1.0, 2.0, 5.0, 5.0, 5.0, 9.0],
                           [0.0, 9.0, 1.0, 2.0, 0.0, 1.0, 2.0, 9.0],
                           [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]], requires_grad=True)
    lse = lambda *xs: torch.logsumexp(torch.tensor(xs), 0)  # noqa: E731
    level0 = lse(1.0, 2.0) - 1.0  # target 2 among codes {2: 1.0, 3: 2.0}
    level1 = lse(0.0, 1.0, 2.0) - 2.0  # target 6 among {4: 0, 5: 1, 6: 2}
    full = lse(*[float(v) for v in range(8)]) - 7.0  # target 7, not an SID token: the whole row
    sid_only = softmax.nll(logits[:2], torch.tensor([2, 6]))
    torch.testing.assert_close(sid_only, torch.stack([level0, level1]))
    mixed = softmax.nll(logits, torch.tensor([2, 6, 7]))
    torch.testing.assert_close(mixed, torch.stack([level0, level1, full]))
    mixed.sum().backward()
    read = logits.grad != 0
    assert read[0].tolist() == [False, False, True, True, False, False, False, False]
    assert read[1].tolist() == [False, False, False, False, True, True, True, False]
    assert read[2].all()
