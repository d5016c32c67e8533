"""Unlearning quality: every method against the exact retrain, on digits and on a memorisation task.

    .venv/bin/python -m bench.quality [--device cpu|cuda] [--seeds 3] [--shadows 8] [--quick]

For each scenario and seed: train the original on every train row, retrain on the retained rows (the gold
standard), retrain a second time with another training seed (the noise floor: how far two exact retrains
differ), and apply each approximate method to the original. Every figure is measured on rows no method saw
(the test holdout) or on the forgotten rows; the engine gets a separate calibration holdout for its evidence,
its stopping rule and its verdict. On the memorisation task every model is also attacked with the per-example
likelihood-ratio attack of bench.lira (--shadows 0 turns it off). The acceptance section (bench.acceptance)
checks the targets per seed. Writes docs/bench/quality.md and docs/bench/quality.json.
"""

import sys
import time
from dataclasses import asdict

import torch

from bench import acceptance, data, epsilon, lira, methods, report, tables, tasks
from bench.adapter import load_model, prepare_inputs, sha256_state_dict
from bench.metrics import (
    accuracy,
    attack_success_rate,
    churn,
    class_shift,
    kl_to_reference,
    logits,
    losses,
    membership_auc,
)
from bench.report import machine, write

ORIGINAL, RETRAIN, RETRAIN_2 = methods.ORIGINAL, methods.RETRAIN, methods.RETRAIN_2


def measure(sc: tasks.Scenario, seed: int, state: dict, z_ref: tuple, device, attack) -> dict:
    """Figures for one model of one scenario (LiRA figures too when `attack` is given). z_ref: the retrained
    model's logits on the forgotten rows and on the test holdout, and the original's on the test holdout."""
    t, f = tasks.task(sc.task, seed), tasks.forget_index(sc, seed)
    spec = tasks.spec_for(sc.task, seed)
    model = load_model(spec, state, device)
    z_test = logits(model, prepare_inputs(spec, t.x_test), device)  # (Nt, C)
    z_f = logits(model, prepare_inputs(spec, t.x[f]), device)  # (F, C)
    out = {
        "holdout_acc": accuracy(z_test, t.y_test),
        "forget_acc": accuracy(z_f, t.y[f]),
        "membership_auc": membership_auc(losses(z_f, t.y[f]), losses(z_test, t.y_test)),
        "kl_to_retrain": kl_to_reference(z_ref[0], z_f),
        "kl_test_to_retrain": kl_to_reference(z_ref[1], z_test),
        "test_churn": churn(z_ref[2], z_test),
        "class_shift": class_shift(z_ref[2], z_test),
        "sha256": sha256_state_dict(state),
    }
    if sc.forget == "poison":
        z_trig = logits(model, prepare_inputs(spec, data.add_trigger(t.x_test)), device)
        out["attack_success"] = attack_success_rate(z_trig, t.y_test, data.POISON_TARGET)
    if attack is not None:
        out |= attack.measure(state, f)
    return out


def run_seed(sc: tasks.Scenario, seed: int, device: torch.device, method_list, attack=None) -> dict[str, dict]:
    """{row label: figures} for one scenario and seed."""
    t, f = tasks.task(sc.task, seed), tasks.forget_index(sc, seed)
    spec = tasks.spec_for(sc.task, seed)
    orig, train_s = tasks.original(sc.task, seed, device)
    gold, retrain_s = tasks.retrained(sc, seed, device)
    second, second_s = tasks.retrained_second(sc, seed, device)
    gold_model = load_model(spec, gold, device)
    z_ref = tuple(logits(gold_model, prepare_inputs(spec, x), device) for x in (t.x[f], t.x_test))
    z_ref += (logits(load_model(spec, orig, device), prepare_inputs(spec, t.x_test), device),)
    rows = {
        ORIGINAL: measure(sc, seed, orig, z_ref, device, attack) | {"seconds": train_s, "kind": "train"},
        RETRAIN: measure(sc, seed, gold, z_ref, device, attack) | {"seconds": retrain_s, "kind": "retrain"},
        RETRAIN_2: measure(sc, seed, second, z_ref, device, attack) | {"seconds": second_s, "kind": "retrain"},
    }
    runner = methods.Runner(sc, seed, orig, device)
    for label, kind, cfg in methods.for_scenario(sc, method_list):
        state, secs, extra = runner.apply(kind, cfg)
        rows[label] = measure(sc, seed, state, z_ref, device, attack) | {"seconds": secs, "kind": kind} | extra
    for r in rows.values():
        r["time_vs_retrain"] = r["seconds"] / retrain_s
    return rows


def run(
    device: torch.device,
    seeds: list[int],
    method_list=methods.METHODS,
    scenarios=tasks.SCENARIOS,
    shadows: int = 8,
    fixed_variance: bool = True,
    epsilon_methods: str = "default",
    log=report.log,
) -> dict:
    """Every scenario and seed; on the memorisation task with `shadows` > 0 also LiRA and, unless
    `epsilon_methods` is "off", the per-example epsilon of the default ("default") or every engine method."""
    results = {}
    for sc in scenarios:
        per_seed, eps = [], []
        attacked = shadows and sc.task == lira.TASK
        for seed in seeds:
            attack = lira.Attack(seed, shadows, device, fixed_variance) if attacked else None
            start = time.perf_counter()
            per_seed.append(run_seed(sc, seed, device, method_list, attack))
            log(f"quality {sc.label} seed={seed}: {time.perf_counter() - start:.1f} s")
            if attacked and epsilon_methods != "off":
                chosen = [m for m in method_list if epsilon_methods == "all" or m[0] == methods.DEFAULT]
                start = time.perf_counter()
                eps.append(epsilon.measure(attack.sh, sc, seed, chosen, device))
                log(f"epsilon {sc.label} seed={seed}: {time.perf_counter() - start:.1f} s")
        results[sc.label] = {"scenario": asdict(sc), "seeds": seeds, "runs": per_seed}
        if attacked:  # the shadows are trained once per seed and shared by the memorisation scenarios
            results[sc.label]["shadow_seconds"] = {s: lira.shadows(s, shadows, device).train_s for s in seeds}
        if eps:
            results[sc.label]["epsilon"] = eps
    return results


