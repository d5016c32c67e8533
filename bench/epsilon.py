"""Per-example epsilon of an unlearning method, estimated after the NeurIPS 2023 unlearning challenge, from
unlearned shadow models (the per-example U-MIA setting of Hayes et al. 2024, "Inexact unlearning needs more
careful evaluations to avoid a false sense of privacy").

For a forgotten row x, two distributions of the logit-scaled confidence phi on x (bench.lira):

    U_x  models trained with x and then unlearned with the method: the shadow models of bench.lira that had x in
         their training half, each of which unlearns the scenario's forgotten rows it trained on (padded with
         other rows of its half to the scenario's forget-set size, so the method sees a deletion of that size);
    R_x  models trained without x: the shadows that had x out, what exact retraining gives for x.

An attacker who thresholds phi errs with rates FPR and FNR; the challenge's per-example estimate is

    eps_x = max over thresholds of max(log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR))

(the hypothesis-testing view of (eps, delta) indistinguishability), with delta = 0.01 here. The challenge
measured the rates on 512 unlearned and 512 retrained models per forget set. That is out of reach on two CPU
cores (about 7 s per training run), and each row here has only S/2 samples of each distribution (4 with the
default 8 shadows), too few for empirical rates. So both distributions are taken as Gaussians (per-row means;
spreads pooled over rows, the reference spread over every pool row as in LiRA), and the rates are read off
them, floored at 1e-3 (as if 1,000 models had been measured: eps_x <= about 6.9). A mean difference
estimated from n_U and n_R samples overstates the squared distance by sd_U^2 / n_U + sd_R^2 / n_R on average;
that bias is subtracted (floored at 0), so that a method indistinguishable from retraining scores near 0
instead of the sampling noise. What remains is a coarse, parametric estimate, not an audit.

Aggregates over the forgotten rows: the median eps_x, and a forgetting score in the manner of the challenge,
mean over rows of 2^-floor(eps_x / 0.5) (1 when every row is indistinguishable; the score halves with every
half unit of eps). "original" (no unlearning: U_x = the IN shadows themselves) is the upper anchor.
"""

import math

import torch
from torch import Tensor

from bench import lira, tasks
from bench.adapter import load_model, prepare_inputs, unlearn
from bench.metrics import logits

DELTA = 0.01
MIN_RATE = 1e-3  # floor on FPR and FNR read off the Gaussians
BIN = 0.5  # eps width per halving of the forgetting score


def epsilon(gap: Tensor, sd_u: Tensor, sd_r: Tensor, delta: float = DELTA) -> Tensor:
    """eps of threshold tests between N(0, sd_r) (retrained) and N(gap, sd_u) (unlearned), gap >= 0: (F,)."""
    gap, sd_u, sd_r = (v.double() for v in torch.broadcast_tensors(gap, sd_u, sd_r))
    lo = torch.minimum(-6 * sd_r, gap - 6 * sd_u)[:, None]
    hi = torch.maximum(6 * sd_r, gap + 6 * sd_u)[:, None]
    t = lo + (hi - lo) * torch.linspace(0, 1, 2001, dtype=torch.float64)[None, :]  # (F, T) thresholds
    fpr = torch.special.ndtr(-t / sd_r[:, None]).clamp_min(MIN_RATE)  # retrained model called unlearned
    fnr = torch.special.ndtr((t - gap[:, None]) / sd_u[:, None]).clamp_min(MIN_RATE)  # unlearned called retrained
    a = torch.log((1 - delta - fpr).clamp_min(1e-300) / fnr)
    b = torch.log((1 - delta - fnr).clamp_min(1e-300) / fpr)
    return torch.maximum(a, b).amax(1).clamp_min(0.0)


def _pooled_sd(phi: Tensor, mask: Tensor) -> float:
    """Spread of phi around each row's own mean, pooled over rows (entries where mask is True)."""
    m = mask.double()
    count = m.sum(0)
    mu = (phi.double().nan_to_num() * m).sum(0) / count.clamp_min(1)
    sq = (((phi.double().nan_to_num() - mu) ** 2) * m).sum(0)
    return math.sqrt(float(sq.sum() / max(float(count.sum() - (count > 0).sum()), 1.0)))


