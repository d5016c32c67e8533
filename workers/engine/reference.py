"""Per-row targets for the privacy repair: how hard each forgotten row would be for a model that never saw it.

A random forget set is, on average, as hard as the holdout, so "membership AUC 0.5" is the right target on
average. A given forget set is not average: mislabelled or atypical rows would get a high loss from a model
retrained without them (AUC well below 0.5), typical rows a low one (above 0.5). Pulling every set to 0.5 leaves
the first kind too easy and drags the second kind away from where retraining leaves it.

The engine estimates each row's place with a reference model that cannot memorise: a multinomial logistic
regression on the flattened, standardised features (randomly projected to at most `reference_dim` dimensions),
fitted with L2 regularisation to a seeded sample of retained rows. Its loss on a forgotten row, ranked among its
losses on the stop rows, gives the row's level: the share of unseen rows that are easier. The repair then pulls
each forgotten row toward that quantile of the model's own stop-row losses, and the verdict's target AUC is the
mean of (1 - level) over the forgotten rows: what the stop rule should read if the rows rank as their difficulty
says. Only retained rows and stop rows are read, never the guard rows.

The reference model needs floating-point features; for anything else (token ids) or very wide rows, no levels are
computed and the target stays `target_auc`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Rows = tuple[Tensor, Tensor]
MAX_INPUT_DIM = 1 << 14  # wider rows get no reference model: the projection matrix (D x 512 floats) stays <= 32 MB


class LinearReference:
    """Standardise, project, then a linear softmax fitted by L-BFGS with an L2 penalty."""

    def __init__(self, rows: Rows, num_classes: int, l2: float, dim: int, seed: int, iters: int = 100):
        x = rows[0].flatten(1).to(torch.float32).cpu()  # (n, D)
        y = rows[1].to(torch.int64).cpu()  # (n,)
        self.proj = None
        if x.shape[1] > dim:
            g = torch.Generator().manual_seed(seed)
            self.proj = torch.randn(x.shape[1], dim, generator=g) / dim**0.5  # (D, dim)
        z = self._project(x)
        self.mean, self.std = z.mean(0), z.std(0) + 1e-6
        z = (z - self.mean) / self.std
        self.w = torch.zeros(z.shape[1], num_classes, requires_grad=True)
        self.b = torch.zeros(num_classes, requires_grad=True)
        opt = torch.optim.LBFGS([self.w, self.b], max_iter=iters, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(z @ self.w + self.b, y) + l2 * (self.w**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.w, self.b = self.w.detach(), self.b.detach()

    def _project(self, x: Tensor) -> Tensor:
        return x if self.proj is None else x @ self.proj

    def losses(self, rows: Rows) -> Tensor:
        z = (self._project(rows[0].flatten(1).to(torch.float32).cpu()) - self.mean) / self.std
        return F.cross_entropy(z @ self.w + self.b, rows[1].to(torch.int64).cpu(), reduction="none")  # (n,)


def applicable(features: Tensor) -> bool:
    return features.is_floating_point() and features[0].numel() <= MAX_INPUT_DIM


def levels(reference: Rows, forget: Rows, stop: Rows, num_classes: int, cfg) -> Tensor | None:
    """(F,) each forgotten row's level: the share of stop rows the reference model finds easier (ties count
    half); None when the features do not allow a reference model."""
    if not applicable(forget[0]) or reference[1].numel() < 2:
        return None
    model = LinearReference(reference, num_classes, cfg.reference_l2, cfg.reference_dim, cfg.evidence_seed)
    lf, ls = model.losses(forget), model.losses(stop)  # (F,), (S,)
    below = (ls[None, :] < lf[:, None]).double().sum(1)  # (F,)
    ties = (ls[None, :] == lf[:, None]).double().sum(1)
    return ((below + 0.5 * ties) / ls.numel()).float()


def expected_auc(level: Tensor) -> float:
    """The membership AUC of rows at these levels against the stop rows: mean of (1 - level)."""
    return float((1.0 - level.double()).mean())
