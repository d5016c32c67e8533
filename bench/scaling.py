"""Scaling: seconds per single-row deletion against the number of training rows.

    .venv/bin/python -m bench.scaling [--device cpu|cuda] [--sizes 10000,50000,200000] [--quick]

For each size N (64-d synthetic Gaussian classes, an MLP 64-512-512-10): build the per-version gradient cache
G once (the background refresh the service runs after each publication), then time single-row deletions with
the engine's default update (the targeted pipeline, UnlearnConfig()) with the cached correction from that
fresh cache (G minus the forgotten row: what the service runs once the version's cache is ready) and with the
exact correction (stage 1 streams every retained row), interleaved so both see the same machine load, and
time retraining with the recipe on the N-1 retained rows. Each wall time is the whole engine call, evidence
and verdict included. Retraining is measured in full at every size unless --retrain-full-max is lower (above
it one epoch is measured and multiplied by the recipe's epochs; the tables say which). The starting model at
each size is trained for one epoch: the deletion cost does not depend on how far training went. The targets:
at the largest size the cached deletion is at least 100x faster than retraining measured in the same run, and
its cost does not grow with N (at most 2x from the smallest to the largest size, where cost linear in N
would grow 20x). Writes docs/bench/scaling.{md,json,png}.
"""

import statistics
import sys
import time

import torch

from bench import data, report
from bench.adapter import ArchSpec, TrainConfig, UnlearnConfig, build_cache, timed, train, unlearn
from bench.report import fmt_time, machine, table, write

HIDDEN = [512, 512]
RECIPE = TrainConfig(epochs=3, batch_size=256, lr=1e-3, alpha=0.005, seed=0)
HOLDOUT_ROWS = 1000  # the data set's holdout handed to the engine for evidence, stop rule and guard
DELETION = UnlearnConfig()  # the engine's default update: the targeted pipeline
# --full-repair: the pipeline's most expensive path. The model generalises, so the default takes no step at all
# (no membership signal); this forces stage 1 and a repair that never reaches its target (tolerance 0, no noise
# band, no utility guard), so every one of the repair_steps * check_every minibatch steps runs.
FULL_REPAIR = UnlearnConfig(stage1_without_signal=True, auc_tolerance=0.0, auc_noise_z=0.0, max_accuracy_drop=1.0)
MIN_RETRAIN_RATIO = 100  # retrain / cached deletion at the largest size
MAX_GROWTH = 2.0  # cached deletion cost, largest size over smallest


def spec() -> ArchSpec:
    return ArchSpec("mlp", {"in_features": 64, "hidden": HIDDEN, "num_classes": 10})


def run_size(n: int, device: torch.device, repeats: int, retrain_full: bool, deletion=DELETION, log=report.log) -> dict:
    x_all, y_all = data.scaling_set(n + HOLDOUT_ROWS, seed=n)
    x, y = x_all[:n], y_all[:n]  # (n, 64), (n,)
    holdout = (x_all[n:], y_all[n:])
    s = spec()
    one_epoch = TrainConfig(**{**RECIPE.__dict__, "epochs": 1})
    state, start_s = timed(device, train, s, x, y, one_epoch, device)
    live = torch.ones(n, dtype=torch.bool)
    cache, cache_s = timed(device, build_cache, s, state, x, y, live, 1, device, DELETION.chunk_size)
    log(f"scaling n={n}: starting model (1 epoch) {start_s:.1f} s, cache build {cache_s:.2f} s")

    g = torch.Generator().manual_seed(n)
    rows = torch.randperm(n, generator=g)[:repeats].tolist()
    times: dict[str, list[float]] = {"cached": [], "exact": []}
    phases: dict[str, list[dict]] = {"cached": [], "exact": []}
    runs: dict[str, list[dict]] = {"cached": [], "exact": []}  # what the pipeline did: steps, stop, verdict
    for i, row in enumerate(rows):
        retain = live.clone()
        retain[row] = False
        # alternate which correction goes first, so load changes hit both alike
        order = ("cached", "exact") if i % 2 == 0 else ("exact", "cached")
        for mode in order:
            cfg = UnlearnConfig(**{**deletion.__dict__, "correction": mode})
            res, secs = timed(
                device,
                unlearn,
                s,
                state,
                x,
                y,
                retain,
                torch.tensor([row]),
                cfg,
                device,
                holdout=holdout,
                cache=cache,
                current_version=1,
            )
            times[mode].append(secs)
            phases[mode].append(res.evidence["timings_s"])
            ev = res.evidence
            outcome = ev.get("outcome") or {}
            runs[mode].append(
                {"steps": res.steps, "stop_reason": ev["stop_reason"], "met": outcome.get("met"),
                 "correction": ev["correction"]["mode"]}
            )  # fmt: skip

    retain = live.clone()
    retain[rows[0]] = False
    if retrain_full:
        _, retrain_s = timed(device, train, s, x[retain], y[retain], RECIPE, device)
        retrain_how = "measured"
    else:
        _, epoch_s = timed(device, train, s, x[retain], y[retain], one_epoch, device)
        retrain_s, retrain_how = epoch_s * RECIPE.epochs, f"1 epoch measured x {RECIPE.epochs}"
    log(f"scaling n={n}: retrain {retrain_s:.1f} s ({retrain_how})")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows": n,
        "deletion_s": times,
        "median_s": med,
        "phases_s": phases,
        "runs": runs,
        "cache_build_s": cache_s,
        "retrain_s": retrain_s,
        "retrain_how": retrain_how,
        "start_model_s": start_s,
        "exact_over_cached": med["exact"] / med["cached"],
        "retrain_over_cached": retrain_s / med["cached"],
    }


