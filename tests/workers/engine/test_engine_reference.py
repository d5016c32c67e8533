"""Per-row targets: the linear reference model ranks forgotten rows by how hard a model that never saw them
would find them, and the repair never asks a forgotten row to become easier."""

import torch

from workers.engine import UnlearnConfig
from workers.engine.reference import applicable, expected_auc, levels
from workers.engine.repair import rank_targets


def test_mislabelled_rows_rank_as_hard_and_typical_rows_as_easy(digits):
    x, y, xh, yh = digits
    half = xh.shape[0] // 2
    stop = (xh[:half], yh[:half])
    wrong = torch.arange(0, 20)
    clean = torch.arange(20, 40)
    y_bad = y.clone()
    y_bad[wrong] = (y[wrong] + 3) % 10  # a digit labelled as another one
    reference_rows = (x[100:], y[100:])  # retained rows only: neither forget set is among them
    cfg = UnlearnConfig()
    lv_wrong = levels(reference_rows, (x[wrong], y_bad[wrong]), stop, 10, cfg)
    lv_clean = levels(reference_rows, (x[clean], y[clean]), stop, 10, cfg)
    assert lv_wrong.shape == (20,) and lv_clean.shape == (20,)
    assert float(lv_wrong.min()) >= 0.0 and float(lv_wrong.max()) <= 1.0
    assert expected_auc(lv_wrong) < 0.2  # a retrained model would find these rows harder than most unseen ones
    assert expected_auc(lv_clean) > 0.4


def test_token_ids_and_very_wide_rows_get_no_reference_levels():
    assert not applicable(torch.zeros(4, 1 << 15))  # its projection matrix would be too large
    assert applicable(torch.zeros(4, 3, 32, 32))
    ids = torch.randint(0, 100, (8, 5))
    assert not applicable(ids)
    rows = (ids, torch.zeros(8, dtype=torch.int64))
    assert levels(rows, rows, rows, 2, UnlearnConfig()) is None


def test_targets_never_ask_a_forgotten_row_for_a_lower_loss():
    reference_losses = torch.linspace(0.0, 2.0, 101)
    forget_losses = torch.tensor([0.01, 1.5, 3.0])
    low_levels = torch.tensor([0.05, 0.05, 0.05])  # the reference says: easy rows
    targets = rank_targets(forget_losses, reference_losses, low_levels)
    assert torch.all(targets >= forget_losses)
    assert abs(float(targets[0]) - 0.1) < 1e-6  # the easy row below its quantile is pulled up to it
    uniform = rank_targets(forget_losses, reference_losses)
    assert torch.all(uniform >= forget_losses)


def test_a_row_pushed_past_its_target_is_pulled_back_but_not_below_where_it_started():
    reference_losses = torch.linspace(0.0, 2.0, 101)
    now = torch.tensor([1.5, 0.05])  # the first row was pushed past its target, the second not yet up to it
    before = torch.tensor([0.01, 0.02])  # their losses before the deletion
    levels_ = torch.tensor([0.25, 0.25])  # both: the quantile 0.5 of the reference losses
    targets = rank_targets(now, reference_losses, levels_, floor=before)
    assert torch.allclose(targets, torch.tensor([0.5, 0.5]))
    high_start = rank_targets(now, reference_losses, levels_, floor=torch.tensor([0.8, 0.02]))
    assert abs(float(high_start[0]) - 0.8) < 1e-6  # never below the loss the row had before the deletion
