import pytest
import torch
import torch.nn.functional as F

from workers.engine import ArchSpec, TrainConfig, evaluate, membership_auc, train
from workers.engine.evidence import per_sample_losses
from workers.engine.train import init_state
from workers.engine.zoo import load_model

CPU = torch.device("cpu")  # hand-written references; the engine runs on the `device` fixture

LOGREG = ArchSpec("logreg", {"in_features": 64, "num_classes": 10})


def test_training_is_seeded_and_deterministic(digits, device):
    x, y = digits[0][:200], digits[1][:200]
    cfg = TrainConfig(epochs=2, batch_size=32, lr=1e-2, alpha=0.005, seed=3)
    a, b = train(LOGREG, x, y, cfg, device), train(LOGREG, x, y, cfg, device)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = train(LOGREG, x, y, TrainConfig(epochs=2, batch_size=32, lr=1e-2, alpha=0.005, seed=4), device)
    assert not torch.equal(a["linear.weight"], c["linear.weight"])
    assert all(v.device.type == "cpu" for v in a.values())


def test_one_step_equals_gradient_restricted_adam(digits, device):
    """One full-batch step = Adam on mean CE + alpha * ||grad mean CE||_2, recomputed by hand."""
    x, y = digits[0][:64], digits[1][:64]
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, alpha=0.5, seed=0)
    got = train(LOGREG, x, y, cfg, device)

    model = load_model(LOGREG, init_state(LOGREG, 0), CPU).train()
    params = list(model.parameters())
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    penalty = torch.sqrt(sum((g**2).sum() for g in grads))
    opt = torch.optim.Adam(params, lr=cfg.lr)
    (loss + cfg.alpha * penalty).backward()
    opt.step()
    want = model.state_dict()
    assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)
    no_penalty = train(LOGREG, x, y, TrainConfig(epochs=1, batch_size=64, lr=0.05, alpha=0.0), device)
    assert not torch.allclose(no_penalty["linear.weight"], got["linear.weight"], atol=1e-4)


def test_alpha_zero_skips_double_backward(digits, monkeypatch, device):
    calls = []
    real = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(k) or real(*a, **k))
    train(LOGREG, digits[0][:64], digits[1][:64], TrainConfig(epochs=1, alpha=0.0), device)
    assert calls == []
    train(LOGREG, digits[0][:64], digits[1][:64], TrainConfig(epochs=1, alpha=0.01), device)
    assert calls and all(k.get("create_graph") for k in calls)


def test_progress_is_reported_up_to_one(digits, device):
    seen = []
    train(LOGREG, digits[0][:100], digits[1][:100], TrainConfig(epochs=3, batch_size=32), device, seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 3


def test_rejects_mismatched_rows(digits, device):
    with pytest.raises(ValueError, match="rows"):
        train(LOGREG, digits[0][:10], digits[1][:9], TrainConfig(epochs=1), device)


def test_retrain_forget_figures_match_holdout_levels(digits_scenario):
    """The exact `retrain` method: forgotten rows look like unseen rows; on the original they do not."""
    s = digits_scenario
    forget = (s.x[s.forget_idx], s.y[s.forget_idx])

    def figures(state):
        model = load_model(s.spec, state, CPU)
        f_loss, _ = per_sample_losses(model, s.spec, *forget)
        h_loss, _ = per_sample_losses(model, s.spec, s.xh, s.yh)
        f, h = evaluate(s.spec, model, *forget), evaluate(s.spec, model, s.xh, s.yh)
        return f, h, membership_auc(f_loss, h_loss)

    f, h, auc = figures(s.retrained)
    assert h["accuracy"] > 0.93
    assert abs(f["accuracy"] - h["accuracy"]) <= 0.04
    assert 0.5 <= f["loss"] / h["loss"] <= 2.0
    assert abs(auc - 0.5) <= 0.06
    f0, h0, _ = figures(s.original)
    assert f0["loss"] / h0["loss"] < 0.5  # the check above fails for a model that saw the rows


def test_retrain_method_result_and_evidence(digits_scenario, device):
    import json

    from workers.engine import retrain
    from workers.engine.checkpoint import sha256_state_dict

    recipe = TrainConfig(epochs=20, batch_size=64, lr=1e-2, alpha=0.005, seed=0)
    s = digits_scenario
    res = retrain(s.spec, s.original, s.x, s.y, s.retain_mask, s.forget_idx, recipe, device, holdout=(s.xh, s.yh))
    assert all(torch.equal(res.state_dict[k], s.retrained[k]) for k in s.retrained)  # same recipe, same model
    ev = res.evidence
    json.dumps(ev, allow_nan=False)
    assert ev["method"] == "retrain" and ev["checkpoint_sha256"]["after"] == sha256_state_dict(s.retrained)
    assert ev["after"]["forget"]["loss"] > 2 * ev["before"]["forget"]["loss"]
