"""The repair's anchor on the starting model's predictions, its per-row stopping rule, and the paired guard.

The memorised fixture is the one of test_engine_targeted (a model that fits every train row, 20% of them with
random labels): forgotten rows must climb to the losses of unseen rows, and the question is what else moves.
"""

import pytest
import torch
import torch.nn.functional as F
from test_engine_targeted import N_TRAIN, SPEC, _run, memorised  # noqa: F401 (memorised is a fixture)

from workers.engine.measure import paired_drop, paired_lost
from workers.engine.zoo import load_model


def _probs(state, rows, device):
    with torch.no_grad():
        return F.softmax(load_model(SPEC, state, device)(rows.to(device)), 1).cpu()  # (n, C)


def test_the_anchor_keeps_predictions_on_unseen_rows_where_they_were(memorised, device):  # noqa: F811
    rows = torch.arange(0, N_TRAIN, 20)  # 5% of the rows
    start = _probs(memorised.state, memorised.holdout[0], device)
    shifts, churns = {}, {}
    for weight in (30.0, 0.0):
        res = _run(memorised, rows, device, anchor_weight=weight)
        assert res.evidence["outcome"]["met"] is True  # both reach the target
        p = _probs(res.state_dict, memorised.holdout[0], device)
        shifts[weight] = float((p.mean(0) - start.mean(0)).abs().max())  # largest change of a class's share
        churns[weight] = float((p.argmax(1) != start.argmax(1)).double().mean())
    # without the anchor, raising the forgotten rows' losses moves whole classes on rows never trained on
    assert shifts[30.0] < shifts[0.0] / 3
    assert churns[30.0] < churns[0.0]


def test_the_repair_goes_on_until_each_row_is_near_its_own_target(memorised, device):  # noqa: F811
    rows = torch.arange(0, N_TRAIN, 100)  # 4 rows
    default = _run(memorised, rows, device)
    set_only = _run(memorised, rows, device, gap_tolerance=1e9)  # stops as soon as the set's AUC is in tolerance
    for res in (default, set_only):
        assert res.evidence["stop_reason"] == "auc_target" and res.evidence["outcome"]["met"] is True
    assert default.evidence["stage2"]["target_gap"] <= 0.1  # UnlearnConfig().gap_tolerance
    assert set_only.evidence["stage2"]["target_gap"] > 0.1
    assert default.evidence["stage2"]["steps"] > set_only.evidence["stage2"]["steps"]


class _Fixed:
    """A Measure stand-in that reports fixed per-row correctness."""

    def __init__(self, correct: list[bool]):
        self.correct = torch.tensor(correct)

    def __call__(self, rows):
        return torch.zeros(self.correct.numel()), self.correct


def test_the_guard_allows_the_sampling_noise_of_rows_that_flip_both_ways():
    rows = (torch.zeros(100, 2), torch.zeros(100, dtype=torch.int64))
    before = torch.tensor([True] * 60 + [False] * 40)
    # 4 rows lost and 2 gained: a net drop of 2 points
    now = before.clone()
    now[:4] = False
    now[60:62] = True
    r = paired_drop(_Fixed(now.tolist()), rows, before, 0.015, 0.0)
    assert r["drop"] == pytest.approx(0.02) and r["allowed"] == pytest.approx(0.015)
    assert paired_lost(_Fixed(now.tolist()), [(rows, before)], 0.015, 0.0)  # z = 0: the plain 1.5-point rule
    r = paired_drop(_Fixed(now.tolist()), rows, before, 0.015, 2.0)
    assert r["allowed"] == pytest.approx(0.015 + 2 * 6**0.5 / 100)
    assert not paired_lost(_Fixed(now.tolist()), [(rows, before)], 0.015, 2.0)
    # 10 rows lost, none gained: more than the noise of 10 flips allows
    worse = before.clone()
    worse[:10] = False
    assert paired_lost(_Fixed(worse.tolist()), [(rows, before)], 0.015, 2.0)
    assert paired_drop(_Fixed(now.tolist()), None, before, 0.015, 2.0) is None


def test_anchor_inputs_are_retained_rows_moved_off_the_training_points():
    from workers.engine import UnlearnConfig
    from workers.engine.repair import _Batches
    from workers.engine.zoo import ArchSpec

    cfg = UnlearnConfig(anchor_batch=64)
    retain = torch.arange(100)
    floats = torch.randn(100, 8)
    b = _Batches(ArchSpec("mlp", {"in_features": 8, "hidden": [4], "num_classes": 2}), floats, torch.zeros(100),
                 retain, torch.tensor([100]), cfg, torch.device("cpu"))  # fmt: skip
    xa = b.anchor()
    assert xa.shape == (64, 8) and xa.dtype == torch.float32
    # no anchor input is a training row: each sits about one per-feature standard deviation away from one
    distance = torch.cdist(xa, floats).min(1).values
    assert float(distance.min()) > 0.1
    ids = torch.randint(0, 50, (100, 16))
    text = ArchSpec("text-transformer", {"vocab_size": 50, "max_length": 16, "num_classes": 2})
    b = _Batches(text, ids, torch.zeros(100), retain, torch.tensor([100]), cfg, torch.device("cpu"))
    xa = b.anchor()
    assert xa.dtype == torch.int64 and xa.shape == (64, 16)
    unchanged = sum(bool((row == ids).all(1).any()) for row in xa)  # anchor rows equal to a retained row
    assert unchanged <= 6  # a row keeps all 16 ids with probability 0.75^16 (1%)
    nearest = torch.stack([(row != ids).double().mean(1).min() for row in xa])  # share of ids moved
    assert 0.1 < float(nearest.mean()) < 0.35  # about a quarter of the positions
    assert set(xa.unique().tolist()) <= set(ids.unique().tolist())  # ids that occur in the data, nothing else
    assert UnlearnConfig(anchor_weight=0.0).anchor_weight == 0.0
    off = _Batches(ArchSpec("mlp", {"in_features": 8, "hidden": [4], "num_classes": 2}), floats, torch.zeros(100),
                   retain, torch.tensor([100]), UnlearnConfig(anchor_weight=0.0), torch.device("cpu"))  # fmt: skip
    assert off.anchor() is None
