"""Influence Approximation Unlearning (IAU, Liu et al., 2024) as the workers apply it (docs/engine.md, docs/api.md).

The default update is the targeted pipeline (targeted.py: the IAU step, a bounded repair over minibatches and a
verdict against a stated target); `update` "neggrad+" and "salun" run the same pipeline with another stage-2 loss.
The two single-method updates below remain selectable.

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
            (built at theta_0 over D) it equals the exact sum up to rounding. A stale cache (built at an older
            version) mixes gradients from two parameter vectors: it is refused unless allow_stale_cache, and the
            targeted family falls back to `sampled`, the others to `exact`; the evidence says so.
    sampled n_r times the mean gradient of a seeded sample of retained_estimate_rows retained rows at theta_0
            (cost independent of N).
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
from workers.engine.classic import run_classic
from workers.engine.device import synchronize
from workers.engine.evidence import (
    forget_commitment,
    param_distance,
    retained_sample_index,
    snapshot,
)
from workers.engine.gradients import model_gradient_sum, named_params
from workers.engine.measure import Measure, split_holdout
from workers.engine.repair import _Batches
from workers.engine.targeted import FAMILY, PipelineContext, nothing_to_remove, start_point
from workers.engine.targeted import outcome as verdict
from workers.engine.targeted import run as run_targeted
from workers.engine.zoo import ArchSpec, load_model, trainable_summary


@dataclass
class UnlearnConfig:
    update: Literal["targeted", "neggrad+", "salun", "reference", "gradient"] = "targeted"  # module docstring
    purpose: Literal["privacy", "poison"] = "privacy"  # targeted family: which target (targeted.py)
    lr: float = 1e-3  # reference, and stage 1 of the targeted family: Adam learning rate of the single step
    eta: float = 5.0  # gradient: step size on g_t
    retain_weight: float = 0.4  # gradient: weight of the retained (correction) term
    max_steps: int = 100  # gradient: step budget
    target_auc: float = 0.5  # membership AUC to reach (0.5 = indistinguishable from unseen rows)
    auc_tolerance: float = 0.05  # targeted: met when |AUC - target_auc| <= this; gradient: stop when AUC <= t + this
    auc_noise_z: float = 1.0  # targeted: the band also admits z standard errors of the null AUC (repair.noise_band)
    max_accuracy_drop: float = 0.015  # a step (gradient) or the update (targeted) may not cost more accuracy
    guard_noise_z: float = 2.0  # targeted: the guard also allows z standard errors of the paired change (measure.py)
    max_backtracks: int = 6  # halvings of the step size tried when utility is lost
    min_stop_rows: int = 10  # gradient: with fewer forgotten rows the AUC cannot be measured: one step
    stop_holdout_rows: int = 1024  # gradient: holdout rows (fixed seeded sample) measured after each step
    correction: Literal["exact", "cached", "sampled"] = "exact"  # where the retained gradient comes from
    allow_stale_cache: bool = False  # use a gradient cache built at an older version (else it is refused)
    retained_estimate_rows: int = 4096  # sampled: retained rows whose mean gradient estimates mean_{D_r}
    chunk_size: int = 1024  # rows per chunk when streaming gradients
    retained_sample: int = 512  # rows in the fixed retained sample measured before and after
    evidence_seed: int = 0  # seeds the retained sample, the holdout split and the minibatches
    stop_share: float = 0.5  # targeted: share of the holdout the stop rule reads; the guard reads the rest
    repair_lr: float = 3e-4  # targeted: Adam learning rate of the stage-2 repair (docs/benchmark.md)
    repair_steps: int = 60  # targeted: checks in the repair (each after check_every optimiser steps)
    check_every: int = 5  # targeted: optimiser steps between two checks of the stop rule and the guard
    repair_batch: int = 128  # targeted: retained rows per repair step
    forget_batch: int = 256  # targeted: forgotten rows per repair step (all of them when fewer)
    forget_weight: float = 1.0  # targeted: weight of the loss-matching term
    gap_tolerance: float = 0.1  # targeted: the rows' targets count as reached at this mean |log loss - log target|
    anchor_weight: float = 30.0  # targeted: weight of the anchor on the starting model's predictions (repair.py)
    anchor_noise: float = 1.0  # targeted: anchor inputs are retained rows plus this many per-feature stds of noise
    anchor_swap: float = 0.25  # targeted, integer inputs (token ids): share of an anchor row's ids swapped
    anchor_batch: int = 256  # targeted: anchor inputs per repair step
    row_targets: bool = True  # targeted, privacy: per-row targets from a linear reference model (reference.py)
    reference_rows: int = 4096  # retained rows the reference model is fitted to
    reference_l2: float = 1e-2  # its L2 penalty
    reference_dim: int = 512  # wider rows are randomly projected to this many dimensions first
    stage1_without_signal: bool = False  # targeted, privacy: step even when nothing carries a membership signal
    neggrad_beta: float = 0.9  # neggrad+ and the poison path: weight of the retained term
    salun_keep: float = 0.5  # salun: share of weights (largest forget-gradient magnitude) the repair may change
    poison_steps: int = 100  # poison: NegGrad+ steps
    poison_lr: float = 1e-3  # poison: Adam learning rate of those steps and of the fine-tune
    finetune_steps: int = 50  # poison: fine-tune steps on retained rows after them
    max_forget_accuracy: float = 0.05  # poison target: largest share of forgotten rows whose label is reproduced


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


def _correction(cfg: UnlearnConfig, cache: GradCache | None, current_version: int | None) -> tuple[str, str | None]:
    """The correction actually used, and a note when it differs from the one asked for.

    A cache built at an older version mixes gradients from two parameter vectors; it is refused unless
    allow_stale_cache says otherwise: the targeted family then estimates the retained mean from a sample of
    retained rows (cost independent of N), the other updates stream the retained rows exactly."""
    if cfg.correction != "cached":
        return cfg.correction, None
    if cache is None:
        raise ValueError("correction 'cached' needs a GradCache")
    staleness = 0 if current_version is None else current_version - cache.version
    if staleness == 0 or cfg.allow_stale_cache:
        return "cached", None
    fallback = "sampled" if cfg.update in FAMILY else "exact"
    return fallback, f"gradient cache of version {cache.version} is {staleness} version(s) stale: not used"


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
    if cfg.update not in (*FAMILY, "reference", "gradient") or cfg.correction not in ("exact", "cached", "sampled"):
        raise ValueError(f"unknown update {cfg.update!r} or correction {cfg.correction!r}")
    if cfg.purpose not in ("privacy", "poison"):
        raise ValueError(f"unknown purpose {cfg.purpose!r}")
    if sample_ids is not None and len(sample_ids) != n:
        raise ValueError(f"sample_ids has {len(sample_ids)} entries for {n} rows")
    correction, correction_note = _correction(cfg, cache, current_version)
    n_r, n_f = retain_idx.numel(), forget_idx.numel()
    n_live = n_r + n_f
    progress = on_progress or (lambda _fraction: None)

    model = load_model(spec, state_dict, device)  # eval mode throughout
    params = named_params(model)
    forget = (features[forget_idx], labels[forget_idx])
    sample_idx = retained_sample_index(retain_idx, cfg.retained_sample, cfg.evidence_seed)
    retained = (features[sample_idx], labels[sample_idx])
    measure = Measure(model, spec)
    before = snapshot(model, spec, forget, retained, holdout, losses=measure)
    stop, guard = split_holdout(holdout, cfg.stop_share, cfg.evidence_seed)
    baselines = [(rows, None if rows is None else measure(rows)[1].cpu()) for rows in (guard, retained)]
    reference_idx = retained_sample_index(retain_idx, cfg.reference_rows, cfg.evidence_seed + 1)
    ctx = PipelineContext(
        cfg=cfg,
        model=model,
        params=params,
        measure=measure,
        forget=forget,
        stop=stop,
        guard=guard,
        retained=retained,
        reference=(features[reference_idx], labels[reference_idx]),
        baselines=baselines,
        batches=_Batches(spec, features, labels, retain_idx, forget_idx, cfg, device),
        num_classes=int(measure_logits_width(model, spec, forget[0][:1], device)),
    )
    start = start_point(ctx)
    start["skipped"] = cfg.update in FAMILY and ctx.stop is not None and nothing_to_remove(cfg, start)
    clock.lap("evidence_before")
    progress(0.1)

    sum_f = model_gradient_sum(model, spec, features, labels, forget_idx, cfg.chunk_size)
    if start["skipped"] and correction != "cached":
        sum_r, extra_rows, estimate_rows = None, 0, 0  # no step will be taken: streaming D_r would be wasted
    else:  # (a cached correction is cheap, and checks that the cache covers the rows)
        sum_r, extra_rows, estimate_rows = _retained_sum(
            correction, cfg, cache, sum_f, model, spec, features, labels, retain_mask, retain_idx, forget_idx
        )
    clock.lap("retained_gradient")
    progress(0.3)

    auc_trace: list[float] = []
    eta_used = None
    if cfg.update in FAMILY:
        direction = None if sum_r is None else {k: sum_r[k] / n_r - sum_f[k] / n_f for k in params}  # mean_r - mean_f
        report, start = run_targeted(ctx, direction, progress, start)
        steps = report.steps + (0 if start.get("skipped") else 1)
        stop_reason, auc_trace = report.stop_reason, report.auc_trace
        stage2 = {
            "variant": "poison" if cfg.purpose == "poison" else cfg.update,
            "steps": report.steps,
            "lr_used": report.lr_used,
            "backtracks": report.backtracks,
            "restored_best": report.restored_best,
            "target_gap": report.gap,  # mean |log loss - log target| of the forgotten rows at the last check
        }
    else:
        steps, stop_reason, auc_trace, eta_used = run_classic(
            cfg, model, spec, params, measure, features, labels, holdout, forget, retained, before, sum_r, sum_f,
            retain_idx, forget_idx, correction, progress,
        )  # fmt: skip
        stage2 = None
    clock.lap("update")

    outcome = verdict(ctx, start)
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
        "purpose": cfg.purpose,
        "outcome": outcome,
        "hyperparameters": asdict(cfg),
        "device": str(device),
        "rows": {"live": n_live, "forget": n_f, "retained": n_r, "retained_sample": int(sample_idx.numel())},
        "parameters": trainable_summary(model),  # numbers the update could change, and the frozen ones
        "holdout_split": {
            "stop_rows": 0 if stop is None else int(stop[1].numel()),
            "guard_rows": 0 if guard is None else int(guard[1].numel()),
        },
        "before": before,
        "after": after,
        "param_distance": param_distance(state_dict, new_state),
        "checkpoint_sha256": {"before": sha256_state_dict(state_dict), "after": sha256_state_dict(new_state)},
        "correction": _correction_evidence(cfg, correction, correction_note, cache, current_version, extra_rows)
        | {"estimate_rows": estimate_rows}
        | ({"retained_gradient": "not computed: no update was taken"} if sum_r is None else {}),
        "steps": steps,
        "stage2": stage2,
        "eta_used": eta_used,
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


@torch.no_grad()
def measure_logits_width(model, spec: ArchSpec, x: Tensor, device: torch.device) -> int:
    """Number of classes the model predicts (its logits' width), from one row."""
    from workers.engine.zoo import prepare_inputs

    return model(prepare_inputs(spec, x).to(device)).shape[1]


def _retained_sum(correction, cfg, cache, sum_f, model, spec, features, labels, retain_mask, retain_idx, forget_idx):
    """(sum_{D_r} grad l, covered rows deleted since the cache, rows sampled) for the chosen correction."""
    n_r = retain_idx.numel()
    if correction == "exact":
        return model_gradient_sum(model, spec, features, labels, retain_idx, cfg.chunk_size), 0, 0
    if correction == "cached":
        sum_r, extra = cached_retained_sum(
            cache, sum_f, model, spec, features, labels, retain_mask, forget_idx, cfg.chunk_size
        )
        return sum_r, extra, 0
    # sampled: n_r * (mean gradient over a seeded sample of retained rows)
    pick = retained_sample_index(retain_idx, cfg.retained_estimate_rows, cfg.evidence_seed + 1)
    part = model_gradient_sum(model, spec, features, labels, pick, cfg.chunk_size)
    return {k: v * (n_r / pick.numel()) for k, v in part.items()}, 0, int(pick.numel())


def _correction_evidence(cfg, correction, note, cache, current_version, extra_rows) -> dict:
    described = {
        "exact": "streamed over the retained rows" + (" at every step" if cfg.update == "gradient" else ""),
        "cached": "cache minus forgotten rows at the starting parameters, held fixed across steps",
        "sampled": "mean gradient of a seeded sample of retained rows at the starting parameters",
    }
    staleness = None
    if cache is not None and current_version is not None:
        staleness = current_version - cache.version
    return {
        "mode": correction,
        "requested": cfg.correction,
        "retained_gradient": described[correction],
        "cache_version": cache.version if cache is not None else None,
        "current_version": current_version,
        "staleness": staleness if correction == "cached" or note else None,
        "rows_deleted_since_cache": extra_rows,
        "note": note,
    }


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
