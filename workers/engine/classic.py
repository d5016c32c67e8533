"""The two single-method updates: the IAU reference step and plain-gradient steps with the AUC stop and the
utility guard (the formulas are in iau.py's module docstring)."""

from __future__ import annotations

import torch

from workers.engine.evidence import membership_auc
from workers.engine.gradients import model_gradient_sum
from workers.engine.measure import Measure, accuracy, subsample, utility_lost
from workers.engine.targeted import apply_stage1


def _guarded_step(measure: Measure, params, saved, g, baselines, cfg, eta: float) -> float | None:
    """theta = saved - eta * g, halving eta while the step costs too much utility (up to max_backtracks times).

    Returns the step size kept, or None (parameters restored to `saved`) when every size was refused.
    """
    for _ in range(cfg.max_backtracks + 1):
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(saved[k] - (eta * g[k]).to(p.dtype))
        measure.changed()
        if not utility_lost(measure, baselines, cfg.max_accuracy_drop):
            return eta
        eta /= 2
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(saved[k])
    measure.changed()
    return None


def run_classic(cfg, model, spec, params, measure, features, labels, holdout, forget, retained, before, sum_r, sum_f,
             retain_idx, forget_idx, correction, progress):  # fmt: skip
    """The reference and plain-gradient updates (module docstring): (steps, stop reason, AUC trace, eta used)."""
    n_r, n_f = retain_idx.numel(), forget_idx.numel()
    n_live = n_r + n_f
    # stopping checks use the retained sample and a fixed sample of the holdout rows
    stop_holdout = subsample(holdout, cfg.stop_holdout_rows, cfg.evidence_seed)
    baselines = [(retained, before["retained_sample"]["accuracy"])]
    if stop_holdout is not None:
        # the whole holdout was measured in `before` already; a subsample is measured here
        start = before["holdout"]["accuracy"] if stop_holdout is holdout else accuracy(measure, stop_holdout)
        baselines.append((stop_holdout, start))
    budget = 1 if cfg.update == "reference" else max(1, cfg.max_steps)
    stop_reason = "single_step" if cfg.update == "reference" else "step_budget"
    if cfg.update == "gradient" and stop_holdout is not None and n_f < cfg.min_stop_rows:
        budget, stop_reason = 1, "too_few_rows_to_measure"
    auc_trace: list[float] = []
    steps = 0
    eta = cfg.eta
    for step in range(budget):
        if step > 0:
            sum_f = model_gradient_sum(model, spec, features, labels, forget_idx, cfg.chunk_size)
            if correction == "exact":
                sum_r = model_gradient_sum(model, spec, features, labels, retain_idx, cfg.chunk_size)
        if cfg.update == "reference":
            direction = {k: sum_r[k] / n_r - sum_f[k] / n_f for k in params}  # mean_r - mean_f
            apply_stage1(params, direction, cfg.lr)
            measure.changed()
            steps += 1
            break
        with torch.no_grad():
            saved = {k: p.detach().clone() for k, p in params.items()}
            # share * mean_f = sum_f / |D|
            g = {k: cfg.retain_weight * sum_r[k] / n_r - sum_f[k] / n_live for k in params}
        kept = _guarded_step(measure, params, saved, g, baselines, cfg, eta)
        if kept is None:
            stop_reason = "utility_guard"  # even the smallest step cost too much utility: parameters restored
            break
        eta = kept  # later steps start from the step size that was kept
        steps += 1
        progress(0.3 + 0.6 * steps / budget)
        if stop_holdout is not None and budget > 1:
            auc = membership_auc(measure(forget)[0], measure(stop_holdout)[0])
            auc_trace.append(auc)
            if auc - cfg.target_auc <= cfg.auc_tolerance:
                stop_reason = "auc_target"
                break
    return steps, stop_reason, auc_trace, (eta if cfg.update == "gradient" else None)
