"""Stage 2 of the targeted pipeline: a bounded repair loop over minibatches, and the poison path.

Every step draws a minibatch B_r of retained rows and (all of, or a minibatch of) the forgotten rows F, so its cost
does not depend on the size of the data set. The step's loss, by stage-2 variant (l = per-sample cross-entropy):

    targeted   mean_{B_r} l + w * mean_{i in F} (log l_i - log q_i)^2 + a * mean_{x in A} KL(p_0(x) || p(x))
               q_i is the row's target loss: the quantile of the stop rows' losses at the row's level
               (reference.py), or rank-matched without levels (the forgotten row with the k-th lowest loss is
               pulled toward the (k + 1/2)/|F| quantile of the losses of rows the model never saw); never below
               the row's loss before the deletion. The term is zero at the target, so it cannot overshoot the way
               unbounded ascent does; the targets are refreshed at every check.
               A is a minibatch of anchor inputs: retained rows plus Gaussian noise of `anchor_noise` per-feature
               standard deviations, and p_0 the model before the deletion. Raising a forgotten row's loss by
               gradient steps also lowers its class on unseen rows near it (retained rows, being memorised, do
               not show it); the anchor holds the model's predictions between the training rows, where test rows
               lie, to where they were. Token ids get, instead of noise, a share `anchor_swap` of their
               positions replaced by another retained row's ids at those positions.
    neggrad+   beta * mean_{B_r} l - (1 - beta) * mean_F l          (NegGrad+, Kurmanji et al., NeurIPS 2023)
    salun      mean_{B_r} l + mean_F l(x, random label), with gradients kept only on the salient weights: the
               share `salun_keep` of weights with the largest |grad mean_F l| at the start (SalUn, Fan et al.,
               ICLR 2024)

Adam steps at `repair_lr`, gradients in eval mode (BatchNorm statistics and dropout untouched). Every
`check_every` steps the loop measures the membership AUC of the forgotten rows against the stop rows and the
accuracy on the guard rows and the retained sample. It stops once the AUC is within `auc_tolerance` of
`target_auc` and (targeted, with per-row levels) the rows have reached their targets: mean |log l_i - log q_i|
at most `gap_tolerance`. A set can match its target AUC with its easy rows pushed too far and its hard rows not far
enough; the easy rows' excess is what costs accuracy on unseen rows, so the loop goes on until each row is near
its own target. A check that finds utility lost by more than `max_accuracy_drop` restores the last state that
passed and halves the step size (up to `max_backtracks` times, then the loop stops). Finally, if the result is
further from the target than the starting model, or the forgotten rows' mean loss ended below where it started,
the best state seen (the starting one included) is restored: a deletion never leaves its rows more detectable.

The poison path (purpose "poison") does not stop on membership: a retrained model gives poisoned rows an AUC near 0,
not 0.5. It runs a fixed budget of NegGrad+ steps, then a short fine-tune on retained minibatches to restore
utility.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from workers.engine.evidence import membership_auc
from workers.engine.measure import Measure, paired_lost
from workers.engine.zoo import prepare_inputs

LOSS_FLOOR = 1e-3  # added to losses before the logarithm of the loss-matching term


@dataclass
class RepairReport:
    steps: int = 0  # optimiser steps taken (including steps later undone)
    stop_reason: str = "step_budget"
    auc_trace: list[float] = field(default_factory=list)  # AUC (forget vs stop rows) at each check
    lr_used: float = 0.0  # step size in force at the end
    backtracks: int = 0  # checks that restored the last passing state
    restored_best: bool = False  # the final state was replaced by the best one seen
    gap: float | None = None  # targeted: mean |log loss - log target| of the forgotten rows at the last check


def noise_band(cfg, n_forget: int, n_stop: int) -> float:
    """Largest |AUC - target| still called indistinguishable: max(auc_tolerance, z * se), se the standard error
    of the AUC of two samples from one distribution (Mann-Whitney null, Hanley and McNeil 1982). One forgotten
    row's AUC is its loss rank among the stop rows, uniform for a row never trained on (se about 0.29)."""
    se = ((n_forget + n_stop + 1) / (12.0 * n_forget * n_stop)) ** 0.5
    return max(cfg.auc_tolerance, cfg.auc_noise_z * se)


