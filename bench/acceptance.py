"""The acceptance conditions of the targeted pipeline, checked per seed on the quality run's figures.

Every condition is judged on the test holdout (which no method, stop rule or verdict reads) and on the
forgotten rows, seed by seed; a condition passes when it holds on every seed. No tolerance is set below the
noise floor: each stated tolerance is replaced, on a seed, by the distance between the two exact retrains of
that seed in the same column (a second retrain with another training seed, measured in the same run) when that
distance is larger. Every condition is also judged "strict", with the stated tolerances alone, and both
verdicts are printed.

- memorisation, 1% and 1 row: the default's membership AUC within max(0.05, floor) of the retrained model's,
  and its test-holdout accuracy within max(1.5 points, floor) of the retrained model's;
- memorisation, 5%: the verdict says met and the figures above hold (a verdict of met that the test holdout
  contradicts fails), or the verdict says met: false and the escalated model is the retrained model (same
  checkpoint hash);
- poisoned digits, purpose "poison": attack success rate <= 5% and holdout within max(1.5 points, floor) of
  the retrained model's;
- digits (1 row, 1%, 5%): the default's holdout accuracy, forget accuracy and membership AUC each within
  max(1 point, floor) of the original's;
- digits, 1 row: the default is not further from the retrained model than the original is: KL from the
  retrained model's predictions on the forgotten row no larger than the original's, or than the second
  retrain's (the floor); the same on the test holdout is printed beside it.
"""

from bench import methods
from bench.report import table

AUC_TOLERANCE = 0.05
HOLDOUT_POINTS = 0.015
DIGITS_POINTS = 0.01
MAX_ATTACK_SUCCESS = 0.05
SLACK = 1e-9  # "within": a distance equal to the bound passes
ORIGINAL, RETRAIN, RETRAIN_2 = methods.ORIGINAL, methods.RETRAIN, methods.RETRAIN_2


def _scenario(results: dict, task: str, forget: str) -> dict | None:
    for entry in results.values():
        if entry["scenario"] == {"task": task, "forget": forget}:
            return entry
    return None


def _within(run: dict, row: str, ref: str, key: str, stated: float, floor: bool = True) -> tuple[bool, bool, str]:
    """|row - ref| in `key` against max(stated, |retrain - second retrain|), or `stated` alone without `floor`:
    (ok, ok strict, detail)."""
    d = abs(run[row][key] - run[ref][key])
    tol = max(stated, abs(run[RETRAIN][key] - run[RETRAIN_2][key])) if floor else stated
    detail = f"{key} {run[row][key]:.3f} vs {run[ref][key]:.3f} (|Δ| {d:.3f}, tol {tol:.3f})"
    return d <= tol + SLACK, d <= stated + SLACK, detail


def _all(parts: list[tuple[bool, bool, str]]) -> tuple[bool, bool, str]:
    return all(p[0] for p in parts), all(p[1] for p in parts), "; ".join(p[2] for p in parts)


def _auc_and_holdout(run: dict, row: str) -> tuple[bool, bool, str]:
    return _all(
        [
            _within(run, row, RETRAIN, "membership_auc", AUC_TOLERANCE),
            _within(run, row, RETRAIN, "holdout_acc", HOLDOUT_POINTS),
        ]
    )


def _five_percent(run: dict, row: str) -> tuple[bool, bool, str]:
    met = (run[row].get("verdict") or {}).get("met")
    if met is True:
        ok, strict, detail = _auc_and_holdout(run, row)
        return ok, strict, "met; " + detail
    if met is False:
        esc = run.get(methods.ESCALATED)
        if esc is None:
            return False, False, "met: false, no escalated row"
        same = bool(esc.get("escalated") and esc["sha256"] == run[RETRAIN]["sha256"])
        return same, same, "met: false; escalated model " + ("is" if same else "is NOT") + " the retrained model"
    return False, False, "no verdict in the evidence"


def _poison(run: dict, row: str) -> tuple[bool, bool, str]:
    asr = run[row]["attack_success"]
    ok, strict, detail = _within(run, row, RETRAIN, "holdout_acc", HOLDOUT_POINTS)
    low = asr <= MAX_ATTACK_SUCCESS
    return ok and low, strict and low, f"attack success {asr:.3f}; {detail}"


def _near_original(run: dict, row: str) -> tuple[bool, bool, str]:
    keys = ("holdout_acc", "forget_acc", "membership_auc")
    return _all([_within(run, row, ORIGINAL, k, DIGITS_POINTS) for k in keys])


def _not_further(run: dict, row: str) -> tuple[bool, bool, str]:
    m, orig, second = run[row], run[ORIGINAL], run[RETRAIN_2]
    strict = m["kl_to_retrain"] <= orig["kl_to_retrain"]
    ok = m["kl_to_retrain"] <= max(orig["kl_to_retrain"], second["kl_to_retrain"])
    detail = (
        f"KL on the row {m['kl_to_retrain']:.5f} vs original {orig['kl_to_retrain']:.5f}, second retrain "
        f"{second['kl_to_retrain']:.5f}"
    )
    if "kl_test_to_retrain" in m:  # the whole model's distance, for the reader; the condition is on the row
        detail += (
            f"; on the test holdout {m['kl_test_to_retrain']:.5f} vs original {orig['kl_test_to_retrain']:.5f}, "
            f"second retrain {second['kl_test_to_retrain']:.5f}"
        )
    return ok, strict, detail


