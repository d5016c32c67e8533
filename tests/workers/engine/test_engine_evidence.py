import pytest
import torch
from sklearn.metrics import roc_auc_score

from workers.engine import ArchSpec, build_model, evaluate, forget_commitment, membership_auc, param_distance
from workers.engine.evidence import HIST_LOG10_EDGES, loss_histogram


def test_membership_auc_extremes_and_ties():
    low, high = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([1.0, 2.0])
    assert membership_auc(low, high) == 1.0  # forgotten rows still fit better than unseen rows
    assert membership_auc(high, low) == 0.0
    assert membership_auc(torch.full((4,), 0.5), torch.full((6,), 0.5)) == 0.5


def test_membership_auc_matches_sklearn():
    gen = torch.Generator().manual_seed(0)
    f = torch.rand(57, generator=gen).round(decimals=1)  # ties included
    h = (torch.rand(91, generator=gen) + 0.2).round(decimals=1)
    scores = torch.cat([-f, -h]).numpy()
    members = [1] * 57 + [0] * 91
    assert membership_auc(f, h) == pytest.approx(roc_auc_score(members, scores), abs=1e-12)


SALT = bytes(range(32))


def test_forget_commitment_covers_ids_and_content_and_ignores_order():
    gen = torch.Generator().manual_seed(0)
    x, y, ids = torch.rand(5, 4, generator=gen), torch.tensor([0, 1, 2, 1, 0]), ["a", "b", "c", "d", "e"]
    base = forget_commitment(ids, x, y, salt=SALT)
    assert len(base) == 64 and int(base, 16) >= 0
    perm = torch.tensor([3, 1, 4, 0, 2])
    assert forget_commitment([ids[i] for i in perm], x[perm], y[perm], salt=SALT) == base
    assert forget_commitment(["a", "b", "c", "d", "z"], x, y, salt=SALT) != base
    y2 = y.clone()
    y2[0] = 9
    assert forget_commitment(ids, x, y2, salt=SALT) != base
    x2 = x.clone()
    x2[2, 1] += 1e-3
    assert forget_commitment(ids, x2, y, salt=SALT) != base
    assert forget_commitment(ids[:4], x[:4], y[:4], salt=SALT) != base


def test_forget_commitment_is_salted():
    """Without the salt nobody can test guessed rows against the value: another salt, another commitment, and
    no salt at all draws a fresh one each time."""
    x, y, ids = torch.ones(2, 3), torch.tensor([1, 2]), ["alice@example.com", "bob@example.com"]
    assert forget_commitment(ids, x, y, salt=SALT) != forget_commitment(ids, x, y, salt=bytes(32))
    assert forget_commitment(ids, x, y) != forget_commitment(ids, x, y)
    with pytest.raises(ValueError):
        forget_commitment(ids, x, y, salt=b"short")


def test_param_distance():
    a = {"w": torch.zeros(2, 2), "b": torch.zeros(3), "n": torch.tensor(5)}
    b = {"w": torch.full((2, 2), 1.0), "b": torch.zeros(3), "n": torch.tensor(7)}
    assert param_distance(a, b) == pytest.approx(2.0)  # integer buffers are not parameters


def test_evaluate_matches_manual():
    spec = ArchSpec("logreg", {"in_features": 4, "num_classes": 3})
    model = build_model(spec)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(50, 4, generator=gen), torch.randint(0, 3, (50,), generator=gen)
    with torch.no_grad():
        logits = model(x)
    want_acc = float((logits.argmax(1) == y).double().mean())
    want_loss = float(torch.nn.functional.cross_entropy(logits, y))
    got = evaluate(spec, model.state_dict(), x, y)
    assert got["accuracy"] == pytest.approx(want_acc)
    assert got["loss"] == pytest.approx(want_loss, rel=1e-5)
    assert got["rows"] == 50
    assert evaluate(spec, model, x, y) == got


def test_loss_histogram_counts_every_loss_in_its_fixed_bin():
    assert len(HIST_LOG10_EDGES) == 23 and HIST_LOG10_EDGES[0] == -4.0 and HIST_LOG10_EDGES[-1] == 1.5
    losses = torch.tensor([0.0, 1e-6, 1e-4, 0.0009, 0.5, 1.0, 2.0, 40.0, 1e6])
    counts = loss_histogram(losses)
    assert len(counts) == 22 and sum(counts) == losses.numel()
    assert counts[0] == 3  # 0, 1e-6 (below the first edge) and 1e-4 itself
    assert counts[3] == 1  # 9e-4: log10 = -3.05, in [-3.25, -3.0)
    assert counts[14] == 1  # 0.5: log10 = -0.30, in [-0.5, -0.25)
    assert counts[16] == 1 and counts[17] == 1  # 1.0 (log10 0) and 2.0 (log10 0.30)
    assert counts[21] == 2  # 40 and 1e6: above the last edge, in the last bin
