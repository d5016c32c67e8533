"""Unlearning quality on a plugin architecture: the text-transformer example over token ids, against retraining.

    .venv/bin/python -m bench.text [--device cpu|cuda] [--seeds 3] [--quick]

The architecture is the `text-transformer` plugin (examples/plugins/text-transformer, installed by `make
install`): token embedding, one transformer encoder layer, a masked mean pool and a linear head, on the plugin's
seeded synthetic four-topic corpus with 10% of labels replaced (rows only memorisation fits, so membership is
measurable). For each seed: train the original on every train row, retrain on the retained rows (the gold
standard), and apply the engine's updates to the original. Figures are measured on a test holdout no method saw
and on the forgotten rows; the engine gets a separate calibration holdout for its stop rule and verdict.
Writes docs/bench/text.md and docs/bench/text.json.
"""

import sys
import time

import torch

from bench import report
from bench.adapter import ArchSpec, TrainConfig, UnlearnConfig, build_cache, load_model, prepare_inputs, timed, train
from bench.adapter import unlearn as engine_unlearn
from bench.metrics import accuracy, kl_to_reference, logits, losses, membership_auc
from bench.report import fmt, fmt_time, table

ARCH = "text-transformer"
MAX_LENGTH = 24  # tokens per row
TRAIN_ROWS, CAL_ROWS, TEST_ROWS = 1000, 400, 400
RECIPE = TrainConfig(epochs=12, batch_size=64, lr=3e-3, alpha=0.005, seed=0)
FRACTIONS = (0.01, 0.05)  # shares of the train rows forgotten, drawn at random
METHODS = [
    ("IAU default (targeted pipeline)", "iau", UnlearnConfig()),
    ("IAU default, cached correction", "iau-cached", UnlearnConfig(correction="cached")),
    ("IAU reference (1 Adam step, lr 1e-3)", "iau", UnlearnConfig(update="reference", lr=1e-3)),
]
ORIGINAL, RETRAIN = "original", "retrain (gold)"


def task(seed: int):
    """(spec, x, y, x_cal, y_cal, x_test, y_test) for one seed: token ids (N, L) int64 and labels."""
    from unlearn_text.corpus import dataset

    x, y, xh, yh, vocab = dataset(TRAIN_ROWS, CAL_ROWS + TEST_ROWS, max_length=MAX_LENGTH, seed=seed)
    spec = ArchSpec(ARCH, {"vocab_size": len(vocab), "max_length": MAX_LENGTH, "num_classes": 4})
    return spec, x, y, xh[:CAL_ROWS], yh[:CAL_ROWS], xh[CAL_ROWS:], yh[CAL_ROWS:]


def measure(spec, state, x_f, y_f, x_test, y_test, z_ref, device) -> dict:
    model = load_model(spec, state, device)
    z_test = logits(model, prepare_inputs(spec, x_test), device)  # (Nt, C)
    z_f = logits(model, prepare_inputs(spec, x_f), device)  # (F, C)
    return {
        "holdout_acc": accuracy(z_test, y_test),
        "forget_acc": accuracy(z_f, y_f),
        "membership_auc": membership_auc(losses(z_f, y_f), losses(z_test, y_test)),
        "kl_to_retrain": kl_to_reference(z_ref, z_f),
    }


def run_seed(seed: int, fraction: float, original: tuple, device: torch.device) -> dict[str, dict]:
    spec, x, y, x_cal, y_cal, x_test, y_test = task(seed)
    orig, train_s = original
    f = torch.randperm(len(y), generator=torch.Generator().manual_seed(1000 + seed))[: max(1, int(fraction * len(y)))]
    retain = torch.ones(len(y), dtype=torch.bool)
    retain[f] = False
    gold, retrain_s = timed(device, train, spec, x[retain], y[retain], RECIPE, device)
    z_ref = logits(load_model(spec, gold, device), prepare_inputs(spec, x[f]), device)
    rows = {
        ORIGINAL: measure(spec, orig, x[f], y[f], x_test, y_test, z_ref, device) | {"seconds": train_s},
        RETRAIN: measure(spec, gold, x[f], y[f], x_test, y_test, z_ref, device) | {"seconds": retrain_s, "met": 1.0},
    }
    cache = None
    for label, kind, cfg in METHODS:
        if kind == "iau-cached" and cache is None:
            cache = build_cache(spec, orig, x, y, torch.ones(len(y), dtype=torch.bool), 1, device)
        args = (spec, orig, x, y, retain, f, cfg, device)
        res, secs = timed(device, engine_unlearn, *args, holdout=(x_cal, y_cal), cache=cache, current_version=1)
        met = res.evidence["outcome"]["met"]
        rows[label] = measure(spec, res.state_dict, x[f], y[f], x_test, y_test, z_ref, device) | {
            "seconds": secs,
            "steps": res.steps,
            "met": float(met),
        }
    for r in rows.values():
        r["time_vs_retrain"] = r["seconds"] / retrain_s
    return rows


