"""Quick measurements behind the UnlearnConfig defaults: `python -m workers.engine.calibrate`.

For each task, fraction forgotten and seed it trains the original model, retrains without the forgotten rows
(the gold standard), and applies the IAU reference update (one fresh Adam step, Liu et al.) and the default
plain-gradient update, then prints markdown tables of means (and spreads) over seeds. The full comparison,
with baselines and scaling, is the benchmark in bench/.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from workers.engine.data import load_digits_split, synthetic_memorise
from workers.engine.evidence import snapshot
from workers.engine.iau import UnlearnConfig, unlearn
from workers.engine.train import TrainConfig, train
from workers.engine.zoo import ArchSpec, load_model

CPU = torch.device("cpu")
COLUMNS = ("forget acc", "forget loss", "holdout acc", "membership AUC", "steps", "seconds")


def _tasks(names: list[str]):
    if "digits" in names:
        x, y, xh, yh = load_digits_split(holdout_fraction=0.3, seed=0)
        spec = ArchSpec("mlp", {"in_features": 64, "hidden": [128], "num_classes": 10})
        yield "digits (mlp 64-128-10, 1,258 train / 539 holdout rows)", spec, TrainConfig(lr=1e-2), x, y, xh, yh
    if "memorise" in names:
        x, y = synthetic_memorise(2600, d=32, seed=0)
        spec = ArchSpec("mlp", {"in_features": 32, "hidden": [256], "num_classes": 10})
        recipe = TrainConfig(lr=1e-2, epochs=40)
        title = "memorise (synthetic, mlp 32-256-10, 2,000 train / 600 holdout rows)"
        yield title, spec, recipe, x[:2000], y[:2000], x[2000:], y[2000:]


def _figures(spec, state, forget, holdout, steps=0, seconds=0.0) -> tuple:
    r = snapshot(load_model(spec, state, CPU), spec, forget, (forget[0][:0], forget[1][:0]), holdout)
    return (r["forget"]["accuracy"], r["forget"]["loss"], r["holdout"]["accuracy"], r["membership_auc"], steps, seconds)


def run(tasks: list[str], fractions: list[float], seeds: list[int], default: UnlearnConfig | None = None) -> str:
    default = default or UnlearnConfig()
    methods = {
        "IAU reference (Adam lr 1e-3, 1 step)": UnlearnConfig(update="reference"),
        "IAU default": default,
    }
    out = [
        f"IAU update under test: update={default.update} eta={default.eta} retain_weight={default.retain_weight} "
        f"max_steps={default.max_steps} target_auc={default.target_auc} auc_tolerance={default.auc_tolerance} "
        f"max_accuracy_drop={default.max_accuracy_drop} correction={default.correction}",
    ]
    for title, spec, recipe, x, y, xh, yh in _tasks(tasks):
        n = y.shape[0]
        t0 = time.perf_counter()
        original = train(spec, x, y, recipe, CPU)
        train_s = time.perf_counter() - t0
        out += ["", f"### {title}; training {recipe.epochs} epochs took {train_s:.1f} s", ""]
        out += ["| forgotten | method | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
        for fraction in fractions:
            rows: dict[str, list[tuple]] = {}
            for seed in seeds:
                forget_idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[
                    : max(1, int(fraction * n))
                ]
                retain = torch.ones(n, dtype=torch.bool)
                retain[forget_idx] = False
                forget, holdout = (x[forget_idx], y[forget_idx]), (xh, yh)
                rows.setdefault("original", []).append(_figures(spec, original, forget, holdout))
                t = time.perf_counter()
                gold = train(spec, x[retain], y[retain], recipe, CPU)
                rows.setdefault("retrain (gold)", []).append(
                    _figures(spec, gold, forget, holdout, recipe.epochs, time.perf_counter() - t)
                )
                for name, cfg in methods.items():
                    t = time.perf_counter()
                    res = unlearn(spec, original, x, y, retain, forget_idx, cfg, CPU, holdout=holdout)
                    seconds = time.perf_counter() - t
                    rows.setdefault(name, []).append(
                        _figures(spec, res.state_dict, forget, holdout, res.steps, seconds)
                    )
            for name, values in rows.items():
                cells = []
                for col in zip(*values, strict=True):
                    mean = statistics.fmean(col)
                    spread = statistics.pstdev(col) if len(col) > 1 else 0.0
                    cells.append(f"{mean:.3f} ± {spread:.3f}")
                out.append(f"| {fraction:.0%} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["digits", "memorise"], choices=["digits", "memorise"])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.05, 0.10])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--eta", type=float, help="override UnlearnConfig.eta")
    parser.add_argument("--retain-weight", type=float, help="override UnlearnConfig.retain_weight")
    parser.add_argument("--max-steps", type=int, help="override UnlearnConfig.max_steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {"eta": args.eta, "retain_weight": args.retain_weight, "max_steps": args.max_steps}
    default = UnlearnConfig(**{k: v for k, v in overrides.items() if v is not None})
    print(run(args.tasks, args.fractions, args.seeds, default))


if __name__ == "__main__":
    main()