def per_row(sh: lira.Shadows, rows: Tensor, phi_u: Tensor, in_u: Tensor) -> Tensor:
    """eps_x for pool rows `rows`: phi_u (S, F) the unlearned shadows' values where in_u (S, F) is True."""
    out_r = ~sh.member[:, rows]  # (S, F) shadows without the row
    phi_r = sh.phi[:, rows]
    sd_r = _pooled_sd(sh.phi, ~sh.member)  # over every pool row: well estimated
    sd_u = _pooled_sd(phi_u, in_u)
    n_u, n_r = in_u.sum(0).double(), out_r.sum(0).double()  # (F,)
    mu_u = (phi_u.double().nan_to_num() * in_u).sum(0) / n_u
    mu_r = (phi_r.double() * out_r).sum(0) / n_r
    gap2 = (mu_u - mu_r) ** 2 - (sd_u**2 / n_u + sd_r**2 / n_r)  # bias of the squared estimate removed
    return epsilon(gap2.clamp_min(0).sqrt(), torch.tensor(sd_u), torch.tensor(sd_r))


def unlearned_shadows(sh: lira.Shadows, sc: tasks.Scenario, seed: int, cfg, device) -> tuple[Tensor, Tensor]:
    """(phi (S, F), in (S, F)): each shadow that trained on forgotten rows unlearns them with `cfg`."""
    f = tasks.forget_index(sc, seed)  # train rows = pool rows [0, n_train)
    t, spec = tasks.task(sc.task, seed), tasks.spec_for(sc.task, seed)
    g = torch.Generator().manual_seed(50_000 + seed)
    phi = torch.full((len(sh.states), len(f)), float("nan"))
    in_u = sh.member[:, f].clone()  # (S, F)
    in_forget = torch.zeros(len(sh.pool_y), dtype=torch.bool)
    in_forget[f] = True
    for k, state in enumerate(sh.states):
        if not in_u[k].any():
            continue
        rows = sh.member[k].nonzero().squeeze(1)  # pool rows of shadow k's training half
        local = torch.full((len(sh.pool_y),), -1, dtype=torch.int64)
        local[rows] = torch.arange(len(rows))
        forget = local[f[in_u[k]]]
        others = local[rows[~in_forget[rows]]]
        pad = others[torch.randperm(len(others), generator=g)[: len(f) - len(forget)]]
        forget = torch.cat([forget, pad])
        retain = torch.ones(len(rows), dtype=torch.bool)
        retain[forget] = False
        x, y = sh.pool_x[rows], sh.pool_y[rows]
        res = unlearn(spec, state, x, y, retain, forget, cfg, device, holdout=(t.x_cal, t.y_cal), current_version=1)
        hit = f[in_u[k]]
        z = logits(load_model(spec, res.state_dict, device), prepare_inputs(spec, sh.pool_x[hit]), device)
        phi[k, in_u[k]] = lira.logit_confidence(z, sh.pool_y[hit])
    return phi, in_u


def summary(eps: Tensor) -> dict:
    """Median eps over rows and the challenge-style forgetting score."""
    score = torch.pow(2.0, -torch.floor(eps / BIN))
    return {
        "eps_median": float(eps.double().quantile(0.5)),
        "forgetting_score": float(score.mean()),
        "eps": eps.tolist(),
    }


def measure(sh: lira.Shadows, sc: tasks.Scenario, seed: int, method_list, device) -> dict[str, dict]:
    """{row label: summary} for "original" and every plain engine method ("iau") of `method_list`."""
    f = tasks.forget_index(sc, seed)
    out = {"original": summary(per_row(sh, f, sh.phi[:, f], sh.member[:, f]))}
    for label, kind, cfg in method_list:
        if kind == "iau":
            out[label] = summary(per_row(sh, f, *unlearned_shadows(sh, sc, seed, cfg, device)))
    return out