def run(device: torch.device, seeds: list[int], log=report.log) -> dict:
    results: dict = {f"forget {fraction:.0%} random rows": {"fraction": fraction, "runs": []} for fraction in FRACTIONS}
    for seed in seeds:
        spec, x, y, *_ = task(seed)
        original = timed(device, train, spec, x, y, RECIPE, device)
        for entry in results.values():
            start = time.perf_counter()
            entry["runs"].append(run_seed(seed, entry["fraction"], original, device))
            log(f"text forget {entry['fraction']:.0%} seed={seed}: {time.perf_counter() - start:.1f} s")
    return results


COLUMNS = [("holdout acc", "holdout_acc", 3), ("forget acc", "forget_acc", 3), ("membership AUC", "membership_auc", 3),
           ("KL to retrain (forget rows)", "kl_to_retrain", 4), ("verdict met", "met", 2)]  # fmt: skip


def scenario_table(runs: list[dict]) -> str:
    header = ["method"] + [c[0] for c in COLUMNS] + ["wall time", "time / retrain", "steps"]
    body = []
    for label in runs[0]:
        col = lambda key, label=label: [r[label].get(key) for r in runs]  # noqa: E731
        row = [label] + [fmt(col(key), d) if label != ORIGINAL or key != "met" else "—" for _, key, d in COLUMNS]
        secs = col("seconds")
        row += [fmt_time(sum(secs) / len(secs)), "—" if label == ORIGINAL else fmt(col("time_vs_retrain"), 4)]
        steps = [s for s in col("steps") if s is not None]
        body.append(row + [f"{sum(steps) / len(steps):.1f}" if steps else "—"])
    return table(header, body)


def markdown(results: dict, meta: dict) -> str:
    m = meta["machine"]
    parts = [
        "# Unlearning quality on a plugin architecture (text-transformer, token ids)",
        "",
        f"Generated by `{meta['command']}` in {meta['seconds']:.0f} s on {m['cpu']} ({m['nproc']} cores visible, "
        f"{m['torch_threads']} torch threads, device `{meta['device']}`), torch {m['torch']}. Seeds: "
        f"{meta['seeds']}; each cell is mean ± std over seeds.",
        "",
        f"Model: the `{ARCH}` example plugin (embedding 32, one encoder layer with 2 heads, feed-forward 64; "
        f"rows of {MAX_LENGTH} token ids). Data: the plugin's synthetic four-topic corpus, {TRAIN_ROWS} train rows "
        f"(10% of labels replaced at random), {CAL_ROWS} calibration rows (the engine's holdout) and {TEST_ROWS} test "
        f"rows (the figures). Recipe: {RECIPE.epochs} epochs, batch {RECIPE.batch_size}, Adam lr {RECIPE.lr}, "
        f"gradient restriction alpha {RECIPE.alpha}. Membership AUC: loss-threshold attack, forgotten rows vs test "
        "rows (0.5 = indistinguishable). Verdict met: share of seeds whose evidence outcome was met. See "
        "docs/benchmark.md.",
    ]
    for title, entry in results.items():
        parts += ["", f"## {title}", "", scenario_table(entry["runs"])]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = report.parser(__doc__).parse_args(argv)
    device = report.setup(args)
    seeds = [0] if args.quick else list(range(args.seeds))
    start = time.perf_counter()
    results = run(device, seeds)
    meta = {
        "command": "python -m bench.text " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": time.perf_counter() - start,
        "machine": report.machine(),
        "device": str(device),
        "seeds": seeds,
    }
    text = markdown(results, meta)
    print(text)
    if not args.no_write:
        report.write("text", text, {"meta": meta, "results": results})
    return results


if __name__ == "__main__":
    main()
