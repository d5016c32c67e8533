"""The scaling run's cost targets (bench.scaling.targets) and which methods each scenario runs (bench.methods)."""

from bench import methods, scaling, tasks


def size(rows: int, cached: float, retrain: float) -> dict:
    return {"rows": rows, "median_s": {"cached": cached}, "retrain_s": retrain, "retrain_how": "measured",
            "retrain_over_cached": retrain / cached}  # fmt: skip


def test_targets_pass_when_flat_and_a_hundred_times_faster_than_retraining():
    res = [size(10_000, 0.040, 2.0), size(50_000, 0.045, 10.0), size(200_000, 0.050, 40.0)]
    (ratio_name, ratio_ok, _), (growth_name, growth_ok, figures) = scaling.targets(res)
    assert ratio_ok and growth_ok
    assert "200,000" in ratio_name and "1.25x" in figures


def test_targets_fail_on_cost_growing_with_n_or_a_slow_deletion():
    growing = [size(10_000, 0.040, 2.0), size(200_000, 0.300, 40.0)]  # 7.5x growth, 133x faster
    (_, ratio_ok, _), (_, growth_ok, _) = scaling.targets(growing)
    assert ratio_ok and not growth_ok
    slow = [size(10_000, 0.3, 2.0), size(200_000, 0.5, 40.0)]  # 80x faster than retraining
    (_, ratio_ok, _), (_, growth_ok, _) = scaling.targets(slow)
    assert not ratio_ok and growth_ok


def test_poison_purpose_runs_on_the_poisoned_rows_only():
    labels = lambda sc: [m[0] for m in methods.for_scenario(sc, methods.METHODS)]  # noqa: E731
    poison = labels(tasks.Scenario("digits-poison", "poison"))
    assert methods.POISON in poison and methods.POISON_ESCALATED in poison and methods.ESCALATED not in poison
    assert methods.DEFAULT in poison  # the privacy default, as a user who did not say "poison" gets it
    other = labels(tasks.Scenario("memorisation", "5%"))
    assert methods.POISON not in other and methods.POISON_ESCALATED not in other and methods.ESCALATED in other
