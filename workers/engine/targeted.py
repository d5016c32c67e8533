"""The targeted unlearning pipeline: the IAU step, a bounded repair, and a verdict against a stated target.

    stage 1   one IAU step (Liu et al., 2024): a freshly created Adam(lr) step on grad mean_{D_r} l - grad mean_{D_f} l
    stage 2   repair.repair_privacy (purpose "privacy") or repair.repair_poison (purpose "poison")
    verdict   outcome(...): {target, met, measured, reason}

Targets, by purpose:
- privacy: the membership AUC of the forgotten rows against the holdout's stop rows (loss-threshold attack, Yeom et
  al. 2018) within `auc_tolerance` of `target_auc` (0.5: indistinguishable from rows never trained on), and accuracy
  on the guard rows and on the retained sample no more than `max_accuracy_drop` below where it started. The stop
  rule reads only the stop rows, the guard only the guard rows (measure.split_holdout). Without a holdout nothing
  can be measured and the verdict is not met.
- poison: accuracy of the model on the forgotten rows' recorded (poisoned) labels at most `max_forget_accuracy`,
  with the same utility condition. A retrained model no longer reproduces what poisoned rows taught; a membership
  target would be wrong here (a retrained model gives poisoned rows an AUC near 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from workers.engine import reference
from workers.engine.evidence import membership_auc
from workers.engine.measure import Measure, Rows, accuracy, paired_drop
from workers.engine.repair import RepairReport, _Batches, noise_band, repair_poison, repair_privacy

FAMILY = ("targeted", "neggrad+", "salun")  # updates that run this pipeline; they differ in the stage-2 loss


@dataclass
class PipelineContext:
    cfg: object  # UnlearnConfig
    model: torch.nn.Module
    params: dict
    measure: Measure
    forget: Rows  # the forgotten rows
    stop: Rows | None  # holdout rows the stop rule and the loss targets read
    guard: Rows | None  # holdout rows only the utility guard reads
    retained: Rows  # the fixed retained sample
    reference: Rows | None  # retained rows the per-row reference model is fitted to (reference.py)
    baselines: list  # [(rows, each row's correctness at the start)]: the guard rows, the retained sample
    batches: _Batches
    num_classes: int


def apply_stage1(params: dict, direction: dict[str, Tensor], lr: float) -> None:
    """One step of a freshly created Adam(lr) on `direction` (the IAU reference update)."""
    for k, p in params.items():
        p.grad = direction[k].to(p.dtype)
    torch.optim.Adam(list(params.values()), lr=lr).step()  # fresh optimiser: first-step Adam
    for p in params.values():
        p.grad = None


def start_point(ctx: PipelineContext) -> dict:
    """The starting model's stop-rule figures and a copy of its parameters (the repair never ends worse)."""
    f_loss = ctx.measure(ctx.forget)[0]
    state = {k: p.detach().clone() for k, p in ctx.params.items()}
    out = {"state": state, "auc": float("nan"), "forget_loss": float(f_loss.double().mean()), "signal": True}
    out |= {"levels": None, "target_auc": ctx.cfg.target_auc, "forget_losses": f_loss.detach().float().cpu()}
    if ctx.stop is not None:
        stop_losses = ctx.measure(ctx.stop)[0]
        out["auc"] = membership_auc(f_loss, stop_losses)
        if ctx.cfg.purpose == "privacy" and ctx.cfg.row_targets and ctx.reference is not None:
            out["levels"] = reference.levels(ctx.reference, ctx.forget, ctx.stop, ctx.num_classes, ctx.cfg)
            if out["levels"] is not None:
                out["target_auc"] = reference.expected_auc(out["levels"])
        # Rows that already rank as hard as (or harder than) their target are no more detectable than rows never
        # trained on: training only ever makes a row easier, so the target never asks them to become easier.
        out["target_auc"] = min(out["target_auc"], out["auc"])
        # the attack's power on this model: retained (training) rows against rows never trained on
        members = ctx.measure(ctx.retained)[0]
        out["retained_auc"] = membership_auc(members, stop_losses)
        out["retained_band"] = noise_band(ctx.cfg, members.numel(), stop_losses.numel())
        out["signal"] = abs(out["retained_auc"] - ctx.cfg.target_auc) > out["retained_band"]
        out["band"] = noise_band(ctx.cfg, ctx.forget[1].numel(), stop_losses.numel())
        out["rows_in_band"] = abs(out["auc"] - out["target_auc"]) <= out["band"]
    return out


def nothing_to_remove(cfg, start: dict) -> bool:
    """Purpose privacy, and neither the model nor the forgotten rows carry a membership signal: the attack cannot
    tell the model's training rows from unseen ones, and the forgotten rows already rank among the stop rows as
    unseen rows do. Any step would then only move the model away from where retraining puts it (measured on a
    model that generalises: docs/engine.md), so none is taken unless `stage1_without_signal` says so."""
    return (
        cfg.purpose == "privacy"
        and not cfg.stage1_without_signal
        and not start["signal"]
        and bool(start.get("rows_in_band"))
    )


