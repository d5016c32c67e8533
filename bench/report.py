"""Markdown tables, the machine description and raw JSON for benchmark results."""

import argparse
import json
import math
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

from bench.adapter import resolve_device

DOCS = Path(__file__).resolve().parent.parent / "docs" / "bench"


def log(message: str) -> None:
    """Progress line on stderr, flushed at once (stdout carries the tables)."""
    print(message, file=sys.stderr, flush=True)


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def fmt(values: list[float], digits: int = 3, scale: float = 1.0) -> str:
    """'mean ± std' over seeds."""
    m, s = mean_std([v * scale for v in values if v is not None])
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write(name: str, text: str, raw: dict, out_dir: Path = DOCS) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(text)
    (out_dir / f"{name}.json").write_text(json.dumps(raw, indent=1) + "\n")


def parser(doc: str, *, seeds: bool = True, quick_help: str = "one seed: a smoke run, not for the docs"):
    """The options every benchmark part takes: --device, --threads, --quick, --no-write (and --seeds)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    if seeds:
        ap.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/bench untouched")
    ap.add_argument("--out", type=Path, default=DOCS, help="folder for the result files (default docs/bench)")
    return ap


def setup(args):
    """Apply --threads and resolve --device (the same for every part)."""
    torch.set_num_threads(args.threads)
    return resolve_device(args.device)