def rank_targets(
    forget_losses: Tensor, reference_losses: Tensor, levels: Tensor | None = None, floor: Tensor | None = None
) -> Tensor:
    """(F,) target losses: each forgotten row's quantile of `reference_losses`, at its own level when `levels`
    (reference.levels) are given, else rank-matched (the k-th lowest loss gets level (k + 1/2) / F); never below
    `floor`, by default the rows' current losses (making a forgotten row easier than it was would make it look
    more like a training row). With the losses before the deletion as the floor, a row pushed past its target
    is pulled back to it."""
    f = forget_losses.numel()
    if levels is not None:
        out = torch.quantile(reference_losses.double(), levels.double().clamp(0.0, 1.0)).float()  # (F,)
    else:
        order = torch.argsort(forget_losses)  # k-th lowest loss first
        spread = (torch.arange(f, dtype=torch.float64) + 0.5) / f  # (F,) quantile levels
        out = torch.empty(f)
        out[order] = torch.quantile(reference_losses.double(), spread).float()
    floor = forget_losses if floor is None else floor
    return torch.maximum(out, floor.float().cpu())  # a forgotten row is never pulled below its floor


class _Batches:
    """Minibatches of retained and forgotten rows, drawn by a seeded generator in O(batch) per draw."""

    def __init__(self, spec, features, labels, retain_idx, forget_idx, cfg, device):
        self.spec, self.features, self.labels, self.device = spec, features, labels, device
        self.retain_idx, self.forget_idx, self.cfg = retain_idx, forget_idx, cfg
        self.gen = torch.Generator().manual_seed(cfg.evidence_seed + 7919)
        self._spread: Tensor | None = None  # per-feature standard deviation of prepared retained rows

    def _rows(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        x = prepare_inputs(self.spec, self.features[idx]).to(self.device)  # (b, ...)
        y = self.labels[idx].to(device=self.device, dtype=torch.int64)  # (b,)
        return x, y

    def retained(self) -> tuple[Tensor, Tensor]:
        n = self.retain_idx.numel()
        pick = torch.randint(0, n, (min(self.cfg.repair_batch, n),), generator=self.gen)
        return self._rows(self.retain_idx[pick])

    def anchor(self) -> Tensor | None:
        """`anchor_batch` retained rows as the model consumes them, made into rows no model was trained on:
        float inputs get N(0, (anchor_noise * per-feature std)^2) noise; integer inputs (token ids) take, at a
        share `anchor_swap` of their positions, the id another retained row has at that position."""
        if self.cfg.anchor_weight <= 0 or self.cfg.anchor_batch <= 0:
            return None
        n = self.retain_idx.numel()
        pick = torch.randint(0, n, (min(self.cfg.anchor_batch, n),), generator=self.gen)
        x, _ = self._rows(self.retain_idx[pick])
        if not x.is_floating_point():
            # ids: a share of the positions takes the id another retained row has there
            other, _ = self._rows(self.retain_idx[torch.randint(0, n, (x.shape[0],), generator=self.gen)])
            swap = (torch.rand(x.shape, generator=self.gen) < self.cfg.anchor_swap).to(x.device)
            return torch.where(swap, other, x)
        if self._spread is None:
            sample = torch.randperm(n, generator=self.gen)[:1024]
            self._spread = self._rows(self.retain_idx[sample])[0].std(0, unbiased=False)  # (...)
        noise = torch.randn(x.shape, generator=self.gen).to(x.device)
        return x + self.cfg.anchor_noise * self._spread * noise

    def forgotten(self) -> tuple[Tensor, Tensor, Tensor]:
        """(x, y, positions within forget_idx) of all forgotten rows, or a minibatch of them."""
        n = self.forget_idx.numel()
        pos = torch.arange(n)
        if n > self.cfg.forget_batch:
            pos = torch.randperm(n, generator=self.gen)[: self.cfg.forget_batch]
        x, y = self._rows(self.forget_idx[pos])
        return x, y, pos


def _saliency_mask(model, params: dict, batches: _Batches, keep: float) -> dict[str, Tensor]:
    """1.0 on the `keep` share of weights with the largest |grad mean_F l|, 0.0 elsewhere (SalUn's mask)."""
    x, y, _ = batches.forgotten()
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(params.values()))
    flat = torch.cat([g.abs().flatten() for g in grads])
    k = max(1, int(round(keep * flat.numel())))
    threshold = torch.topk(flat, k).values.min()
    return {name: (g.abs() >= threshold).to(g.dtype) for name, g in zip(params, grads, strict=True)}


