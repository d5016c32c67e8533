"""The likelihood-ratio attack's arithmetic (bench.lira), on synthetic confidences with known answers."""

import math

import pytest
import torch

from bench import lira


def test_logit_confidence_is_log_odds_of_the_label_and_stays_finite():
    z = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])
    p = torch.softmax(z.double(), 1)[torch.arange(2), y]
    assert torch.allclose(lira.logit_confidence(z, y).double(), (p / (1 - p)).log(), atol=1e-6)
    extreme = lira.logit_confidence(torch.tensor([[80.0, -80.0, -80.0]]), torch.tensor([0]))
    assert math.isfinite(float(extreme)) and float(extreme) > 150  # p_y rounds to 1 in float32


def test_halves_put_every_row_in_exactly_half_the_shadows():
    member = lira.halves(pool_size=10, shadows=6, seed=3)
    assert member.shape == (6, 10)
    assert (member.sum(0) == 3).all()  # every row IN for 3 shadows, OUT for 3
    assert (member.sum(1) == 5).all()  # every shadow trains on half the pool
    assert not torch.equal(member[0], member[2])  # the halves are drawn, not repeated
    with pytest.raises(ValueError):
        lira.halves(10, 5, 0)


def test_fit_recovers_per_row_means_and_a_pooled_spread():
    g = torch.Generator().manual_seed(0)
    member = lira.halves(pool_size=200, shadows=64, seed=0)  # (64, 200)
    mu_in = torch.linspace(0, 5, 200)
    phi = torch.where(
        member, mu_in + 0.5 * torch.randn(64, 200, generator=g), -1 + 2.0 * torch.randn(64, 200, generator=g)
    )
    stats = lira.fit(phi, member)
    assert (stats["mu_in"] - mu_in).abs().max() < 0.5
    assert (stats["mu_out"] + 1).abs().mean() < 0.3
    assert stats["sd_in"][0] == pytest.approx(0.5, rel=0.1) and stats["sd_out"][0] == pytest.approx(2.0, rel=0.1)
    per_row = lira.fit(phi, member, fixed_variance=False)
    assert per_row["sd_in"].std() > 0  # one variance per row, not pooled


def test_the_attack_separates_members_and_not_non_members():
    g = torch.Generator().manual_seed(1)
    rows = torch.arange(400)
    stats = {
        "mu_in": torch.full((400,), 3.0),
        "mu_out": torch.zeros(400),
        "sd_in": torch.ones(400),
        "sd_out": torch.ones(400),
    }
    members = 3 + torch.randn(200, generator=g)
    outsiders = torch.randn(200, generator=g)
    pos = lira.likelihood_ratio(members, stats, rows[:200])
    neg = lira.likelihood_ratio(outsiders, stats, rows[200:])
    assert lira.roc_auc(pos, neg) > 0.95
    same = lira.likelihood_ratio(torch.randn(200, generator=g), stats, rows[:200])
    assert abs(lira.roc_auc(same, neg) - 0.5) < 0.08


def test_roc_auc_counts_ties_half_and_tpr_uses_the_fpr_threshold():
    assert lira.roc_auc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5
    assert lira.roc_auc(torch.tensor([2.0, 0.0]), torch.tensor([1.0])) == 0.5
    neg = torch.arange(100, dtype=torch.float)  # 0..99
    pos = torch.tensor([99.5, 98.5, 50.0])
    assert lira.tpr_at_fpr(pos, neg, 0.01) == pytest.approx(2 / 3)  # threshold 98: one negative (99) above it
    assert lira.tpr_at_fpr(pos, neg, 0.0) == pytest.approx(1 / 3)  # threshold 99, above every negative
    assert lira.tpr_at_fpr(pos, neg, 0.5) == pytest.approx(1.0)
