"""Influence Approximation Unlearning (IAU, Liu et al., 2024) as the workers apply it (design.md section 3).

Notation: theta = current parameters, D = live rows, D_f = rows to forget now (one request or the union of
several coalesced requests), D_r = D minus D_f, l = per-sample cross-entropy, every gradient in eval mode.

    reference  g = grad mean_{D_r} l - grad mean_{D_f} l
               one step of a freshly created torch.optim.Adam(lr) on g, the authors' published update. After
               Adam's bias correction every coordinate moves by about lr * g / (|g| + eps): a sign step whose size
               does not depend on how much is forgotten. retain_weight is not applied (lr is the only knob).

    gradient   g_t = retain_weight * grad mean_{D_r} l(theta_t) - (|D_f| / |D|) * grad mean_{D_f} l(theta_t)
                   = retain_weight * grad mean_{D_r} l(theta_t) - (1 / |D|) * grad sum_{D_f} l(theta_t)
               theta_{t+1} = theta_t - eta * g_t
               The forget (ascent) term is the forgotten rows' share of the full-data loss, so deleting 2,000 rows
               steps further than deleting 1, and at a trained optimum grad mean_{D_r} l = -(|D_f|/|D_r|) *
               grad mean_{D_f} l also grows with the share. Up to max_steps steps; after each, the membership
               AUC of forget vs holdout rows (loss-threshold attack) is measured and the loop stops once it is
               within auc_tolerance of target_auc or below it (ascending further cannot bring it back). The
               forget gradient is recomputed at every step. Without a holdout set the loop runs max_steps;
               with fewer than min_stop_rows forgotten rows the AUC is too coarse to stop on and exactly one
               step is taken. Utility guard: after each step the accuracy on the fixed retained sample and on
               the holdout is measured; a step that lowers either by more than max_accuracy_drop (a fraction)
               is retried with eta halved (up to max_backtracks times; later steps keep the smaller eta), and
               when no size passes it is undone and the loop stops (so the reported holdout accuracy is also a
               stopping signal). The evidence records eta_used.
               Per-step checks use at most stop_holdout_rows holdout rows (a fixed seeded sample), so a
               step costs O(|D_f| + that sample + the retained sample) on top of the correction.

Where sum_{D_r} grad l comes from:
    exact   streamed over D_r in chunks (workers.engine.gradients); recomputed at theta_t on every step.
    cached  G - sum_{D_f} grad l(theta_0) - sum_{X} grad l(theta_0), with G = GradCache.grad_sum taken at the
            cache's version over its covered rows and X = covered rows deleted since (neither retained nor being
            forgotten now). It is computed once at theta_0 and held fixed for later steps. With a fresh cache
            (built at theta_0 over D) it equals the exact sum up to rounding; a stale cache (built at an older
            version) mixes gradients from two parameter vectors, and the evidence records the staleness.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor

from workers.engine.cache import GradCache, cached_retained_sum
from workers.engine.checkpoint import sha256_state_dict
from workers.engine.device import synchronize
from workers.engine.evidence import (
    forget_commitment,
    membership_auc,
    param_distance,
    per_sample_losses,
    retained_sample_index,
    snapshot,
)
from workers.engine.gradients import model_gradient_sum, named_params
from workers.engine.zoo import ArchSpec, load_model


@dataclass
class UnlearnConfig:
    update: Literal["reference", "gradient"] = "gradient"  # which IAU update (module docstring)
    lr: float = 1e-3  # reference: Adam learning rate of the single step
    eta: float = 5.0  # gradient: step size on g_t
    retain_weight: float = 0.4  # gradient: weight of the retained (correction) term
    max_steps: int = 100  # gradient: step budget
    target_auc: float = 0.5  # gradient: membership AUC to stop at (0.5 = indistinguishable)
    auc_tolerance: float = 0.01  # gradient: stop once AUC <= target_auc + this
    max_accuracy_drop: float = 0.015  # gradient: a step may not lower accuracy by more than this (fraction)
    max_backtracks: int = 6  # gradient: halvings of eta tried when a step breaks max_accuracy_drop
    min_stop_rows: int = 10  # gradient: with fewer forgotten rows the AUC cannot be measured: one step
    stop_holdout_rows: int = 1024  # gradient: holdout rows (fixed seeded sample) measured after each step
    correction: Literal["exact", "cached"] = "exact"  # where sum_{D_r} grad l comes from
    chunk_size: int = 1024  # rows per chunk when streaming gradients
    retained_sample: int = 512  # rows in the fixed retained sample measured before and after
    evidence_seed: int = 0  # seeds the choice of the retained sample


@dataclass
class UnlearnResult:
    state_dict: dict[str, Tensor]  # new parameters, on the CPU
    evidence: dict  # JSON-serialisable measurements (evidence.py)
    steps: int  # update steps applied


def check_rows(retain_mask: Tensor, forget_idx: Tensor, n: int) -> tuple[Tensor, Tensor]:
    if retain_mask.dtype != torch.bool or retain_mask.shape != (n,):
        raise ValueError(f"retain_mask must be a bool tensor of shape ({n},)")
    forget_idx = forget_idx.to(torch.int64).flatten().cpu()
    if forget_idx.numel() == 0:
        raise ValueError("nothing to forget: forget_idx is empty")
    if forget_idx.min() < 0 or forget_idx.max() >= n:
        raise ValueError(f"forget_idx out of range for {n} rows")
    forget_idx = forget_idx.sort().values  # coalesced requests: order does not matter
    if (forget_idx[1:] == forget_idx[:-1]).any():
        raise ValueError("forget_idx contains duplicate rows")
    if retain_mask[forget_idx].any():
        raise ValueError("rows in forget_idx are also marked as retained")
    retain_idx = retain_mask.nonzero().flatten()  # (|D_r|,)
    if retain_idx.numel() == 0:
        raise ValueError("forgetting every live row leaves nothing to retain; use the retrain method")
    return retain_idx, forget_idx


def _subsample(rows: tuple[Tensor, Tensor] | None, size: int, seed: int) -> tuple[Tensor, Tensor] | None:
    """A fixed, seeded subset of at most `size` rows (all of them when there are fewer)."""
    if rows is None or rows[1].shape[0] == 0:
        return None
    if rows[1].shape[0] <= size:
        return rows
    pick = torch.randperm(rows[1].shape[0], generator=torch.Generator().manual_seed(seed))[:size]
    return rows[0][pick], rows[1][pick]


class _Measure:
    """per_sample_losses of row sets at the current parameters, remembered until the parameters change.

    The utility check of the last step and the after-evidence measure the same rows at the same parameters;
    this does the forward passes once. Row sets are keyed by identity (the tuples live for the whole call).
    """

    def __init__(self, model, spec: ArchSpec):
        self.model, self.spec, self.memo = model, spec, {}

    def __call__(self, rows: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        if id(rows) not in self.memo:
            self.memo[id(rows)] = (rows, per_sample_losses(self.model, self.spec, *rows))
        return self.memo[id(rows)][1]

    def changed(self) -> None:
        self.memo.clear()


def _accuracy(measure: _Measure, rows: tuple[Tensor, Tensor]) -> float | None:
    _, ok = measure(rows)
    return float(ok.double().mean()) if ok.numel() else None


def _utility_lost(measure: _Measure, baselines: list, max_drop: float) -> bool:
    """True if accuracy on any (rows, starting accuracy) pair fell more than max_drop below its start."""
    for rows, start in baselines:
        now = _accuracy(measure, rows)
        if start is not None and now is not None and start - now > max_drop:
            return True
    return False


@torch.no_grad()
def _guarded_step(measure: _Measure, params, saved, g, baselines, cfg, eta: float) -> float | None:
    """theta = saved - eta * g, halving eta while the step costs too much utility (up to max_backtracks times).

    Returns the step size kept, or None (parameters restored to `saved`) when every size was refused.
    """
    for _ in range(cfg.max_backtracks + 1):
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(saved[k] - (eta * g[k]).to(p.dtype))
        measure.changed()
        if not _utility_lost(measure, baselines, cfg.max_accuracy_drop):
            return eta
        eta /= 2
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(saved[k])
    measure.changed()
    return None


def _apply_reference(params: dict, direction: dict[str, Tensor], lr: float) -> None:
    for k, p in params.items():
        p.grad = direction[k].to(p.dtype)
    torch.optim.Adam(list(params.values()), lr=lr).step()  # fresh optimiser: first-step Adam
    for p in params.values():
        p.grad = None


def unlearn(
    spec: ArchSpec,
    state_dict: dict[str, Tensor],
    features: Tensor,
    labels: Tensor,
    retain_mask: Tensor,
    forget_idx: Tensor,
    cfg: UnlearnConfig,
    device: torch.device,
    holdout: tuple[Tensor, Tensor] | None = None,
    cache: GradCache | None = None,
    current_version: int | None = None,
    sample_ids: list[str] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> UnlearnResult:
    """Remove the influence of rows `forget_idx` from `state_dict`; rows in `retain_mask` stay (D_r)."""
    clock = _Clock(device)
    n = labels.shape[0]
    retain_idx, forget_idx = check_rows(retain_mask, forget_idx, n)
    if cfg.correction == "cached" and cache is None:
        raise ValueError("correction 'cached' needs a GradCache")
    if cfg.update not in ("reference", "gradient") or cfg.correction not in ("exact", "cached"):
        raise ValueError(f"unknown update {cfg.update!r} or correction {cfg.correction!r}")
    if sample_ids is not None and len(sample_ids) != n:
        raise ValueError(f"sample_ids has {len(sample_ids)} entries for {n} rows")
    n_r, n_f = retain_idx.numel(), forget_idx.numel()
    n_live = n_r + n_f
    progress = on_progress or (lambda _fraction: None)

    model = load_model(spec, state_dict, device)  # eval mode throughout
    params = named_params(model)
    forget = (features[forget_idx], labels[forget_idx])
    sample_idx = retained_sample_index(retain_idx, cfg.retained_sample, cfg.evidence_seed)
    retained = (features[sample_idx], labels[sample_idx])
    measure = _Measure(model, spec)
    before = snapshot(model, spec, forget, retained, holdout, losses=measure)
    clock.lap("evidence_before")
    progress(0.1)

    sum_f = model_gradient_sum(model, spec, features, labels, forget_idx, cfg.chunk_size)
    extra_rows = 0
    if cfg.correction == "exact":
        sum_r = model_gradient_sum(model, spec, features, labels, retain_idx, cfg.chunk_size)
    else:
        sum_r, extra_rows = cached_retained_sum(
            cache, sum_f, model, spec, features, labels, retain_mask, forget_idx, cfg.chunk_size
        )
    clock.lap("retained_gradient")
    progress(0.3)

    # stopping checks use the retained sample and a fixed sample of the holdout rows
    stop_holdout = _subsample(holdout, cfg.stop_holdout_rows, cfg.evidence_seed)
    baselines = [(retained, before["retained_sample"]["accuracy"])]
    if stop_holdout is not None:
        # the whole holdout was measured in `before` already; a subsample is measured here
        start = before["holdout"]["accuracy"] if stop_holdout is holdout else _accuracy(measure, stop_holdout)
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
            if cfg.correction == "exact":
                sum_r = model_gradient_sum(model, spec, features, labels, retain_idx, cfg.chunk_size)
        if cfg.update == "reference":
            direction = {k: sum_r[k] / n_r - sum_f[k] / n_f for k in params}  # mean_r - mean_f
            _apply_reference(params, direction, cfg.lr)
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
    clock.lap("update")

    after = snapshot(model, spec, forget, retained, holdout, losses=measure)
    new_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    clock.lap("evidence_after")
    if sample_ids is None:
        forget_ids = [str(int(i)) for i in forget_idx]
    else:
        forget_ids = [sample_ids[int(i)] for i in forget_idx]
    evidence = {
        "method": "iau",
        "update": cfg.update,
        "hyperparameters": asdict(cfg),
        "device": str(device),
        "rows": {"live": n_live, "forget": n_f, "retained": n_r, "retained_sample": int(sample_idx.numel())},
        "before": before,
        "after": after,
        "param_distance": param_distance(state_dict, new_state),
        "checkpoint_sha256": {"before": sha256_state_dict(state_dict), "after": sha256_state_dict(new_state)},
        "correction": {
            "mode": cfg.correction,
            "retained_gradient": (
                "recomputed over the retained rows at every step"
                if cfg.correction == "exact"
                else "cache minus forgotten rows at the starting parameters, held fixed across steps"
            ),
            "cache_version": cache.version if cfg.correction == "cached" else None,
            "current_version": current_version,
            "staleness": (
                current_version - cache.version if cfg.correction == "cached" and current_version is not None else None
            ),
            "rows_deleted_since_cache": extra_rows,
        },
        "steps": steps,
        "eta_used": eta if cfg.update == "gradient" else None,
        "stop_reason": stop_reason,
        "auc_trace": auc_trace,
        "forget_commitment": forget_commitment(forget_ids, *forget),
        "sample_ids": "caller" if sample_ids is not None else "row_index",
        "note": "approximate unlearning: measured figures, not a certificate of exact deletion",
    }
    clock.lap("hashing")
    evidence["timings_s"] = clock.laps
    progress(1.0)
    return UnlearnResult(state_dict=new_state, evidence=evidence, steps=steps)


class _Clock:
    """Wall-clock seconds per phase (synchronising CUDA before each reading)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 6)
        self.laps["total"] = round(now - self.start, 6)
        self.last = now