def _anchor_term(model, batches: _Batches, anchor_state: dict | None) -> Tensor | float:
    """mean KL(p_0 || p) over a minibatch of anchor inputs, p_0 the model with `anchor_state`'s parameters."""
    xa = None if anchor_state is None else batches.anchor()
    if xa is None:
        return 0.0
    with torch.no_grad():
        z0 = torch.func.functional_call(model, anchor_state, (xa,))  # (b_a, C) before the deletion
    log_p = F.log_softmax(model(xa), 1)
    return F.kl_div(log_p, F.log_softmax(z0, 1), log_target=True, reduction="batchmean")


def _loss(kind: str, model, batches: _Batches, targets: Tensor | None, cfg, num_classes: int, anchor=None) -> Tensor:
    xr, yr = batches.retained()
    retained = F.cross_entropy(model(xr), yr)
    xf, yf, pos = batches.forgotten()
    if kind == "targeted":
        lf = F.cross_entropy(model(xf), yf, reduction="none")  # (b_f,)
        gap = torch.log(lf + LOSS_FLOOR) - torch.log(targets[pos].to(lf.device) + LOSS_FLOOR)  # (b_f,)
        matched = retained + cfg.forget_weight * (gap**2).mean()
        return matched + cfg.anchor_weight * _anchor_term(model, batches, anchor)
    if kind == "neggrad+":
        return cfg.neggrad_beta * retained - (1 - cfg.neggrad_beta) * F.cross_entropy(model(xf), yf)
    if kind == "salun":
        shift = torch.randint(1, num_classes, yf.shape, generator=batches.gen).to(yf.device)
        return retained + F.cross_entropy(model(xf), (yf + shift) % num_classes)  # a random wrong label
    if kind == "finetune":
        return retained
    raise ValueError(f"unknown repair variant {kind!r}")


def _snapshot(params: dict) -> dict[str, Tensor]:
    return {k: p.detach().clone() for k, p in params.items()}


@torch.no_grad()
def _restore(params: dict, saved: dict[str, Tensor], measure: Measure) -> None:
    for k, p in params.items():
        p.copy_(saved[k])
    measure.changed()


def _step(model, params, opt, kind, batches, targets, cfg, num_classes, mask, measure, anchor=None) -> None:
    opt.zero_grad(set_to_none=True)
    _loss(kind, model, batches, targets, cfg, num_classes, anchor).backward()
    if mask is not None:
        for k, p in params.items():
            if p.grad is not None:
                p.grad.mul_(mask[k])
    opt.step()
    measure.changed()