def _median_phase(entries: list[dict], key: str) -> float:
    return statistics.median(e.get(key, 0.0) for e in entries)


def targets(res: list[dict]) -> list[tuple[str, bool, str]]:
    """(condition, passed, figures): the cost targets of the targeted default, judged in this run."""
    first, last = res[0], res[-1]
    ratio = last["retrain_over_cached"]
    growth = last["median_s"]["cached"] / first["median_s"]["cached"]
    out = [
        (
            f"{last['rows']:,} rows: cached deletion >= {MIN_RETRAIN_RATIO}x faster than retraining (same run)",
            ratio >= MIN_RETRAIN_RATIO,
            f"{fmt_time(last['median_s']['cached'])} vs {fmt_time(last['retrain_s'])} ({last['retrain_how']}): "
            f"{ratio:.0f}x",
        )
    ]
    if len(res) > 1:
        out.append(
            (
                f"cached deletion cost does not grow with N (at most {MAX_GROWTH:g}x from {first['rows']:,} to "
                f"{last['rows']:,} rows)",
                growth <= MAX_GROWTH,
                ", ".join(f"{r['rows']:,}: {fmt_time(r['median_s']['cached'])}" for r in res) + f" ({growth:.2f}x)",
            )
        )
    return out


def _what_ran(entries: list[dict]) -> str:
    steps = statistics.median(e["steps"] for e in entries)
    stops = sorted({e["stop_reason"] for e in entries})
    met = sum(e["met"] is True for e in entries)
    return f"{steps:g} steps, {'/'.join(stops)}, met {met}/{len(entries)}"


