"""Run the benchmark: quality tables (with the LiRA attack and the acceptance checks), then the scaling run;
with --sweep, the older sweep of the classic updates' settings first.

    .venv/bin/python -m bench [--device cpu|cuda] [--seeds 3] [--quick] [--sweep]

Writes docs/bench/{quality,scaling}.{md,json} and docs/bench/scaling.png (and sweep.{md,json} with --sweep).
The sweep is a long study of the classic updates (about 20 minutes on 2 cores); with --sweep it runs first on
the quality seeds (the trained models are shared) and the configuration it recommends is added as a row of
the quality tables (without --sweep, the recommendation of the committed docs/bench/sweep.json is used).
--quick is a smoke run (one seed, 4 shadow models, small scaling sizes) whose output is not meant for the
docs: with it nothing is written unless --write is given. See docs/benchmark.md.
"""

import argparse
import json
import time
from pathlib import Path

from bench import quality, report, scaling, sweep

SWEEP_JSON = Path(__file__).resolve().parent.parent / "docs" / "bench" / "sweep.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    ap.add_argument("--seeds", type=int, default=3, help="seeds for quality and sweep (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--quick", action="store_true", help="smoke run: one seed, scaling sizes 5000,20000")
    ap.add_argument("--write", action="store_true", help="with --quick: write docs/bench anyway")
    ap.add_argument("--sweep", action="store_true", help="run the defaults sweep first (long)")
    args = ap.parse_args()
    common = ["--device", args.device, "--threads", str(args.threads)]
    if args.quick:
        common.append("--quick")
        if not args.write:
            common.append("--no-write")
    start = time.perf_counter()
    extra = []
    if args.sweep:
        swept = sweep.main(common + ["--seeds", str(args.seeds)])
        report.log(f"bench: sweep done at {time.perf_counter() - start:.0f} s")
    else:  # the recommendation of the last committed sweep
        swept = json.loads(SWEEP_JSON.read_text()) if SWEEP_JSON.exists() else {"best": None}
    if swept["best"]:
        extra.append((f"IAU sweep pick ({swept['best']})", "iau", sweep.config(swept["best"])))
    quality.main(common + ["--seeds", str(args.seeds)], extra_methods=extra)
    report.log(f"bench: quality done at {time.perf_counter() - start:.0f} s")
    scaling.main(common)
    report.log(f"bench: all done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
