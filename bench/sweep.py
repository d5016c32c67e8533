"""Which IAU defaults the numbers support: a grid over the update, step size, correction weight and step budget.

    .venv/bin/python -m bench.sweep [--device cpu|cuda] [--seeds 3] [--quick]

Every configuration is applied to the originals of the quality scenarios (bench.tasks) and compared with their
exact retrains, on the same seeds as the quality tables (so one run trains each model once; the pick is
therefore scored on the data it was chosen on, which the docs say where they use it). Per
scenario the table gives the change in test-holdout accuracy against the original (points) and the KL ratio:
KL(retrained || method) / KL(retrained || original) on the forgotten rows, so 1 means the update did nothing
measurable and 0 means the forgotten rows are predicted exactly as the retrained model predicts them. A
configuration is admissible when its mean holdout accuracy stays within 2 points of the original in every
scenario; the recommendation is the admissible one with the lowest mean KL to the retrained model over the
scenarios (absolute KL, so a scenario where the original is already close to the retrained model, and the
ratio's denominator is tiny, does not decide the choice). The engine's stopping rule (membership AUC on the
calibration holdout) and utility guard stay at their shipped values. Writes docs/bench/sweep.{md,json}.
"""

import itertools
import statistics
import sys
import time

import torch

from bench import quality, report, tasks
from bench.adapter import UnlearnConfig
from bench.report import machine, table, write

ETAS = (0.5, 2.0, 5.0)  # one-step configurations
MULTI_STEP_ETAS = (2.0, 5.0)  # multi-step (budget 100, the engine's stopping rule); eta 0.5 never stops early
RETAIN_WEIGHTS = (0.4, 1.0)
REFERENCE_LRS = (1e-3, 2e-3, 3e-3, 5e-3, 1e-2)
SEED_OFFSET = 0  # the quality tables' seeds: the sweep reuses their trained originals and retrains
MAX_HOLDOUT_DROP = 0.02  # admissible: holdout accuracy within 2 points of the original in every scenario


def grid() -> list[tuple[str, str, UnlearnConfig]]:
    out = [(f"reference lr={lr:g}", "iau", UnlearnConfig(update="reference", lr=lr)) for lr in REFERENCE_LRS]
    combos = [(e, rw, 1) for e, rw in itertools.product(ETAS, RETAIN_WEIGHTS)]
    combos += [(e, rw, 100) for e, rw in itertools.product(MULTI_STEP_ETAS, RETAIN_WEIGHTS)]
    for eta, rw, steps in combos:
        # auc_tolerance 0.01: the gradient update's stopping tolerance when this grid was chosen
        cfg = UnlearnConfig(update="gradient", eta=eta, retain_weight=rw, max_steps=steps, auc_tolerance=0.01)
        out.append((f"gradient eta={eta:g} rw={rw:g} steps<={steps}", "iau", cfg))
    return out


def summarise(runs: dict, label: str) -> dict:
    """Per scenario, means over seeds of the figures that decide the defaults."""
    out = {}
    for sc_label, per_seed in runs.items():
        drops, kls, ratios, aucs, steps, secs, asr = [], [], [], [], [], [], []
        for r in per_seed:
            orig, m = r[quality.ORIGINAL], r[label]
            drops.append(m["holdout_acc"] - orig["holdout_acc"])
            kls.append(m["kl_to_retrain"])
            ratios.append(m["kl_to_retrain"] / max(orig["kl_to_retrain"], 1e-12))
            aucs.append(m["membership_auc"])
            steps.append(m["steps"])
            secs.append(m["seconds"])
            if "attack_success" in m:
                asr.append(m["attack_success"])
        out[sc_label] = {
            "holdout_change": statistics.fmean(drops),
            "kl": statistics.fmean(kls),
            "kl_ratio": statistics.fmean(ratios),
            "membership_auc": statistics.fmean(aucs),
            "steps": statistics.fmean(steps),
            "seconds": statistics.fmean(secs),
            "attack_success": statistics.fmean(asr) if asr else None,
        }
    return out


