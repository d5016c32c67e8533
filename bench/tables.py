"""Markdown tables of the quality run: one per scenario, the LiRA figures, and the retrain-vs-retrain floor."""

from bench.report import fmt, fmt_time, mean_std, table

COLUMNS = [
    ("holdout acc", "holdout_acc", 3),
    ("forget acc", "forget_acc", 3),
    ("membership AUC", "membership_auc", 3),
    ("KL to retrain (forget rows)", "kl_to_retrain", 4),
    ("KL to retrain (test holdout)", "kl_test_to_retrain", 4),
    ("churn", "test_churn", 3),
    ("class shift", "class_shift", 3),
]
NOISE_COLUMNS = [
    ("membership AUC", "membership_auc"),
    ("holdout acc", "holdout_acc"),
    ("forget acc", "forget_acc"),
    ("LiRA AUC", "lira_auc"),
]


def _col(runs: list[dict], label: str, key: str) -> list:
    return [r[label].get(key) for r in runs]


def met_cell(runs: list[dict], label: str) -> str:
    """'k/n' seeds on which the engine's verdict said met (and how many escalated), '—' without a verdict."""
    verdicts = [(r[label].get("verdict") or {}).get("met") for r in runs]
    if all(v is None for v in verdicts):
        return "—"
    cell = f"{sum(v is True for v in verdicts)}/{len(verdicts)}"
    escalated = [r[label].get("escalated") for r in runs]
    if any(e is not None for e in escalated):
        cell += f" (escalated {sum(bool(e) for e in escalated)})"
    return cell


def scenario_table(entry: dict, original_label: str) -> str:
    runs = entry["runs"]
    poison = entry["scenario"]["forget"] == "poison"
    header = ["method"] + [c[0] for c in COLUMNS] + (["attack success"] if poison else [])
    header += ["met", "wall time", "time / retrain", "steps"]
    body = []
    for label in runs[0]:
        row = [label] + [fmt(_col(runs, label, key), d) for _, key, d in COLUMNS]
        if poison:
            row.append(fmt(_col(runs, label, "attack_success"), 3))
        row.append(met_cell(runs, label))
        secs = _col(runs, label, "seconds")
        row.append(fmt_time(sum(secs) / len(secs)))
        row.append("—" if label == original_label else fmt(_col(runs, label, "time_vs_retrain"), 4))
        steps = [s for s in _col(runs, label, "steps") if s is not None]
        row.append(f"{sum(steps) / len(steps):.1f}" if steps else "—")
        body.append(row)
    return table(header, body)


def lira_table(entry: dict) -> str:
    runs = entry["runs"]
    keys = [k for k in runs[0][next(iter(runs[0]))] if k.startswith("lira_tpr_at_")]
    header = ["method", "loss-threshold AUC", "LiRA AUC"] + [f"TPR at {k.split('_at_')[1]} FPR" for k in keys]
    body = []
    for label in runs[0]:
        row = [label, fmt(_col(runs, label, "membership_auc"), 3), fmt(_col(runs, label, "lira_auc"), 3)]
        body.append(row + [fmt(_col(runs, label, k), 3) for k in keys])
    return table(header, body)


def noise_floor(entry: dict, first: str, second: str) -> dict[str, list[float]]:
    """Per seed, the distance between the two retrains in every column: |difference|, and KL(first || second)."""
    out: dict[str, list[float]] = {}
    for _, key in NOISE_COLUMNS:
        pairs = [(r[first].get(key), r[second].get(key)) for r in entry["runs"]]
        if all(a is not None for a, _ in pairs):
            out[key] = [abs(a - b) for a, b in pairs]
    out["kl_to_retrain"] = [r[second]["kl_to_retrain"] for r in entry["runs"]]
    if all("kl_test_to_retrain" in r[second] for r in entry["runs"]):
        out["kl_test_to_retrain"] = [r[second]["kl_test_to_retrain"] for r in entry["runs"]]
    return out


def noise_table(results: dict, first: str, second: str) -> str:
    header = ["scenario"] + [f"|Δ {name}|" for name, _ in NOISE_COLUMNS]
    header += ["KL(retrain || second retrain), forget rows", "the same, test holdout"]
    body = []
    for label, entry in results.items():
        floor = noise_floor(entry, first, second)
        cells = []
        for _, key in NOISE_COLUMNS + [("", "kl_to_retrain"), ("", "kl_test_to_retrain")]:
            if key not in floor:
                cells.append("—")
                continue
            m, s = mean_std(floor[key])
            cells.append(f"{m:.3f} ± {s:.3f} (max {max(floor[key]):.3f})")
        body.append([label] + cells)
    return table(header, body)


def epsilon_table(per_seed: list[dict]) -> str:
    """Median per-example eps and the forgetting score, mean ± std over seeds, per method."""
    header = ["model", "median eps over forgotten rows", "forgetting score (1 = indistinguishable)"]
    body = []
    for label in per_seed[0]:
        eps = [s[label]["eps_median"] for s in per_seed]
        score = [s[label]["forgetting_score"] for s in per_seed]
        body.append([label, fmt(eps, 2), fmt(score, 3)])
    return table(header, body)
