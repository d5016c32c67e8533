"""The acceptance checks (bench.acceptance) and the noise floor (bench.tables) on hand-made results."""

import pytest

from bench import acceptance, methods, tables

D, ESC = methods.DEFAULT, methods.ESCALATED


def figures(auc=0.5, holdout=0.75, forget=0.5, kl=0.1, sha="a", **extra) -> dict:
    return (
        {"membership_auc": auc, "holdout_acc": holdout, "forget_acc": forget, "kl_to_retrain": kl}
        | {"sha256": sha}
        | extra
    )


def run(default: dict, retrain_auc=0.45, second_auc=0.45, **rows) -> dict:
    return {
        methods.ORIGINAL: figures(auc=0.85, forget=1.0, kl=2.0, sha="orig"),
        methods.RETRAIN: figures(auc=retrain_auc, sha="gold"),
        methods.RETRAIN_2: figures(auc=second_auc, kl=0.3, sha="second"),
        D: default,
    } | rows


def entry(task: str, forget: str, runs: list[dict]) -> dict:
    return {"scenario": {"task": task, "forget": forget}, "seeds": list(range(len(runs))), "runs": runs}


def status(results: dict, prefix: str) -> dict:
    return next(c for c in acceptance.check(results) if c["name"].startswith(prefix))


def test_auc_tolerance_widens_to_the_retrain_spread_but_not_below_five_hundredths():
    # seed 0: |Δ| 0.08 > 0.05 but the two retrains differ by 0.10: passes (not strict); seed 1: |Δ| 0.06, retrains
    # agree: fails both ways
    results = {
        "m1": entry(
            "memorisation",
            "1%",
            [run(figures(auc=0.53), retrain_auc=0.45, second_auc=0.55), run(figures(auc=0.51), retrain_auc=0.45)],
        )
    }
    c = status(results, "memorisation 1%")
    assert [s["passed"] for s in c["seeds"]] == [True, False]
    assert [s["strict"] for s in c["seeds"]] == [False, False]
    assert c["status"] == "FAIL" and c["strict"] == "FAIL"
    one = {"m1": entry("memorisation", "1%", [run(figures(auc=0.53), retrain_auc=0.45, second_auc=0.55)])}
    c = status(one, "memorisation 1%")
    assert c["status"] == "PASS" and c["strict"] == "FAIL"
    assert any("(strict FAIL)" in line for line in acceptance.lines(one))


def test_holdout_more_than_one_and_a_half_points_from_retrain_fails():
    results = {"m": entry("memorisation", "1 row", [run(figures(auc=0.45, holdout=0.73))])}
    assert status(results, "memorisation 1 row")["status"] == "FAIL"
    results = {"m": entry("memorisation", "1 row", [run(figures(auc=0.45, holdout=0.74))])}
    assert status(results, "memorisation 1 row")["status"] == "PASS"


def test_five_percent_passes_when_unmet_targets_escalate_to_the_retrained_checkpoint():
    unmet = figures(auc=0.8, verdict={"met": False})
    good = run(unmet, **{ESC: figures(sha="gold", escalated=True)})
    wrong = run(unmet, **{ESC: figures(sha="other", escalated=True)})
    assert status({"m": entry("memorisation", "5%", [good])}, "memorisation 5%")["status"] == "PASS"
    assert status({"m": entry("memorisation", "5%", [good, wrong])}, "memorisation 5%")["status"] == "FAIL"
    # a verdict of met that the test holdout contradicts fails
    false_met = run(figures(auc=0.8, verdict={"met": True}))
    assert status({"m": entry("memorisation", "5%", [false_met])}, "memorisation 5%")["status"] == "FAIL"
    no_verdict = run(figures(auc=0.45))
    assert status({"m": entry("memorisation", "5%", [no_verdict])}, "memorisation 5%")["status"] == "FAIL"


