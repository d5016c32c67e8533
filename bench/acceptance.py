"""The acceptance conditions of the targeted pipeline, checked per seed on the quality run's figures.

Every condition is judged on the test holdout (which no method, stop rule or verdict reads) and on the
forgotten rows, seed by seed; a condition passes when it holds on every seed. Where a tolerance is stated
against the retrained model, the retrain-vs-retrain distance of that seed (a second retrain with another
training seed, measured in the same run) replaces it when larger, so no target is set below the noise floor.

- memorisation, 1% and 1 row: the default's membership AUC within max(0.05, floor) of the retrained model's,
  and its test-holdout accuracy within 1.5 points of the retrained model's;
- memorisation, 5%: the verdict says met and the figures above hold, or the verdict says met: false and the
  escalated model is the retrained model (same checkpoint hash);
- poisoned digits, purpose "poison": attack success rate <= 5% and holdout within 1.5 points of retrain;
- digits (1 row, 1%, 5%): the default's holdout accuracy, forget accuracy and membership AUC each within
  1 point (0.01) of the original's;
- digits, 1 row: the default is not further from the retrained model than the original is (KL from the
  retrained model's predictions on the forgotten row, no larger than the original's).
"""

from bench import methods
from bench.report import table

AUC_TOLERANCE = 0.05
HOLDOUT_POINTS = 0.015
DIGITS_POINTS = 0.01
MAX_ATTACK_SUCCESS = 0.05
ORIGINAL, RETRAIN, RETRAIN_2 = methods.ORIGINAL, methods.RETRAIN, methods.RETRAIN_2


def _scenario(results: dict, task: str, forget: str) -> dict | None:
    for entry in results.values():
        if entry["scenario"] == {"task": task, "forget": forget}:
            return entry
    return None


def _auc_and_holdout(run: dict, row: str) -> tuple[bool, str]:
    m, gold, second = run[row], run[RETRAIN], run[RETRAIN_2]
    tol = max(AUC_TOLERANCE, abs(gold["membership_auc"] - second["membership_auc"]))
    d_auc = abs(m["membership_auc"] - gold["membership_auc"])
    d_acc = abs(m["holdout_acc"] - gold["holdout_acc"])
    ok = d_auc <= tol + 1e-9 and d_acc <= HOLDOUT_POINTS + 1e-9  # "within": the bound itself passes
    detail = (
        f"AUC {m['membership_auc']:.3f} vs retrain {gold['membership_auc']:.3f} (|Δ| {d_auc:.3f}, tol {tol:.3f}); "
        f"holdout {m['holdout_acc']:.3f} vs {gold['holdout_acc']:.3f} (|Δ| {d_acc:.3f})"
    )
    return ok, detail


def _five_percent(run: dict, row: str) -> tuple[bool, str]:
    met = (run[row].get("verdict") or {}).get("met")
    if met is True:
        ok, detail = _auc_and_holdout(run, row)
        return ok, "met; " + detail
    if met is False:
        esc = run.get(methods.ESCALATED)
        if esc is None:
            return False, "met: false, no escalated row"
        same = esc.get("escalated") and esc["sha256"] == run[RETRAIN]["sha256"]
        return bool(same), "met: false; escalated model " + ("is" if same else "is NOT") + " the retrained model"
    return False, "no verdict in the evidence"


def _poison(run: dict, row: str) -> tuple[bool, str]:
    m, gold = run[row], run[RETRAIN]
    d_acc = abs(m["holdout_acc"] - gold["holdout_acc"])
    ok = m["attack_success"] <= MAX_ATTACK_SUCCESS and d_acc <= HOLDOUT_POINTS
    return ok, f"attack success {m['attack_success']:.3f}; holdout {m['holdout_acc']:.3f} vs {gold['holdout_acc']:.3f}"


def _near_original(run: dict, row: str) -> tuple[bool, str]:
    m, orig = run[row], run[ORIGINAL]
    keys = ("holdout_acc", "forget_acc", "membership_auc")
    deltas = {k: abs(m[k] - orig[k]) for k in keys}
    return all(d <= DIGITS_POINTS for d in deltas.values()), ", ".join(f"|Δ {k}| {d:.3f}" for k, d in deltas.items())


def _not_further(run: dict, row: str) -> tuple[bool, str]:
    m, orig, second = run[row], run[ORIGINAL], run[RETRAIN_2]
    ok = m["kl_to_retrain"] <= orig["kl_to_retrain"]
    detail = (
        f"KL on the row {m['kl_to_retrain']:.5f} vs original {orig['kl_to_retrain']:.5f} (second retrain "
        f"{second['kl_to_retrain']:.5f})"
    )
    if "kl_test_to_retrain" in m:  # the whole model's distance, for the reader; the condition is on the row
        detail += (
            f"; on the test holdout {m['kl_test_to_retrain']:.5f} vs original {orig['kl_test_to_retrain']:.5f} "
            f"(second retrain {second['kl_test_to_retrain']:.5f})"
        )
    return ok, detail


def conditions() -> list[tuple[str, str, str, str | None, object]]:
    """(name, task, forget, row, check) for every condition."""
    d, p = methods.DEFAULT, methods.POISON
    return [
        ("memorisation 1%: AUC within max(0.05, floor) of retrain, holdout within 1.5 points", "memorisation", "1%",
         d, _auc_and_holdout),
        ("memorisation 1 row: AUC within max(0.05, floor) of retrain, holdout within 1.5 points", "memorisation",
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
    """Every condition, judged per seed: [{name, status: PASS|FAIL|NOT RUN, seeds: [{seed, passed, detail}]}]."""
    out = []
    for name, task, forget, row, fn in conditions():
        entry = _scenario(results, task, forget)
        if entry is None or row is None or row not in entry["runs"][0]:
            out.append({"name": name, "status": "NOT RUN", "row": row, "seeds": []})
            continue
        seeds = []
        for seed, run in zip(entry["seeds"], entry["runs"], strict=True):
            ok, detail = fn(run, row)
            seeds.append({"seed": seed, "passed": bool(ok), "detail": detail})
        status = "PASS" if all(s["passed"] for s in seeds) else "FAIL"
        out.append({"name": name, "status": status, "row": row, "seeds": seeds})
    return out


def lines(results: dict) -> list[str]:
    """One line per condition, then one indented line per seed."""
    out = ["ACCEPTANCE"]
    for c in check(results):
        out.append(f"{c['status']}: {c['name']} [{c['row']}]")
        out += [f"    seed {s['seed']}: {'pass' if s['passed'] else 'FAIL'}: {s['detail']}" for s in c["seeds"]]
    return out


def markdown(results: dict) -> str:
    body = []
    for c in check(results):
        per_seed = "; ".join(
            f"seed {s['seed']} {'pass' if s['passed'] else '**fail**'}: {s['detail']}" for s in c["seeds"]
        )
        body.append([f"**{c['status']}**", c["name"], f"{c['row']}" if c["row"] else "—", per_seed or "—"])
    return table(["result", "condition", "row", "per seed"], body)
