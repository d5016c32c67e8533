"""The targeted pipeline (the default update): stage 2 does the work, the stop rule and the guard read disjoint
holdout rows, small forget sets never end worse, the poison purpose, verdicts and stale caches."""

from dataclasses import dataclass

import pytest
import torch

from workers.engine import ArchSpec, TrainConfig, UnlearnConfig, build_cache, train, unlearn
from workers.engine import iau as iau_module
from workers.engine import measure as measure_module
from workers.engine import reference as reference_module
from workers.engine import repair as repair_module
from workers.engine import targeted as targeted_module
from workers.engine.data import synthetic_memorise

SPEC = ArchSpec("mlp", {"in_features": 64, "hidden": [128], "num_classes": 10})
N_TRAIN = 400


@dataclass
class Memorised:
    x: torch.Tensor  # (400, 64) train rows, 20% of them with random labels
    y: torch.Tensor
    holdout: tuple[torch.Tensor, torch.Tensor]  # (300, 64) rows never trained on, 20% of them mislabelled too
    state: dict  # fits every train row: their loss is far below the holdout's


@pytest.fixture(scope="module")
def memorised(device) -> Memorised:
    x, y = synthetic_memorise(700, d=64, classes=10, signal=0.35, seed=0)
    y = y.clone()
    gen = torch.Generator().manual_seed(1)
    flip = torch.rand(y.numel(), generator=gen) < 0.2  # train and holdout rows alike: one distribution
    y[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=gen)
    holdout = (x[N_TRAIN:], y[N_TRAIN:])
    x, y = x[:N_TRAIN], y[:N_TRAIN]
    state = train(SPEC, x, y, TrainConfig(epochs=40, batch_size=32, lr=3e-3, alpha=0.0), device)
    return Memorised(x, y, holdout, state)


