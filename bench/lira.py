"""Per-example membership attack against shadow models (LiRA), on the memorisation task.

    .venv/bin/python -m bench.lira [--shadows 8] [--seeds 3] [--device cpu|cuda] [--quick]

Online likelihood-ratio attack of Carlini et al. 2022, "Membership Inference Attacks From First Principles",
in the per-example form that Hayes et al. 2024, "Inexact unlearning needs more careful evaluations to avoid a
false sense of privacy", recommend for judging unlearning (a dedicated test for every example, instead of one
loss threshold for the whole population).

For one seed of the memorisation task:

- pool = the task's n train rows + n reference rows drawn from the same distribution (data.memorisation_reference),
  which no benchmark model is trained on. S shadow models (S even) are trained with the task's recipe on halves
  of the pool: S/2 random halves and their complements, so every pool row is IN for exactly S/2 shadows and OUT
  for the other S/2, and every shadow trains on n rows, as the original does.
- per pool row x and shadow k, the logit-scaled confidence phi = log(p_y / (1 - p_y)) (Carlini et al., section
  4: p_y is the softmax probability of the recorded label; computed as z_y - logsumexp_{j != y} z_j). Fit a
  Gaussian to the IN values and one to the OUT values of every row. With few shadows the per-row variances are
  poorly estimated, so by default one variance is pooled over all rows for IN and one for OUT ("fixed variance",
  the choice Carlini et al. make below 64 shadows); the means stay per row.
- a target model (original, retrain, an unlearned model) is scored on the forgotten rows (members of the
  original) and on every reference row (never seen by any target model): score = log N(phi; mu_in, sd_in) -
  log N(phi; mu_out, sd_out). The attack's AUC is P(score of a forgotten row > score of a reference row), ties
  half; TPR at a low FPR takes the threshold that at most that share of reference rows exceed.

All reference rows are the negatives (not an equal number of them): with a single forgotten row an equal number
would make the AUC 0, 0.5 or 1. A retrained model's forgotten rows are OUT rows for it, so its AUC sits near 0.5
(up to seed noise); the original's forgotten rows are IN. The per-example epsilon estimate is in bench.epsilon.
Writes docs/bench/lira.{md,json}.
"""

import math
import sys
import time
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from bench import data, report, tables, tasks
from bench.adapter import TrainConfig, load_model, prepare_inputs, train
from bench.metrics import logits

TASK = "memorisation"
FPRS = (0.01, 0.05)  # false-positive rates at which the attack's TPR is reported
_LOG_2PI = math.log(2 * math.pi)


@dataclass
class Shadows:
    """S shadow models of one seed, measured on every pool row."""

    seed: int
    n_train: int  # pool rows [0, n_train) are the task's train rows, the rest reference rows
    pool_x: Tensor  # (P, D)
    pool_y: Tensor  # (P,)
    member: Tensor  # (S, P) bool: pool row in shadow k's training half
    phi: Tensor  # (S, P) logit-scaled confidence of shadow k on pool row x
    states: list[dict]  # the S shadow models' state_dicts (for bench.epsilon)
    train_s: float  # seconds spent training the shadows


def logit_confidence(z: Tensor, y: Tensor) -> Tensor:
    """phi = log(p_y / (1 - p_y)) from logits z (N, C) and labels y (N,), stable for confident models: (N,)."""
    z = z.double()
    z_y = z.gather(1, y[:, None]).squeeze(1)  # (N,)
    others = z.scatter(1, y[:, None], float("-inf"))  # (N, C) with the label's logit removed
    return (z_y - torch.logsumexp(others, dim=1)).float()