def repair_privacy(ctx, kind: str, start: dict, progress) -> RepairReport:
    """The stage-2 loop for purpose "privacy". `start`: the state before stage 1 with its stop-rule figures."""
    cfg, measure, params = ctx.cfg, ctx.measure, ctx.params
    report = RepairReport(lr_used=cfg.repair_lr)
    opt = torch.optim.Adam(list(params.values()), lr=cfg.repair_lr)
    mask = _saliency_mask(ctx.model, params, ctx.batches, cfg.salun_keep) if kind == "salun" else None
    anchor = start["state"] if kind == "targeted" else None  # the model before the deletion

    def check() -> tuple[float, float, Tensor | None]:
        """(AUC against the stop rows, mean forgotten loss, the rows' targets (targeted) or None)."""
        f_losses, stop_losses = measure(ctx.forget)[0], measure(ctx.stop)[0]
        targets = None
        if kind == "targeted":
            targets = rank_targets(f_losses, stop_losses, start["levels"], floor=start["forget_losses"])
            report.gap = float(
                (torch.log(f_losses.float().cpu() + LOSS_FLOOR) - torch.log(targets + LOSS_FLOOR)).abs().mean()
            )
        return membership_auc(f_losses, stop_losses), float(f_losses.double().mean()), targets

    def distance(auc: float) -> float:
        return abs(auc - start["target_auc"])

    def rows_at_target() -> bool:
        """Each row near its own target (targeted, with per-row levels: rank-matched targets follow the rows'
        own order, so the set's AUC already says where they stand)."""
        return kind != "targeted" or start["levels"] is None or report.gap <= cfg.gap_tolerance

    def never_worse(auc: float, f_loss: float) -> None:
        """Restore the best state seen (the start included) if the rows ended further from their target than
        they started, or easier."""
        if distance(auc) > distance(start["auc"]) or f_loss < start["forget_loss"]:
            _restore(params, best["state"], measure)
            report.restored_best = True

    best = {"state": start["state"], "distance": distance(start["auc"]), "auc": start["auc"]}
    last_good = _snapshot(params)
    if paired_lost(measure, ctx.baselines, cfg.max_accuracy_drop, cfg.guard_noise_z):
        last_good = start["state"]  # stage 1 alone cost too much utility: a failed check goes back before it
    auc, f_loss, targets = check()
    report.auc_trace.append(auc)
    if distance(auc) <= start["band"]:
        report.stop_reason = "within_noise"  # after stage 1 the rows are as plausible unseen as sampling allows
        never_worse(auc, f_loss)  # stage 1 may still have moved them the wrong way
        return report
    for step in range(cfg.repair_steps):
        if distance(auc) <= cfg.auc_tolerance and rows_at_target():
            report.stop_reason = "auc_target"
            break
        for _ in range(cfg.check_every):
            _step(ctx.model, params, opt, kind, ctx.batches, targets, cfg, ctx.num_classes, mask, measure, anchor)
            report.steps += 1
        progress(0.3 + 0.6 * (step + 1) / cfg.repair_steps)
        if paired_lost(measure, ctx.baselines, cfg.max_accuracy_drop, cfg.guard_noise_z):
            _restore(params, last_good, measure)
            report.backtracks += 1
            if report.backtracks > cfg.max_backtracks:
                report.stop_reason = "utility_guard"
                break
            report.lr_used /= 2
            for group in opt.param_groups:
                group["lr"] = report.lr_used
        else:
            last_good = _snapshot(params)
        auc, f_loss, targets = check()
        report.auc_trace.append(auc)
        if f_loss >= start["forget_loss"] and distance(auc) < best["distance"]:
            best = {"state": _snapshot(params), "distance": distance(auc), "auc": auc}
    never_worse(*check()[:2])
    return report


def repair_poison(ctx, progress) -> RepairReport:
    """Purpose "poison": `poison_steps` NegGrad+ steps, then `finetune_steps` steps on retained rows alone."""
    cfg, measure, params = ctx.cfg, ctx.measure, ctx.params
    report = RepairReport(lr_used=cfg.poison_lr, stop_reason="poison_budget")
    opt = torch.optim.Adam(list(params.values()), lr=cfg.poison_lr)
    total = max(1, cfg.poison_steps + cfg.finetune_steps)
    for kind, steps in (("neggrad+", cfg.poison_steps), ("finetune", cfg.finetune_steps)):
        for _ in range(steps):
            _step(ctx.model, params, opt, kind, ctx.batches, None, cfg, ctx.num_classes, None, measure)
            report.steps += 1
            progress(0.3 + 0.6 * report.steps / total)
    return report