def test_digits_conditions_compare_with_the_original():
    near = run(figures(auc=0.855, forget=1.0, holdout=0.75, kl=1.9))
    far = run(figures(auc=0.83, forget=1.0, holdout=0.75, kl=2.1))  # the second retrain's KL: 0.3
    results = {"d": entry("digits", "1 row", [near])}
    assert status(results, "digits 1 row: every figure")["status"] == "PASS"
    assert status(results, "digits 1 row: not further")["status"] == "PASS"
    results = {"d": entry("digits", "1 row", [far])}
    assert status(results, "digits 1 row: every figure")["status"] == "FAIL"
    assert status(results, "digits 1 row: not further")["status"] == "FAIL"
    # where two retrains differ by more than the stated point, their distance is the tolerance
    noisy = run(figures(auc=0.83, forget=1.0, holdout=0.75, kl=0.2), retrain_auc=0.40, second_auc=0.45)
    results = {"d": entry("digits", "1 row", [noisy])}
    c = status(results, "digits 1 row: every figure")
    assert c["status"] == "PASS" and c["strict"] == "FAIL"
    # the original sits closer to the retrain than a second retrain does: that distance is the floor
    r = run(figures(auc=0.85, forget=1.0, kl=0.001))
    r[methods.ORIGINAL]["kl_to_retrain"], r[methods.RETRAIN_2]["kl_to_retrain"] = 0.0002, 0.003
    c = status({"d": entry("digits", "1 row", [r])}, "digits 1 row: not further")
    assert c["status"] == "PASS" and c["strict"] == "FAIL"
    r[D]["kl_to_retrain"] = 0.004
    assert status({"d": entry("digits", "1 row", [r])}, "digits 1 row: not further")["status"] == "FAIL"


def test_a_condition_without_its_scenario_or_row_is_not_run():
    results = {"m": entry("memorisation", "1%", [run(figures())])}
    assert status(results, "digits 5%")["status"] == "NOT RUN"
    assert status(results, "poisoned digits")["status"] == "NOT RUN"
    assert any(line.startswith("NOT RUN (strict NOT RUN): poisoned digits") for line in acceptance.lines(results))


def test_noise_floor_is_the_distance_between_the_two_retrains():
    e = entry("memorisation", "1%", [run(figures(), retrain_auc=0.4, second_auc=0.47)])
    floor = tables.noise_floor(e, methods.RETRAIN, methods.RETRAIN_2)
    assert floor["membership_auc"] == pytest.approx([0.07])
    assert floor["holdout_acc"] == [0.0]
    assert floor["kl_to_retrain"] == [0.3]
    assert "lira_auc" not in floor


def test_the_stated_tolerances_are_applied_to_the_second_retrain():
    # seed 0: the second retrain is 0.02 test points from the first (more than 1.5): it fails the stated bar;
    # seed 1: it is within both tolerances
    runs = [run(figures(auc=0.45)), run(figures(auc=0.45))]
    runs[0][methods.RETRAIN_2] = figures(auc=0.45, holdout=0.77, sha="second")
    results = {"m": entry("memorisation", "1%", runs)}
    (c,) = acceptance.noise_check(results)
    assert [s["passed"] for s in c["seeds"]] == [False, True]
    assert "1/2" in acceptance.noise_markdown(results)


def test_churn_and_class_shift():
    import torch

    from bench.metrics import churn, class_shift

    z = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    assert churn(z, z) == 0.0 and class_shift(z, z) == 0.0
    flipped = z.clone()
    flipped[3] = torch.tensor([0.0, 3.0, 0.0])
    assert churn(z, flipped) == pytest.approx(0.25)
    lowered = z.clone()
    lowered[:, 0] -= 5.0  # class 0 lowered on every row: its mean probability falls from 0.45 to 0.01
    assert class_shift(z, lowered) == pytest.approx(0.434, abs=0.01)
    assert class_shift(z, flipped) < 0.25  # one row moved: a quarter of that row's probability