def halves(pool_size: int, shadows: int, seed: int) -> Tensor:
    """(S, P) bool: S/2 seeded random halves of the pool and their complements."""
    if shadows < 2 or shadows % 2:
        raise ValueError(f"the number of shadow models must be even and at least 2, got {shadows}")
    g = torch.Generator().manual_seed(40_000 + seed)
    rows = []
    for _ in range(shadows // 2):
        half = torch.zeros(pool_size, dtype=torch.bool)
        half[torch.randperm(pool_size, generator=g)[: pool_size // 2]] = True
        rows += [half, ~half]
    return torch.stack(rows)


@cache
def shadows(seed: int, count: int, device: torch.device, log=report.log) -> Shadows:
    """Train `count` shadow models for this seed (memoised per process)."""
    t = tasks.task(TASK, seed)
    ref_x, ref_y = data.memorisation_reference(seed, n=len(t.y))
    pool_x, pool_y = torch.cat([t.x, ref_x]), torch.cat([t.y, ref_y])  # (P, D), (P,)
    member = halves(len(pool_y), count, seed)
    spec = tasks.spec_for(TASK, seed)
    base = tasks.train_config(TASK, seed)
    inputs = prepare_inputs(spec, pool_x)
    phis, states, start = [], [], time.perf_counter()
    for k in range(count):
        cfg = TrainConfig(**{**base.__dict__, "seed": 1_000_000 + 100 * seed + k})
        states.append(train(spec, pool_x[member[k]], pool_y[member[k]], cfg, device))
        phis.append(logit_confidence(logits(load_model(spec, states[-1], device), inputs, device), pool_y))
    train_s = time.perf_counter() - start
    log(f"lira seed={seed}: {count} shadow models trained in {train_s:.1f} s")
    return Shadows(seed, len(t.y), pool_x, pool_y, member, torch.stack(phis), states, train_s)


def fit(phi: Tensor, member: Tensor, fixed_variance: bool = True) -> dict[str, Tensor]:
    """Per-row Gaussians of phi for IN and OUT shadows: means (P,), standard deviations (P,) or pooled."""
    out = {}
    for name, mask in (("in", member), ("out", ~member)):
        m = mask.double()
        count = m.sum(0)  # (P,)
        if (count < 2).any():
            raise ValueError("every pool row needs at least two IN and two OUT shadow models")
        mu = (phi.double() * m).sum(0) / count  # (P,)
        sq = (((phi.double() - mu) ** 2) * m).sum(0)  # (P,)
        if fixed_variance:  # one variance pooled over rows, the per-row means removed
            sd = torch.full_like(mu, math.sqrt(float(sq.sum() / (count.sum() - len(count)))))
        else:
            sd = (sq / (count - 1)).sqrt()
        out[f"mu_{name}"], out[f"sd_{name}"] = mu, sd.clamp_min(1e-3)
    return out


def _log_normal(x: Tensor, mu: Tensor, sd: Tensor) -> Tensor:
    return -0.5 * (((x - mu) / sd) ** 2 + _LOG_2PI) - sd.log()


def likelihood_ratio(phi: Tensor, stats: dict[str, Tensor], rows: Tensor) -> Tensor:
    """log p(phi | IN) - log p(phi | OUT) for pool rows `rows`, phi the target model's values on them."""
    phi = phi.double()
    return _log_normal(phi, stats["mu_in"][rows], stats["sd_in"][rows]) - _log_normal(
        phi, stats["mu_out"][rows], stats["sd_out"][rows]
    )


def roc_auc(pos: Tensor, neg: Tensor) -> float:
    """P(a positive scores above a negative), ties half."""
    p, n = pos.double()[:, None], neg.double()[None, :]  # (P, 1), (1, N)
    return float((p > n).double().mean() + 0.5 * (p == n).double().mean())


def tpr_at_fpr(pos: Tensor, neg: Tensor, fpr: float) -> float:
    """Share of positives above the threshold that at most `fpr` of the negatives exceed."""
    ordered = neg.double().sort(descending=True).values
    k = min(int(math.floor(fpr * len(ordered))), len(ordered) - 1)
    return float((pos.double() > ordered[k]).double().mean())


class Attack:
    """LiRA for one seed: fitted once, then applied to any model of that seed's memorisation task."""

    def __init__(self, seed: int, count: int, device: torch.device, fixed_variance: bool = True):
        self.sh = shadows(seed, count, device)
        self.stats = fit(self.sh.phi, self.sh.member, fixed_variance)
        self.device = device
        self.spec = tasks.spec_for(TASK, seed)
        self.negatives = torch.arange(self.sh.n_train, len(self.sh.pool_y))  # reference rows

    def phi(self, state: dict, rows: Tensor) -> Tensor:
        model = load_model(self.spec, state, self.device)
        z = logits(model, prepare_inputs(self.spec, self.sh.pool_x[rows]), self.device)
        return logit_confidence(z, self.sh.pool_y[rows])

    def scores(self, state: dict, forget_idx: Tensor) -> tuple[Tensor, Tensor]:
        """(scores of the forgotten rows, scores of the reference rows) for one target model."""
        pos = likelihood_ratio(self.phi(state, forget_idx), self.stats, forget_idx)
        neg = likelihood_ratio(self.phi(state, self.negatives), self.stats, self.negatives)
        return pos, neg

    def measure(self, state: dict, forget_idx: Tensor) -> dict:
        pos, neg = self.scores(state, forget_idx)
        out = {"lira_auc": roc_auc(pos, neg)}
        for fpr in FPRS:
            out[f"lira_tpr_at_{fpr:g}"] = tpr_at_fpr(pos, neg, fpr)
        return out


def markdown(results: dict, meta: dict) -> str:
    m = meta["machine"]
    parts = [
        "# Per-example membership attack (LiRA) on the memorisation task",
        "",
        f"Generated by `{meta['command']}` in {meta['seconds']:.0f} s on {m['cpu']} ({m['nproc']} cores visible, "
        f"{m['torch_threads']} torch threads, device `{meta['device']}`), torch {m['torch']}. Seeds: "
        f"{meta['seeds']}; {meta['shadows']} shadow models per seed "
        f"({'pooled' if meta['fixed_variance'] else 'per-row'} variance), trained in "
        f"{meta['shadow_seconds']:.0f} s in all. Each cell is mean ± std over seeds.",
        "",
        "LiRA AUC: forgotten rows against the reference rows (never seen by any target model), score = "
        "per-row likelihood ratio of the model's logit-scaled confidence under the IN and OUT shadow "
        "Gaussians. 0.5 = the attack cannot tell the forgotten rows from unseen ones. TPR at x FPR: share of "
        "forgotten rows flagged at the threshold that flags at most x of the reference rows. The loss-threshold "
        "AUC of the quality tables is repeated for comparison. See docs/benchmark.md.",
        "",
    ]
    for label, entry in results.items():
        parts += [f"## {label}", "", tables.lira_table(entry), ""]
        if "epsilon" in entry:
            parts += ["Per-example epsilon (bench.epsilon; unlearned shadow models):", ""]
            parts += [tables.epsilon_table(entry["epsilon"]), ""]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> dict:
    """The memorisation scenarios of the quality tables, every model also attacked with LiRA."""
    from bench import quality

    ap = report.parser(__doc__)
    add_options(ap)
    args = ap.parse_args(argv)
    device = report.setup(args)
    seeds = list(range(1 if args.quick else args.seeds))
    count = 4 if args.quick else args.shadows
    start = time.perf_counter()
    scenarios = [sc for sc in tasks.SCENARIOS if sc.task == TASK]
    fixed = not args.per_row_variance
    results = quality.run(
        device, seeds, scenarios=scenarios, shadows=count, fixed_variance=fixed, epsilon_methods=args.epsilon
    )
    meta = {
        "command": "python -m bench.lira " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(device),
        "seeds": seeds,
        "shadows": count,
        "fixed_variance": fixed,
        "epsilon": args.epsilon,
        "shadow_seconds": next(
            (sum(e["shadow_seconds"].values()) for e in results.values() if "shadow_seconds" in e), 0
        ),
        "seconds": time.perf_counter() - start,
        "machine": report.machine(),
    }
    text = markdown(results, meta)
    print(text)
    if not args.no_write:
        report.write("lira", text, {"meta": meta, "results": results}, args.out)
    return results


def add_options(ap) -> None:
    ap.add_argument("--shadows", type=int, default=8, help="shadow models per seed (even; default 8, 0 = no LiRA)")
    ap.add_argument(
        "--per-row-variance", action="store_true", help="fit a variance per row instead of one pooled variance"
    )
    ap.add_argument(
        "--epsilon",
        choices=("off", "default", "all"),
        default="default",
        help="per-example epsilon (bench.epsilon) for the engine default (default), every engine method, or none",
    )


if __name__ == "__main__":
    main()