def run(ctx: PipelineContext, direction: dict[str, Tensor] | None, progress, start: dict) -> tuple[RepairReport, dict]:
    """Stage 1 and stage 2 on ctx.model in place, from `start` (start_point of the same context, with "skipped"
    set when nothing_to_remove: then no step is taken and `direction` may be None); returns the repair report
    and the starting figures."""
    cfg = ctx.cfg
    if start.get("skipped"):
        return RepairReport(stop_reason="no_membership_signal", lr_used=cfg.repair_lr), start
    apply_stage1(ctx.params, direction, cfg.lr)
    ctx.measure.changed()
    if cfg.purpose == "poison":
        report = repair_poison(ctx, progress)
    elif ctx.stop is None:
        report = RepairReport(stop_reason="no_holdout", lr_used=cfg.repair_lr)  # nothing to steer the repair by
    else:
        report = repair_privacy(ctx, cfg.update, start, progress)
    return report, start


def band_text(band: float) -> str:
    return f"0.5 +/- {band:.3f}"


def _utility(ctx: PipelineContext) -> tuple[dict, bool]:
    """The guard rows' and the retained sample's accuracy, drop and allowed drop (measure.paired_drop), and
    whether every drop is within what it is allowed."""
    out, ok = {}, True
    for name, (rows, before) in zip(("guard", "retained_sample"), ctx.baselines, strict=False):
        r = paired_drop(ctx.measure, rows, before, ctx.cfg.max_accuracy_drop, ctx.cfg.guard_noise_z)
        out[f"{name}_accuracy"] = None if r is None else r["accuracy"]
        out[f"{name}_accuracy_drop"] = None if r is None else r["drop"]
        out[f"{name}_accuracy_drop_allowed"] = None if r is None else r["allowed"]
        ok = ok and (r is None or r["drop"] <= r["allowed"] + 1e-12)
    return out, ok


def outcome(ctx: PipelineContext, start: dict) -> dict:
    """The verdict of the current model against the purpose's target."""
    cfg = ctx.cfg
    utility, utility_ok = _utility(ctx)
    f_loss = ctx.measure(ctx.forget)[0]
    measured = {"forget_loss": float(f_loss.double().mean()), "forget_loss_start": start["forget_loss"], **utility}
    if cfg.purpose == "poison":
        forget_acc = accuracy(ctx.measure, ctx.forget)
        measured["forget_accuracy"] = forget_acc
        target = {
            "kind": "poison",
            "max_forget_accuracy": cfg.max_forget_accuracy,
            "max_accuracy_drop": cfg.max_accuracy_drop,
            "guard_noise_z": cfg.guard_noise_z,  # and this many standard errors of the paired change
        }
        met = forget_acc <= cfg.max_forget_accuracy and utility_ok
        reason = (
            f"the forgotten rows' labels are reproduced on {forget_acc:.1%} of them "
            f"(target at most {cfg.max_forget_accuracy:.1%})"
        )
    else:
        target = {
            "kind": "membership",
            "membership_auc": start["target_auc"],
            "per_row": start["levels"] is not None,
            "tolerance": cfg.auc_tolerance,
            "max_accuracy_drop": cfg.max_accuracy_drop,
            "guard_noise_z": cfg.guard_noise_z,  # and this many standard errors of the paired change
        }
        if ctx.stop is None:
            return {
                "target": target,
                "met": False,
                "measured": measured,
                "reason": "the data set has no holdout rows: membership cannot be measured",
            }
        auc = membership_auc(f_loss, ctx.measure(ctx.stop)[0])
        band = start["band"]
        target["band"] = band  # the tolerance in force for this many forgotten and stop rows
        measured |= {"membership_auc": auc, "membership_auc_start": start["auc"], "stop_rows": int(ctx.stop[1].numel())}
        measured |= {"retained_membership_auc": start["retained_auc"], "retained_band": start["retained_band"]}
        goal = start["target_auc"]
        met = abs(auc - goal) <= band + 1e-12 and utility_ok
        reason = f"membership AUC {start['auc']:.3f} -> {auc:.3f} (target {goal:.3f} +/- {band:.3f}"
        reason += ", from a reference model of how hard the rows are)" if start["levels"] is not None else ")"
        if start.get("skipped"):
            reason += (
                f"; the attack cannot tell this model's training rows from unseen ones (retained rows' AUC "
                f"{start['retained_auc']:.3f}, within {band_text(start['retained_band'])}) and the forgotten rows "
                "already rank as unseen rows do, so the parameters were left unchanged (no update would bring "
                "them closer to a retrained model); an exact consolidation covers the request later"
            )
    if not utility_ok:
        reason += f"; utility fell by more than {cfg.max_accuracy_drop:.1%} and its sampling noise"
    return {"target": target, "met": bool(met), "measured": measured, "reason": reason}
