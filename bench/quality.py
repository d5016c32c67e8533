"""Unlearning quality: every method against the exact retrain, on digits and on a memorisation task.

    .venv/bin/python -m bench.quality [--device cpu|cuda] [--seeds 3] [--quick]

For each scenario and seed: train the original on every train row, retrain on the retained rows (the gold
standard), and apply each approximate method to the original. Every figure is measured on rows no method saw
(the test holdout) or on the forgotten rows; the engine gets a separate calibration holdout for its evidence
and its stopping rule. Writes docs/bench/quality.md and docs/bench/quality.json.
"""

import sys
import time
from dataclasses import asdict

import torch

from bench import data, report, tasks
from bench.adapter import UnlearnConfig, build_cache, load_model, prepare_inputs, timed, unlearn
from bench.influence import InfluenceConfig, influence_unlearn
from bench.metrics import accuracy, attack_success_rate, kl_to_reference, logits, losses, membership_auc
from bench.report import fmt, fmt_time, machine, table, write

# Approximate methods: (row label, kind, config). kind "iau" = exact correction, "iau-cached" = the cached
# correction from a gradient cache built at the original (the per-version background job, not timed here).
METHODS = [
    ("IAU reference (1 Adam step, lr 1e-3)", "iau", UnlearnConfig(update="reference", lr=1e-3)),
    ("IAU default (engine UnlearnConfig(), multi-step)", "iau", UnlearnConfig()),
    ("IAU default, cached correction", "iau-cached", UnlearnConfig(correction="cached")),
    ("IAU one step (default eta and weight, max_steps=1)", "iau", UnlearnConfig(max_steps=1)),
    ("influence function (CG, adaptive damping from 0.01)", "influence", InfluenceConfig()),
]
ORIGINAL, RETRAIN = "original", "retrain (gold)"


def measure(sc: tasks.Scenario, seed: int, state: dict, z_ref_forget: torch.Tensor | None, device) -> dict:
    """Figures for one model of one scenario."""
    t, f = tasks.task(sc.task, seed), tasks.forget_index(sc, seed)
    spec = tasks.spec_for(sc.task, seed)
    model = load_model(spec, state, device)
    z_test = logits(model, prepare_inputs(spec, t.x_test), device)  # (Nt, C)
    z_f = logits(model, prepare_inputs(spec, t.x[f]), device)  # (F, C)
    out = {
        "holdout_acc": accuracy(z_test, t.y_test),
        "forget_acc": accuracy(z_f, t.y[f]),
        "membership_auc": membership_auc(losses(z_f, t.y[f]), losses(z_test, t.y_test)),
        "kl_to_retrain": kl_to_reference(z_ref_forget, z_f) if z_ref_forget is not None else 0.0,
    }
    if sc.forget == "poison":
        z_trig = logits(model, prepare_inputs(spec, data.add_trigger(t.x_test)), device)
        out["attack_success"] = attack_success_rate(z_trig, t.y_test, data.POISON_TARGET)
    return out


def run_seed(sc: tasks.Scenario, seed: int, device: torch.device, methods=METHODS) -> dict[str, dict]:
    """{row label: figures} for one scenario and seed."""
    t, f = tasks.task(sc.task, seed), tasks.forget_index(sc, seed)
    spec = tasks.spec_for(sc.task, seed)
    orig, train_s = tasks.original(sc.task, seed, device)
    gold, retrain_s = tasks.retrained(sc, seed, device)
    z_ref = logits(load_model(spec, gold, device), prepare_inputs(spec, t.x[f]), device)
    rows = {
        ORIGINAL: measure(sc, seed, orig, z_ref, device) | {"seconds": train_s, "kind": "train"},
        RETRAIN: measure(sc, seed, gold, z_ref, device) | {"seconds": retrain_s, "kind": "retrain"},
    }
    retain = torch.ones(len(t.y), dtype=torch.bool)
    retain[f] = False
    cache = None
    for label, kind, cfg in methods:
        if kind.startswith("iau"):
            if kind == "iau-cached" and cache is None:
                cache = build_cache(spec, orig, t.x, t.y, torch.ones(len(t.y), dtype=torch.bool), 1, device)
            args = (spec, orig, t.x, t.y, retain, f, cfg, device)
            res, secs = timed(device, unlearn, *args, holdout=(t.x_cal, t.y_cal), cache=cache, current_version=1)
            state, extra = res.state_dict, {"steps": res.steps, "phases_s": res.evidence["timings_s"]}
        else:
            model = load_model(spec, orig, device)
            res, secs = timed(device, influence_unlearn, model, prepare_inputs(spec, t.x), t.y, f, cfg, device)
            state = res.state_dict
            extra = {
                "steps": res.cg_iters,
                "cg_residual": res.rel_residual,
                "damping": res.damping,
                "restarts": res.restarts,
            }
        rows[label] = measure(sc, seed, state, z_ref, device) | {"seconds": secs, "kind": kind} | extra
    for r in rows.values():
        r["time_vs_retrain"] = r["seconds"] / retrain_s
    return rows