def conditions() -> list[tuple[str, str, str, str | None, object]]:
    """(name, task, forget, row, check) for every condition."""
    d, p = methods.DEFAULT, methods.POISON
    return [
        ("memorisation 1%: AUC within 0.05 of retrain, holdout within 1.5 points", "memorisation", "1%",
         d, _auc_and_holdout),
        ("memorisation 1 row: AUC within 0.05 of retrain, holdout within 1.5 points", "memorisation",
         "1 row", d, _auc_and_holdout),
        ("memorisation 5%: met (figures as for 1%), or met:false and escalation yields the retrain", "memorisation",
         "5%", d, _five_percent),
        ("poisoned digits, purpose poison: attack success <= 5%, holdout within 1.5 points of retrain",
         "digits-poison", "poison", p, _poison),
        ("digits 1 row: every figure within 1 point of the original", "digits", "1 row", d, _near_original),
        ("digits 1%: every figure within 1 point of the original", "digits", "1%", d, _near_original),
        ("digits 5%: every figure within 1 point of the original", "digits", "5%", d, _near_original),
        ("digits 1 row: not further from the retrain than the original (KL on the row)", "digits", "1 row", d,
         _not_further),
    ]  # fmt: skip


def check(results: dict) -> list[dict]:
    """Every condition, judged per seed: [{name, status, strict: PASS|FAIL|NOT RUN, row, seeds: [...]}]."""
    out = []
    for name, task, forget, row, fn in conditions():
        entry = _scenario(results, task, forget)
        if entry is None or row is None or row not in entry["runs"][0]:
            out.append({"name": name, "status": "NOT RUN", "strict": "NOT RUN", "row": row, "seeds": []})
            continue
        seeds = []
        for seed, run in zip(entry["seeds"], entry["runs"], strict=True):
            ok, strict, detail = fn(run, row)
            seeds.append({"seed": seed, "passed": bool(ok), "strict": bool(strict), "detail": detail})
        status = "PASS" if all(s["passed"] for s in seeds) else "FAIL"
        strict = "PASS" if all(s["strict"] for s in seeds) else "FAIL"
        out.append({"name": name, "status": status, "strict": strict, "row": row, "seeds": seeds})
    return out


def _seed_word(s: dict) -> str:
    return ("pass" if s["passed"] else "FAIL") + (
        "" if s["strict"] == s["passed"] else f" (strict {'pass' if s['strict'] else 'FAIL'})"
    )


def lines(results: dict) -> list[str]:
    """One line per condition (with the floor; strict beside it), then one indented line per seed."""
    out = ["ACCEPTANCE (tolerances at least the retrain-vs-retrain distance; strict: the stated tolerances alone)"]
    for c in check(results):
        out.append(f"{c['status']} (strict {c['strict']}): {c['name']} [{c['row']}]")
        out += [f"    seed {s['seed']}: {_seed_word(s)}: {s['detail']}" for s in c["seeds"]]
    return out


def noise_check(results: dict) -> list[dict]:
    """The memorisation conditions' stated tolerances (AUC within 0.05, test holdout within 1.5 points of the
    retrained model) applied to the second exact retrain, per seed: [{name, seeds: [{seed, passed, detail}]}]."""
    out = []
    for forget in ("1 row", "1%", "5%"):
        entry = _scenario(results, "memorisation", forget)
        if entry is None:
            continue
        seeds = []
        for seed, run in zip(entry["seeds"], entry["runs"], strict=True):
            stated = (("membership_auc", AUC_TOLERANCE), ("holdout_acc", HOLDOUT_POINTS))
            passed, _, detail = _all([_within(run, RETRAIN_2, RETRAIN, k, t, floor=False) for k, t in stated])
            seeds.append({"seed": seed, "passed": bool(passed), "detail": detail})
        out.append({"name": f"memorisation {forget}: second retrain against the retrain", "seeds": seeds})
    return out


def noise_markdown(results: dict) -> str:
    body = []
    for c in noise_check(results):
        per_seed = "; ".join(f"seed {s['seed']} {'pass' if s['passed'] else 'FAIL'}: {s['detail']}" for s in c["seeds"])
        body.append([c["name"], f"{sum(s['passed'] for s in c['seeds'])}/{len(c['seeds'])}", per_seed])
    return table(["condition (stated tolerances)", "seeds passed", "per seed"], body) if body else "—"


def markdown(results: dict) -> str:
    body = []
    for c in check(results):
        per_seed = "; ".join(f"seed {s['seed']} {_seed_word(s)}: {s['detail']}" for s in c["seeds"])
        row = c["row"] or "—"
        body.append([f"**{c['status']}**", c["strict"], c["name"], row, per_seed or "—"])
    return table(["result", "strict", "condition", "row", "per seed"], body)