def _forget(rows: list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    forget_idx = torch.as_tensor(rows, dtype=torch.int64)
    retain = torch.ones(N_TRAIN, dtype=torch.bool)
    retain[forget_idx] = False
    return retain, forget_idx


def _run(m: Memorised, rows, device, **cfg):
    retain, forget_idx = _forget(rows)
    return unlearn(SPEC, m.state, m.x, m.y, retain, forget_idx, UnlearnConfig(**cfg), device, holdout=m.holdout)


def test_the_default_is_the_targeted_pipeline_and_stage2_does_the_work(memorised, device):
    rows = torch.arange(0, N_TRAIN, 20)  # 5% of the rows
    full = _run(memorised, rows, device)
    assert full.evidence["update"] == "targeted" and full.evidence["purpose"] == "privacy"
    out = full.evidence["outcome"]
    assert out["met"] is True
    assert out["measured"]["membership_auc_start"] > 0.75  # memorised: the rows stand out before
    assert abs(out["measured"]["membership_auc"] - 0.5) <= out["target"]["band"]
    assert full.evidence["stage2"]["steps"] > 0
    # the same request with stage 2 switched off: stage 1 alone leaves the rows detectable
    stage1 = _run(memorised, rows, device, repair_steps=0)
    assert stage1.evidence["outcome"]["met"] is False
    assert stage1.evidence["outcome"]["measured"]["membership_auc"] > 0.7
    assert (
        full.evidence["outcome"]["measured"]["forget_loss"] > 10 * stage1.evidence["outcome"]["measured"]["forget_loss"]
    )
    # utility on the held-out rows the guard watched stays where it was
    assert out["measured"]["guard_accuracy_drop"] <= 0.015 + 1e-9


def test_stop_rule_never_reads_the_guard_rows(memorised, device, monkeypatch):
    """Every membership AUC and loss target is computed against the stop rows only; the guard rows are only
    measured for accuracy. Losses are traced back to the row set they were computed on."""
    origin: dict[int, int] = {}  # id(loss tensor) -> id(row set)
    real_call = measure_module.Measure.__call__

    def tracing_call(self, rows):
        out = real_call(self, rows)
        origin[id(out[0])] = id(rows)
        return out

    split: dict[str, int] = {}
    real_split = iau_module.split_holdout

    def recording_split(*args, **kwargs):
        stop, guard = real_split(*args, **kwargs)
        split.update(stop=id(stop), guard=id(guard))
        return stop, guard

    references: list[int] = []
    real_auc = repair_module.membership_auc

    def recording_auc(forget_losses, reference_losses):
        references.append(origin.get(id(reference_losses), -1))
        return real_auc(forget_losses, reference_losses)

    real_targets = repair_module.rank_targets

    def recording_targets(forget_losses, reference_losses, levels=None, floor=None):
        references.append(origin.get(id(reference_losses), -1))
        return real_targets(forget_losses, reference_losses, levels, floor)

    real_levels = reference_module.levels
    level_rows: list[int] = []

    def recording_levels(reference_rows, forget, stop, num_classes, cfg):
        level_rows.append(id(stop))  # the per-row reference ranks forgotten rows among these rows
        return real_levels(reference_rows, forget, stop, num_classes, cfg)

    monkeypatch.setattr(reference_module, "levels", recording_levels)
    monkeypatch.setattr(measure_module.Measure, "__call__", tracing_call)
    monkeypatch.setattr(iau_module, "split_holdout", recording_split)
    monkeypatch.setattr(repair_module, "membership_auc", recording_auc)
    monkeypatch.setattr(targeted_module, "membership_auc", recording_auc)
    monkeypatch.setattr(repair_module, "rank_targets", recording_targets)
    res = _run(memorised, torch.arange(0, N_TRAIN, 20), device)
    assert res.evidence["stage2"]["steps"] > 0
    assert references and set(references) == {split["stop"]}
    assert split["guard"] not in references
    assert level_rows == [split["stop"]]
    sizes = res.evidence["holdout_split"]
    assert sizes["stop_rows"] + sizes["guard_rows"] == memorised.holdout[1].numel()
    assert min(sizes.values()) > 0


@pytest.mark.parametrize("rows", [[3], [17], [250], [5, 77, 300]])
def test_single_rows_and_tiny_sets_never_end_worse(memorised, device, rows):
    out = _run(memorised, rows, device).evidence["outcome"]
    m, goal = out["measured"], out["target"]["membership_auc"]  # the rows' own target (reference levels)
    assert abs(m["membership_auc"] - goal) <= abs(m["membership_auc_start"] - goal) + 1e-12
    assert m["forget_loss"] >= m["forget_loss_start"]


def test_repair_variants_are_selectable(memorised, device):
    for update in ("neggrad+", "salun"):
        res = _run(memorised, torch.arange(0, N_TRAIN, 20), device, update=update)
        assert res.evidence["stage2"]["variant"] == update
        assert res.evidence["stage2"]["steps"] > 0
        m = res.evidence["outcome"]["measured"]
        assert m["membership_auc"] < m["membership_auc_start"]


@pytest.fixture(scope="module")
def poisoned_digits(digits, device):
    """Digits with a trigger patch on 60 rows relabelled to class 0, and an mlp that learnt the backdoor:
    (spec, x, y, holdout, state, poisoned row indices)."""
    x, y, xh, yh = digits
    x, y = x.clone(), y.clone()
    gen = torch.Generator().manual_seed(3)
    candidates = (y != 0).nonzero().flatten()
    poisoned = candidates[torch.randperm(candidates.numel(), generator=gen)[:60]].sort().values
    x[poisoned[:, None], torch.tensor([54, 55, 62, 63])] = 1.0
    y[poisoned] = 0
    spec = ArchSpec("mlp", {"in_features": 64, "hidden": [64], "num_classes": 10})
    state = train(spec, x, y, TrainConfig(epochs=20, lr=1e-2, alpha=0.0), device)
    return spec, x, y, (xh, yh), state, poisoned


def _forget_poisoned(poisoned_digits, device, **cfg):
    spec, x, y, holdout, state, poisoned = poisoned_digits
    retain = torch.ones(y.numel(), dtype=torch.bool)
    retain[poisoned] = False
    return unlearn(spec, state, x, y, retain, poisoned, UnlearnConfig(**cfg), device, holdout=holdout)


def test_poison_purpose_removes_what_the_rows_taught(poisoned_digits, device):
    """The poison path makes the model stop reproducing the poisoned labels, where a membership target would be
    the wrong goal."""
    res = _forget_poisoned(poisoned_digits, device, purpose="poison")
    out = res.evidence["outcome"]
    assert out["target"]["kind"] == "poison"
    assert res.evidence["before"]["forget"]["accuracy"] > 0.9  # the model had learnt the poisoned labels
    assert out["met"] is True and out["measured"]["forget_accuracy"] <= 0.05
    assert res.evidence["after"]["holdout"]["accuracy"] >= res.evidence["before"]["holdout"]["accuracy"] - 0.03


def test_rows_that_stand_out_are_repaired_even_when_the_model_shows_no_signal(poisoned_digits, device):
    """A model that generalises can still hold rows the attack singles out: poisoned rows deleted for privacy.
    The reference model finds them hard (an image of one digit labelled as another), so their target AUC is low,
    the update runs, and the verdict is judged on the rows' own target, not on the model's lack of signal."""
    res = _forget_poisoned(poisoned_digits, device)
    out = res.evidence["outcome"]
    m = out["measured"]
    assert abs(m["retained_membership_auc"] - 0.5) <= m["retained_band"]  # no model-level signal
    assert out["target"]["per_row"] is True and out["target"]["membership_auc"] < 0.3
    assert res.evidence["stop_reason"] != "no_membership_signal" and res.evidence["param_distance"] > 0
    goal = out["target"]["membership_auc"]
    assert abs(m["membership_auc"] - goal) < abs(m["membership_auc_start"] - goal)
    assert res.evidence["after"]["forget"]["accuracy"] < res.evidence["before"]["forget"]["accuracy"]


def test_without_a_holdout_the_verdict_is_not_met(memorised, device):
    retain, forget_idx = _forget([1, 2, 3])
    res = unlearn(SPEC, memorised.state, memorised.x, memorised.y, retain, forget_idx, UnlearnConfig(), device)
    assert res.evidence["outcome"]["met"] is False
    assert "no holdout" in res.evidence["outcome"]["reason"]


def test_retrain_evidence_carries_an_exact_verdict(memorised, device):
    from workers.engine import retrain

    retain, forget_idx = _forget([4, 9])
    cfg = TrainConfig(epochs=2, batch_size=64, lr=3e-3, alpha=0.0)
    res = retrain(SPEC, memorised.state, memorised.x, memorised.y, retain, forget_idx, cfg, device)
    assert res.evidence["outcome"]["met"] is True
    assert res.evidence["outcome"]["target"] == {"kind": "exact"}


def test_a_stale_cache_is_never_used_silently(memorised, device):
    live = torch.ones(N_TRAIN, dtype=torch.bool)
    cache = build_cache(SPEC, memorised.state, memorised.x, memorised.y, live, version=3, device=device)
    rows = torch.arange(0, N_TRAIN, 40)
    fresh = _run_cached(memorised, rows, device, cache, current_version=3)
    assert fresh.evidence["correction"]["mode"] == "cached" and fresh.evidence["correction"]["note"] is None
    stale = _run_cached(memorised, rows, device, cache, current_version=4)
    corr = stale.evidence["correction"]
    assert corr["mode"] == "sampled" and corr["requested"] == "cached" and corr["staleness"] == 1
    assert "stale" in corr["note"]
    allowed = _run_cached(memorised, rows, device, cache, current_version=4, allow_stale_cache=True)
    assert allowed.evidence["correction"]["mode"] == "cached"
    gradient = _run_cached(memorised, rows, device, cache, current_version=4, update="gradient", max_steps=1)
    assert gradient.evidence["correction"]["mode"] == "exact"


def _run_cached(m: Memorised, rows, device, cache, current_version, **cfg):
    retain, forget_idx = _forget(rows)
    return unlearn(
        SPEC, m.state, m.x, m.y, retain, forget_idx, UnlearnConfig(correction="cached", **cfg), device,
        holdout=m.holdout, cache=cache, current_version=current_version,
    )  # fmt: skip


def test_a_model_without_membership_signal_is_left_unchanged(small_logreg, digits, device):
    """When the loss-threshold attack cannot tell the model's training rows from unseen ones and the forgotten
    rows rank as unseen rows do, their low loss says nothing about membership: no step, the verdict is met and
    says why; stage1_without_signal takes the IAU step anyway."""
    spec, x, y, state = small_logreg
    _, _, xh, yh = digits
    retain = torch.ones(y.numel(), dtype=torch.bool)
    forget_idx = torch.arange(0, 300, 10)  # 30 rows that rank as unseen rows do (AUC 0.49)
    retain[forget_idx] = False
    res = unlearn(spec, state, x, y, retain, forget_idx, UnlearnConfig(), device, holdout=(xh, yh))
    out = res.evidence["outcome"]
    assert res.evidence["stop_reason"] == "no_membership_signal" and res.evidence["stage2"]["steps"] == 0
    assert abs(out["measured"]["retained_membership_auc"] - 0.5) <= out["measured"]["retained_band"]
    assert out["met"] is True and "left unchanged" in out["reason"]
    assert res.evidence["param_distance"] == 0 and res.evidence["steps"] == 0
    assert res.evidence["checkpoint_sha256"]["before"] == res.evidence["checkpoint_sha256"]["after"]
    assert res.evidence["correction"]["retained_gradient"].startswith("not computed")  # no O(N) pass for nothing
    forced = unlearn(
        spec, state, x, y, retain, forget_idx, UnlearnConfig(stage1_without_signal=True), device, holdout=(xh, yh)
    )
    assert forced.evidence["steps"] >= 1 and forced.evidence["stop_reason"] != "no_membership_signal"