def markdown(res: list[dict], meta: dict) -> str:
    m = meta["machine"]
    head = [
        "# Scaling: seconds per single-row deletion",
        "",
        f"Generated by `{meta['command']}` in {meta['seconds']:.0f} s on {m['cpu']} ({m['nproc']} cores "
        f"visible, {m['torch_threads']} torch threads, device `{meta['device']}`), torch {m['torch']}. "
        f"Model: MLP 64-{'-'.join(map(str, HIDDEN))}-10 on 64-d synthetic Gaussian classes; recipe "
        f"{RECIPE.epochs} epochs, batch {RECIPE.batch_size}, Adam lr {RECIPE.lr}, alpha {RECIPE.alpha}. "
        f"Deletion: {meta.get('deletion', 'the default (UnlearnConfig())')}, the targeted pipeline "
        f"(`{DELETION.update}`), its evidence and verdict included (holdout {HOLDOUT_ROWS} rows); cached = from "
        "the version's fresh gradient cache, exact = stage 1 "
        f"streams the retained rows. Deletion times are medians over {meta['repeats']} rows, exact and cached "
        "interleaved in one run.",
        "",
        "## Targets",
        "",
    ]
    head += [f"- **{'PASS' if ok else 'FAIL'}**: {name}: {figures}" for name, ok, figures in targets(res)]
    head.append("")
    base = res[0]["median_s"]["cached"]
    rows = []
    for r in res:
        rows.append(
            [
                f"{r['rows']:,}",
                fmt_time(r["median_s"]["cached"]),
                f"{r['median_s']['cached'] / base:.2f}x",
                fmt_time(r["median_s"]["exact"]),
                f"{fmt_time(r['retrain_s'])} ({r['retrain_how']})",
                f"{r['exact_over_cached']:.0f}x",
                f"{r['retrain_over_cached']:.0f}x",
                fmt_time(r["cache_build_s"]),
                _what_ran(r["runs"]["cached"]),
            ]
        )
    header = [
        "training rows",
        "deletion, cached",
        f"cached vs {res[0]['rows']:,} rows",
        "deletion, exact",
        "retrain",
        "exact / cached",
        "retrain / cached",
        "cache build (per version)",
        "pipeline (cached)",
    ]
    phase_rows = []
    for r in res:
        for mode in ("cached", "exact"):
            ph = r["phases_s"][mode]
            phase_rows.append(
                [f"{r['rows']:,}", mode]
                + [
                    fmt_time(_median_phase(ph, k))
                    for k in ("evidence_before", "retained_gradient", "update", "evidence_after", "hashing")
                ]
            )
    phase_header = ["rows", "correction", "evidence before", "retained gradient", "update", "evidence after", "hashing"]
    return "\n".join(
        head
        + [table(header, rows), "", "![scaling](scaling.png)", "", "## Where a deletion's time goes (medians)", ""]
        + [table(phase_header, phase_rows), ""]
    )


def plot(res: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["rows"] for r in res]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot(n, [r["retrain_s"] for r in res], "s-", label="retrain (recipe)")
    ax.plot(n, [r["median_s"]["exact"] for r in res], "o-", label="targeted default, exact correction")
    ax.plot(n, [r["median_s"]["cached"] for r in res], "^-", label="targeted default, fresh cache")
    ax.plot(n, [r["cache_build_s"] for r in res], "x:", color="grey", label="cache build (once per version)")
    for r in res:
        if r["retrain_how"] != "measured":
            ax.annotate("1 epoch x epochs", (r["rows"], r["retrain_s"]), fontsize=7, xytext=(4, -10),
                        textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training rows")
    ax.set_ylabel("seconds per single-row deletion")
    ax.set_title("Single-row deletion time vs data size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = report.parser(__doc__, seeds=False, quick_help="sizes 5000,20000 and 3 repeats: a smoke run")
    ap.add_argument("--sizes", default="10000,50000,200000", help="comma-separated training-set sizes")
    ap.add_argument("--repeats", type=int, default=3, help="deleted rows timed per size and correction")
    ap.add_argument(
        "--retrain-full-max", type=int, default=10**9, help="measure retraining in full up to N (default: always)"
    )
    ap.add_argument("--full-retrain", action="store_true", help="measure retraining in full at every size")
    ap.add_argument("--name", default="scaling", help="output name under docs/bench (default scaling)")
    ap.add_argument("--full-repair", action="store_true", help="time the whole repair budget (FULL_REPAIR)")
    args = ap.parse_args(argv)
    device = report.setup(args)
    sizes = [5000, 20000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeats = 3 if args.quick else args.repeats
    start = time.perf_counter()
    deletion = FULL_REPAIR if args.full_repair else DELETION
    res = [run_size(n, device, repeats, args.full_retrain or n <= args.retrain_full_max, deletion) for n in sizes]
    meta = {
        "command": "python -m bench.scaling " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(device),
        "repeats": repeats,
        "deletion": "full repair budget (FULL_REPAIR)" if args.full_repair else "the default (UnlearnConfig())",
        "seconds": time.perf_counter() - start,
        "machine": machine(),
    }
    text = markdown(res, meta)
    print(text)
    report.log("\n".join(f"{'PASS' if ok else 'FAIL'}: {name}: {figures}" for name, ok, figures in targets(res)))
    if not args.no_write:
        raw = {"meta": meta, "results": res}
        write(args.name, text.replace("(scaling.png)", f"({args.name}.png)"), raw, args.out)
        plot(res, args.out / f"{args.name}.png")
    return res


if __name__ == "__main__":
    main()