def choose(summary: dict) -> tuple[str | None, dict]:
    scores = {}
    for label, per_sc in summary.items():
        admissible = all(v["holdout_change"] >= -MAX_HOLDOUT_DROP for v in per_sc.values())
        scores[label] = {
            "admissible": admissible,
            "mean_kl": statistics.fmean(v["kl"] for v in per_sc.values()),
            "mean_kl_ratio": statistics.fmean(v["kl_ratio"] for v in per_sc.values()),
            "worst_holdout_change": min(v["holdout_change"] for v in per_sc.values()),
        }
    ok = [k for k, v in scores.items() if v["admissible"]]
    best = min(ok, key=lambda k: scores[k]["mean_kl"]) if ok else None
    return best, scores


def markdown(summary: dict, scores: dict, best: str | None, meta: dict) -> str:
    m = meta["machine"]
    sc_labels = list(next(iter(summary.values())))
    short = [
        s.replace(": forget ", " ")
        .replace(" random rows", "")
        .replace(" random row", "")
        .replace(" rows (trigger)", "")
        for s in sc_labels
    ]
    header = ["configuration"] + [f"{s}: Δacc / KL ratio" for s in short]
    header += ["mean KL", "mean KL ratio", "worst Δacc", "admissible"]
    rows = []
    for label, per_sc in summary.items():
        cells = [f"{100 * v['holdout_change']:+.1f} / {v['kl_ratio']:.2f}" for v in per_sc.values()]
        s = scores[label]
        name = f"**{label}**" if label == best else label
        rows.append(
            [name]
            + cells
            + [
                f"{s['mean_kl']:.3f}",
                f"{s['mean_kl_ratio']:.2f}",
                f"{100 * s['worst_holdout_change']:+.1f}",
                "yes" if s["admissible"] else "no",
            ]
        )
    steps_header = ["configuration"] + [f"{s}: steps / AUC" for s in short]
    steps_rows = [
        [label] + [f"{v['steps']:.1f} / {v['membership_auc']:.3f}" for v in per_sc.values()]
        for label, per_sc in summary.items()
    ]
    return "\n".join(
        [
            "# IAU defaults sweep",
            "",
            f"Generated by `{meta['command']}` in {meta['seconds']:.0f} s on {m['cpu']} ({m['nproc']} cores "
            f"visible, {m['torch_threads']} torch threads, device `{meta['device']}`). Seeds: {meta['seeds']}; "
            "means over seeds. Δacc: test-holdout accuracy change against the original, in points. KL ratio: "
            "KL(retrained || method) / KL(retrained || original) on the forgotten rows (1 = no change, 0 = as "
            "retrained). Mean KL: mean over scenarios of KL(retrained || method) on the forgotten rows. Admissible: "
            "Δacc >= -2 points in every scenario. Best admissible (lowest mean KL) in bold.",
            "",
            table(header, rows),
            "",
            f"Recommended: **{best}**" if best else "No configuration is admissible in every scenario.",
            "",
            "## Steps taken and membership AUC (test holdout)",
            "",
            table(steps_header, steps_rows),
            "",
        ]
    )


def run(device: torch.device, seeds: list[int], log=report.log) -> dict:
    configs = grid()
    runs: dict[str, list[dict]] = {}
    for sc in tasks.SCENARIOS:
        runs[sc.label] = []
        for seed in seeds:
            start = time.perf_counter()
            runs[sc.label].append(quality.run_seed(sc, seed, device, configs))
            log(f"sweep {sc.label} seed={seed}: {time.perf_counter() - start:.1f} s")
    summary = {label: summarise(runs, label) for label, _, _ in configs}
    best, scores = choose(summary)
    return {"summary": summary, "scores": scores, "best": best, "configs": {k: str(c) for k, _, c in configs}}


def config(label: str) -> UnlearnConfig:
    """The UnlearnConfig of a grid label."""
    return next(c for k, _, c in grid() if k == label)


def main(argv: list[str] | None = None) -> dict:
    args = report.parser(__doc__).parse_args(argv)
    device = report.setup(args)
    seeds = [SEED_OFFSET + i for i in range(1 if args.quick else args.seeds)]
    start = time.perf_counter()
    out = run(device, seeds)
    meta = {
        "command": "python -m bench.sweep " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(device),
        "seeds": seeds,
        "seconds": time.perf_counter() - start,
        "machine": machine(),
    }
    text = markdown(out["summary"], out["scores"], out["best"], meta)
    print(text)
    if not args.no_write:
        write("sweep", text, {"meta": meta} | out, args.out)
    return out


if __name__ == "__main__":
    main()