def markdown(results: dict, meta: dict, method_list=methods.METHODS) -> str:
    m = meta["machine"]
    parts = [
        "# Unlearning quality",
        "",
        f"Generated by `{meta['command']}` in {meta['seconds']:.0f} s on {m['cpu']} "
        f"({m['nproc']} cores visible, {m['torch_threads']} torch threads, device `{meta['device']}`), "
        f"torch {m['torch']}. Seeds: {meta['seeds']}; each cell is mean ± std over seeds. LiRA: "
        f"{meta.get('shadows')} shadow models per seed, trained in {meta.get('shadow_seconds', 0):.0f} s in all.",
        "",
        "Figures are measured on the test holdout (never seen by any method) and on the forgotten rows. "
        "Membership AUC: loss-threshold attack, forgotten rows vs test holdout (0.5 = indistinguishable). "
        "KL: mean KL(retrained || method) of predictive distributions on the forgotten rows, and on the test "
        "holdout. Churn: share of test-holdout rows whose predicted class differs from the original's. Class shift: "
        "the largest change, over classes, of the mean probability the model gives a class on the test "
        "holdout, against the original (a model that moves one class everywhere scores high). "
        "Wall time: the whole call (for engine updates including the before/after evidence and the "
        "verdict); original = training time. Steps: engine update steps (the targeted family: 1 for stage 1 plus "
        "the repair's optimiser steps), or conjugate-gradient iterations for the influence function. "
        "met: seeds on which the engine's verdict said the target was met. The second retrain (another training "
        "seed, same rows) gives the noise floor: what two exact retrains differ by.",
        "See docs/benchmark.md for the method and the reading of these tables.",
        "",
        "## Acceptance",
        "",
        acceptance.markdown(results),
        "",
        "## Noise floor: retrain against retrain (two training seeds)",
        "",
        tables.noise_table(results, RETRAIN, RETRAIN_2),
        "",
        "The stated tolerances applied to the second exact retrain (as if it were a method), per seed: where it "
        "fails, the stated bar is tighter than retraining itself can hold on that seed.",
        "",
        acceptance.noise_markdown(results),
        "",
    ]
    for label, entry in results.items():
        parts += [f"## {label}", "", tables.scenario_table(entry, ORIGINAL), ""]
        if any("lira_auc" in r for r in entry["runs"][0].values()):
            parts += [f"Per-example attack (LiRA, {meta.get('shadows')} shadow models per seed):", ""]
            parts += [tables.lira_table(entry), ""]
        if "epsilon" in entry:
            parts += ["Per-example epsilon (bench.epsilon, from unlearned shadow models):", ""]
            parts += [tables.epsilon_table(entry["epsilon"]), ""]
    parts += ["## Method configurations", ""]
    parts += [f"- {label}: `{cfg}`" for label, _, cfg in method_list]
    parts += ["", "Training recipes (Adam, gradient restriction):", ""]
    parts += [f"- {name}: `{r}`" for name, r in tasks.RECIPES.items()]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None, extra_methods: list | None = None) -> dict:
    """`extra_methods`: more (label, kind, config) rows, e.g. the configuration the sweep recommends."""
    ap = report.parser(__doc__)
    lira.add_options(ap)
    args = ap.parse_args(argv)
    device = report.setup(args)
    seeds = list(range(1 if args.quick else args.seeds))
    shadows = min(args.shadows, 4) if args.quick else args.shadows
    start = time.perf_counter()
    method_list = methods.METHODS + (extra_methods or [])
    fixed = not args.per_row_variance
    results = run(device, seeds, method_list, shadows=shadows, fixed_variance=fixed, epsilon_methods=args.epsilon)
    meta = {
        "command": "python -m bench.quality " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(device),
        "seeds": seeds,
        "shadows": shadows,
        "shadow_seconds": next(
            (sum(e["shadow_seconds"].values()) for e in results.values() if "shadow_seconds" in e), 0
        ),
        "seconds": time.perf_counter() - start,
        "machine": machine(),
    }
    text = markdown(results, meta, method_list)
    print(text)
    report.log("\n".join(acceptance.lines(results)))
    if not args.no_write:
        raw = {"meta": meta, "results": results, "acceptance": acceptance.check(results)}
        write("quality", text, raw, args.out)
        attacked = {k: v for k, v in results.items() if "shadow_seconds" in v}
        if attacked:  # the memorisation scenarios alone, as bench.lira writes them
            lira_meta = meta | {"fixed_variance": fixed, "epsilon": args.epsilon}
            write("lira", lira.markdown(attacked, lira_meta), {"meta": lira_meta, "results": attacked}, args.out)
    return results


if __name__ == "__main__":
    main()