def run(device: torch.device, seeds: list[int], methods=METHODS, log=report.log) -> dict:
    results = {}
    for sc in tasks.SCENARIOS:
        per_seed = []
        for seed in seeds:
            start = time.perf_counter()
            per_seed.append(run_seed(sc, seed, device, methods))
            log(f"quality {sc.label} seed={seed}: {time.perf_counter() - start:.1f} s")
        results[sc.label] = {"scenario": asdict(sc), "seeds": seeds, "runs": per_seed}
    return results


COLUMNS = [
    ("holdout acc", "holdout_acc", 3),
    ("forget acc", "forget_acc", 3),
    ("membership AUC", "membership_auc", 3),
    ("KL to retrain (forget rows)", "kl_to_retrain", 4),
]


def scenario_table(entry: dict) -> str:
    runs = entry["runs"]
    poison = entry["scenario"]["forget"] == "poison"
    header = ["method"] + [c[0] for c in COLUMNS] + (["attack success"] if poison else [])
    header += ["wall time", "time / retrain", "steps"]
    body = []
    for label in runs[0]:

        def col(key: str, label: str = label) -> list:
            return [r[label].get(key) for r in runs]

        row = [label] + [fmt(col(key), d) for _, key, d in COLUMNS]
        if poison:
            row.append(fmt(col("attack_success"), 3))
        secs = col("seconds")
        row.append(fmt_time(sum(secs) / len(secs)))
        row.append("—" if label == ORIGINAL else fmt(col("time_vs_retrain"), 4))
        steps = [s for s in col("steps") if s is not None]
        row.append(f"{sum(steps) / len(steps):.1f}" if steps else "—")
        body.append(row)
    return table(header, body)


def markdown(results: dict, meta: dict, methods=METHODS) -> str:
    m = meta["machine"]
    parts = [
        "# Unlearning quality",
        "",
        f"Generated by `{meta['command']}` in {meta['seconds']:.0f} s on {m['cpu']} "
        f"({m['nproc']} cores visible, {m['torch_threads']} torch threads, device `{meta['device']}`), "
        f"torch {m['torch']}. Seeds: {meta['seeds']}; each cell is mean ± std over seeds.",
        "",
        "Figures are measured on the test holdout (never seen by any method) and on the forgotten rows. "
        "Membership AUC: loss-threshold attack, forgotten rows vs test holdout (0.5 = indistinguishable). "
        "KL: mean KL(retrained || method) of predictive distributions on the forgotten rows. "
        "Wall time: the whole call (for IAU including the engine's before/after evidence); original = training "
        "time. Steps: IAU update steps, or conjugate-gradient iterations for the influence function.",
        "See docs/benchmark.md for the method and the reading of these tables.",
        "",
    ]
    for label, entry in results.items():
        parts += [f"## {label}", "", scenario_table(entry), ""]
    parts += ["## Method configurations", ""]
    parts += [f"- {label}: `{cfg}`" for label, _, cfg in methods]
    parts += ["", "Training recipes (Adam, gradient restriction):", ""]
    parts += [f"- {name}: `{r}`" for name, r in tasks.RECIPES.items()]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None, extra_methods: list | None = None) -> dict:
    """`extra_methods`: more (label, kind, config) rows, e.g. the configuration the sweep recommends."""
    args = report.parser(__doc__).parse_args(argv)
    device = report.setup(args)
    seeds = list(range(1 if args.quick else args.seeds))
    start = time.perf_counter()
    methods = METHODS + (extra_methods or [])
    results = run(device, seeds, methods)
    meta = {
        "command": "python -m bench.quality " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(device),
        "seeds": seeds,
        "seconds": time.perf_counter() - start,
        "machine": machine(),
    }
    text = markdown(results, meta, methods)
    print(text)
    if not args.no_write:
        write("quality", text, {"meta": meta, "results": results})
    return results


if __name__ == "__main__":
    main()
