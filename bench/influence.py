"""Influence-function unlearning baseline with Hessian-inverse-vector products.

Removing the rows D_f from a model trained to a minimum of the mean loss over D moves the optimum, to first
order, by (Koh & Liang 2017, "Understanding Black-box Predictions via Influence Functions"; the removal step of
Guo et al. 2020, "Certified Data Removal from Machine Learning Models"):

    theta_new = theta + 1/|D_r| * (H_r + lambda I)^{-1} sum_{i in D_f} grad l_i(theta)

with H_r the Hessian of the mean loss over the retained rows D_r and lambda a damping term that keeps the
system positive definite for non-convex models. The linear system is solved with conjugate gradient; every
Hessian-vector product is a double backward pass over D_r in chunks (Pearlmutter 1994), so no Hessian is
formed. Gradients are taken in eval mode. The gradient-restriction penalty of training is left out of H_r.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


@dataclass
class InfluenceConfig:
    damping: float = 0.01  # lambda added to the Hessian diagonal (starting value)
    damping_growth: float = 10.0  # multiply lambda by this and restart CG on non-positive curvature
    max_restarts: int = 4  # restarts allowed; after the last one the solution so far is used
    cg_iters: int = 50  # conjugate-gradient iteration budget (each iteration = one pass over D_r)
    cg_tol: float = 1e-4  # stop when ||residual|| <= cg_tol * ||rhs||
    chunk_size: int = 4096  # rows per forward/backward chunk
    scale: float = 1.0  # multiplier on the Newton step (1 = the influence-function estimate)


@dataclass
class InfluenceResult:
    state_dict: dict[str, Tensor]
    cg_iters: int  # iterations run, over every restart (each = one pass over D_r)
    rel_residual: float  # ||H v - rhs|| / ||rhs|| at the end
    damping: float  # lambda actually used
    restarts: int  # CG restarts after non-positive curvature


def _loss_sum(model: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(functional_call(model, params, (x,)), y, reduction="sum")


def _grad_sum(model, params, x, y, chunk_size, device) -> list[Tensor]:
    """Sum over rows of grad l_i, streamed in chunks."""
    total = [torch.zeros_like(p) for p in params.values()]
    for s in range(0, len(y), chunk_size):
        xb, yb = x[s : s + chunk_size].to(device), y[s : s + chunk_size].to(device)
        grads = torch.autograd.grad(_loss_sum(model, params, xb, yb), list(params.values()))
        total = [t + g for t, g in zip(total, grads, strict=True)]
    return total


def _hvp(model, params, x, y, v: list[Tensor], chunk_size, device) -> list[Tensor]:
    """(mean over rows of the Hessian of l) @ v by double backward, streamed in chunks."""
    out = [torch.zeros_like(p) for p in params.values()]
    for s in range(0, len(y), chunk_size):
        xb, yb = x[s : s + chunk_size].to(device), y[s : s + chunk_size].to(device)
        grads = torch.autograd.grad(_loss_sum(model, params, xb, yb), list(params.values()), create_graph=True)
        gv = sum((g * vi).sum() for g, vi in zip(grads, v, strict=True))  # scalar grad . v
        hv = torch.autograd.grad(gv, list(params.values()))
        out = [o + h.detach() for o, h in zip(out, hv, strict=True)]
    return [o / len(y) for o in out]


def _dot(a: list[Tensor], b: list[Tensor]) -> Tensor:
    return sum((ai * bi).sum() for ai, bi in zip(a, b, strict=True))


def _cg(apply_a, rhs: list[Tensor], cfg: InfluenceConfig) -> tuple[list[Tensor], int, float, bool]:
    """Conjugate gradient on A s = rhs from s = 0: (s, iterations, relative residual, hit non-positive
    curvature). On non-positive curvature the iterate so far is returned."""
    sol = [torch.zeros_like(r) for r in rhs]
    res = [r.clone() for r in rhs]
    p = [r.clone() for r in rhs]
    rr = _dot(res, res)
    rhs_norm = rr.sqrt().clamp_min(1e-30)
    iters = 0
    for _ in range(cfg.cg_iters):
        if rr.sqrt() <= cfg.cg_tol * rhs_norm:
            break
        ap = apply_a(p)
        pap = _dot(p, ap)
        iters += 1
        if pap <= 0:
            return sol, iters, float(rr.sqrt() / rhs_norm), True
        step = rr / pap
        sol = [s + step * pi for s, pi in zip(sol, p, strict=True)]
        res = [r - step * a for r, a in zip(res, ap, strict=True)]
        rr_new = _dot(res, res)
        p = [r + (rr_new / rr) * pi for r, pi in zip(res, p, strict=True)]
        rr = rr_new
    return sol, iters, float(rr.sqrt() / rhs_norm), False


def influence_unlearn(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    forget_idx: Tensor,
    cfg: InfluenceConfig,
    device: torch.device,
) -> InfluenceResult:
    """Apply the influence-function removal step for the rows `forget_idx` of (x, y) to `model`'s parameters.

    `model` holds the trained parameters (any device; it is moved to `device`); x is prepared input (N, ...).
    """
    model = model.to(device).eval()
    params = {k: p.detach().clone().requires_grad_(True) for k, p in model.named_parameters()}
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[forget_idx] = False
    x_r, y_r = x[keep], y[keep]  # retained rows, (N - m, ...)

    rhs = [g / len(y_r) for g in _grad_sum(model, params, x[forget_idx], y[forget_idx], cfg.chunk_size, device)]

    def _damped_hvp(v: list[Tensor], lam: float) -> list[Tensor]:
        hv = _hvp(model, params, x_r, y_r, v, cfg.chunk_size, device)
        return [h + lam * vi for h, vi in zip(hv, v, strict=True)]

    damping, restarts, total_iters = cfg.damping, 0, 0
    while True:
        sol, iters, rel, negative = _cg(lambda v, lam=damping: _damped_hvp(v, lam), rhs, cfg)
        total_iters += iters
        if not negative or restarts >= cfg.max_restarts:
            break
        damping, restarts = damping * cfg.damping_growth, restarts + 1

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for (k, _), s in zip(params.items(), sol, strict=True):
        state[k] = (params[k].detach() + cfg.scale * s).to(state[k].dtype)
    state = {k: v.to("cpu") for k, v in state.items()}
    return InfluenceResult(state, total_iters, rel, damping, restarts)
