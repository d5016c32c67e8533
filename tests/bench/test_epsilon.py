"""The per-example epsilon estimate (bench.epsilon) on Gaussians with known separation."""

import math

import pytest
import torch

from bench import epsilon, lira


def test_epsilon_is_zero_for_equal_distributions_and_grows_with_the_gap():
    gaps = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0, 50.0])
    eps = epsilon.epsilon(gaps, torch.ones(6), torch.ones(6))
    assert eps[0] == 0.0
    assert (eps[1:] > eps[:-1]).all()
    # capped by the rate floor: log((1 - delta - 1e-3) / 1e-3)
    assert math.isclose(
        float(eps[-1]), math.log((1 - epsilon.DELTA - epsilon.MIN_RATE) / epsilon.MIN_RATE), rel_tol=1e-3
    )
    # a one-sd gap between unit Gaussians: the best threshold test gives eps well above 0 and below 3
    assert 0.5 < float(eps[2]) < 3.0


def test_forgetting_score_halves_every_half_unit_of_epsilon():
    s = epsilon.summary(torch.tensor([0.0, 0.4, 0.6, 1.2]))
    assert s["forgetting_score"] == (1 + 1 + 0.5 + 0.25) / 4
    assert s["eps_median"] == pytest.approx(0.5)


def _shadows(phi: torch.Tensor, member: torch.Tensor) -> lira.Shadows:
    s, p = phi.shape
    return lira.Shadows(0, p, torch.zeros(p, 1), torch.zeros(p, dtype=torch.int64), member, phi, [None] * s, 0.0)


def test_per_row_estimate_removes_sampling_noise_and_sees_a_real_gap():
    g = torch.Generator().manual_seed(0)
    member = lira.halves(pool_size=400, shadows=8, seed=0)  # 4 IN and 4 OUT samples per row
    phi = torch.randn(8, 400, generator=g)  # OUT: N(0, 1) for every row
    sh = _shadows(phi, member)
    rows = torch.arange(200)
    same = torch.randn(8, 200, generator=g)  # unlearned exactly like retrained
    shifted = 3 + torch.randn(8, 200, generator=g)  # unlearned models still remember
    in_u = member[:, rows]
    eps_same = epsilon.per_row(sh, rows, same, in_u)
    eps_shifted = epsilon.per_row(sh, rows, shifted, in_u)
    assert float(eps_same.median()) < 0.3  # 4 vs 4 samples alone would suggest a gap of about 0.6 sd
    assert float(eps_shifted.median()) > 2.5
