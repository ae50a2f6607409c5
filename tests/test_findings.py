"""The verdict logic of trainlab.stats.findings on synthetic results: a clear effect holds, no effect is
inconclusive, a reversed effect does not hold, for every kind of statement."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trainlab import families
from trainlab.configs import ConfigId, Study
from trainlab.stats import findings as F
from trainlab.stats.results import COLUMNS

BASE = [0.50, 0.52, 0.48, 0.51, 0.49, 0.505, 0.495, 0.50]  # 8 seeds: rank and sign tests can reach p < 0.05
SAME = [0.49, 0.51, 0.50, 0.48, 0.52, 0.50, 0.505, 0.495]  # BASE reordered: the same mean and spread
HIGHER = [v + 0.3 for v in SAME]


RUN, NODES = Study("run"), Study("nodes")
SECTION = "families.test"


def cid(config: str | ConfigId) -> ConfigId:
    """Plain names are configurations of the study ``run``."""
    return config if isinstance(config, ConfigId) else RUN(config)


def history(curves: dict, metric: str = "val_accuracy") -> pd.DataFrame:
    """The long history table from {config: one curve per seed}; its configurations in ``attrs``."""
    rows = [(str(cid(config)), cid(config).study, seed, epoch, metric, float(value))
            for config, per_seed in curves.items()
            for seed, curve in enumerate(per_seed, 1)
            for epoch, value in enumerate(curve, 1)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.attrs["declared"] = [cid(c) for c in curves]
    return frame


def finals(values: dict, metric: str = "val_accuracy") -> pd.DataFrame:
    """Two-epoch curves whose final values are the given ones."""
    return history({config: [[0.0, v] for v in per_seed] for config, per_seed in values.items()}, metric)


def judged(statement: F.Statement, results: pd.DataFrame) -> dict:
    return F.judge([F.Finding("claim", "a claim", statement)], results, results.attrs["declared"], SECTION)[0]


def acc(config: str | ConfigId) -> F.Quantity:
    return F.final(cid(config), "val_accuracy")


@pytest.mark.parametrize("test", ["welch", "paired", "mannwhitney"])
def test_comparison_clear_effect_holds_no_effect_inconclusive_reversed_does_not_hold(test):
    results = finals({"a": BASE, "same": SAME, "higher": HIGHER})
    clear = judged(F.greater(acc("higher"), acc("a"), test=test), results)
    assert clear["verdict"] == F.HOLDS and clear["code"] == 1
    assert clear["p_value"] < 0.01
    if test == "mannwhitney":  # only the order means something: the share of seeds where A beats B
        assert clear["estimate"]["kind"] == "share of seeds where A beats B" and clear["estimate"]["value"] == 1
        assert clear["estimate"]["median_difference"] == pytest.approx(0.3, abs=0.02)
    else:
        assert clear["estimate"]["kind"] == "difference (paired)"
        assert clear["estimate"]["value"] == pytest.approx(0.3, abs=0.02)
    assert clear["one_run"]["share"] == 1 and clear["one_run"]["seeds"] == 8
    none = judged(F.greater(acc("same"), acc("a"), test=test), results)
    assert none["verdict"] == F.INCONCLUSIVE and none["code"] == 0 and none["p_value"] > 0.5
    reversed_ = judged(F.less(acc("higher"), acc("a"), test=test), results)
    assert reversed_["verdict"] == F.DOES_NOT_HOLD and reversed_["code"] == -1


def test_comparison_on_shared_seeds_is_paired_and_carries_statistic_p_value_interval_and_samples():
    result = judged(F.greater(acc("higher"), acc("a")), finals({"a": BASE, "higher": HIGHER}))
    assert result["test"].startswith("paired t-test") and result["paired"] and result["statistic"] > 10
    assert result["estimate"]["low"] < 0.3 < result["estimate"]["high"]
    assert [s["n"] for s in result["samples"]] == [8, 8]
    assert result["samples"][0]["mean"] == pytest.approx(0.8)
    assert result["statement"] == "val_accuracy of run=higher (final) > val_accuracy of run=a (final)"


def test_threshold_sign_test_above_below_and_t_test_exact_when_every_seed_agrees():
    results = finals({"a": BASE, "perfect": [1.0] * 8})
    assert judged(F.above(acc("a"), 0.3), results)["verdict"] == F.HOLDS
    assert judged(F.above(acc("a"), 0.5), results)["verdict"] == F.INCONCLUSIVE  # as many seeds above as below
    assert judged(F.above(acc("a"), 0.7), results)["verdict"] == F.DOES_NOT_HOLD
    assert judged(F.below(acc("a"), 0.7), results)["verdict"] == F.HOLDS
    sign = judged(F.above(acc("perfect"), 0.95), results)
    assert sign["verdict"] == F.HOLDS and sign["test"].startswith("sign test") and sign["share_above"] == 1
    exact = judged(F.above(acc("perfect"), 0.95, test="t"), results)
    assert exact["verdict"] == F.HOLDS and exact["p_value"] == 0 and "exact" in exact["test"]
    assert judged(F.below(acc("perfect"), 1.0), results)["verdict"] == F.INCONCLUSIVE


def test_trend_over_a_study_uses_the_numeric_setting():
    rising = finals({NODES(n): [0.1 * n + d for d in (-0.01, 0.0, 0.01)] for n in range(1, 6)})
    flat = finals({NODES(n): [0.5 + d for d in (-0.01, 0.0, 0.01)] for n in range(1, 6)})
    holds = judged(F.increasing(NODES, "val_accuracy"), rising)
    assert holds["verdict"] == F.HOLDS and holds["estimate"]["value"] > 0.9 and "Page's trend test" in holds["test"]
    assert judged(F.increasing(NODES, "val_accuracy"), flat)["verdict"] == F.INCONCLUSIVE
    assert judged(F.decreasing(NODES, "val_accuracy"), rising)["verdict"] == F.DOES_NOT_HOLD
    two = judged(F.increasing(NODES, "val_accuracy"), finals({NODES(1): BASE, NODES(2): HIGHER}))
    assert two["verdict"] == F.HOLDS and two["test"].startswith("Wilcoxon signed-rank")
    # the settings come from the configurations, not from their names: 10 sorts after 9 as a number
    late = finals({NODES(n): [0.1 * n + d for d in (-0.01, 0.0, 0.01)] for n in (2, 9, 10)})
    last = judged(F.increasing(NODES, "val_accuracy"), late)["samples"][-1]
    assert last["label"].startswith("val_accuracy of nodes=10")


def test_wider_spread():
    rng = np.random.default_rng(0)
    wide, narrow = list(0.5 + 0.1 * rng.standard_normal(10)), list(0.5 + 0.005 * rng.standard_normal(10))
    narrow2 = list(0.5 + 0.005 * rng.standard_normal(10))
    results = finals({"wide": wide, "narrow": narrow, "narrow2": narrow2})
    assert judged(F.wider(acc("wide"), acc("narrow")), results)["verdict"] == F.HOLDS
    assert judged(F.wider(acc("narrow"), acc("wide")), results)["verdict"] == F.DOES_NOT_HOLD
    assert judged(F.wider(acc("narrow"), acc("narrow2")), results)["verdict"] == F.INCONCLUSIVE


def test_similar_is_an_equivalence_test():
    results = finals({"a": BASE, "same": SAME, "higher": HIGHER, "one": BASE[:1]})
    assert judged(F.similar(acc("a"), acc("same"), margin=0.05), results)["verdict"] == F.EQUIVALENT
    assert judged(F.similar(acc("a"), acc("higher"), margin=0.05), results)["verdict"] == F.DOES_NOT_HOLD
    assert judged(F.similar(acc("a"), acc("same"), margin=0.001), results)["verdict"] == F.INCONCLUSIVE


def test_all_of_holds_only_when_every_part_holds():
    results = finals({"a": BASE, "same": SAME, "higher": HIGHER})
    both = judged(F.all_of(F.greater(acc("higher"), acc("a")), F.above(acc("a"), 0.3)), results)
    assert both["verdict"] == F.HOLDS and len(both["parts"]) == 2
    assert both["p_value"] == max(part["p_value"] for part in both["parts"])
    assert judged(F.all_of(F.greater(acc("higher"), acc("a")), F.greater(acc("same"), acc("a"))),
                  results)["verdict"] == F.INCONCLUSIVE
    assert judged(F.all_of(F.greater(acc("higher"), acc("a")), F.less(acc("higher"), acc("a"))),
                  results)["verdict"] == F.DOES_NOT_HOLD


def test_epochs_to_threshold_counts_never_as_censored():
    fast = [[0.5, 0.8, 0.9, 0.9]] * 2 + [[0.8, 0.9, 0.9, 0.9]] * 6
    slow = [[0.1, 0.2, 0.3, 0.4]] * 7 + [[0.1, 0.2, 0.3, 0.8]]
    results = history({"fast": fast, "slow": slow})
    sample = F.epochs_to(cid("slow"), "val_accuracy", 0.78).sample(F.Results(results))
    assert list(sample.values) == [5] * 7 + [4] and "7 never reached" in sample.note
    result = judged(F.less(F.epochs_to(cid("fast"), "val_accuracy", 0.78),
                           F.epochs_to(cid("slow"), "val_accuracy", 0.78), test="mannwhitney"), results)
    assert result["verdict"] == F.HOLDS and result["test"].startswith("sign test over shared seeds")
    assert result["estimate"]["value"] == 1 and result["estimate"]["median_difference"] == -4
    assert result["shape"] == "censored"


def test_rebound_volatility_and_difference():
    a = cid("a")
    results = F.Results(history({a: [[3.0, 2.0, 1.0, 2.5, 0.5], [3.0, 2.0, 1.0, 0.8, 0.5]]}, "loss"))
    assert list(F.rebound(a).sample(results).values) == [1.5, 0.0]
    assert list(F.volatility(a, "loss", last=3).sample(results).values) == pytest.approx([1.75, 0.25])
    gap = F.difference(F.final(a, "loss"), F.at_epoch(a, "loss", 1)).sample(results)
    assert list(gap.values) == [-2.5, -2.5]


def test_a_configuration_the_params_leave_out_is_not_judged_and_the_key_is_named():
    result = judged(F.above(acc(NODES(9)), 0.5), finals({"a": BASE}))
    assert result["verdict"] == F.NOT_JUDGED and result["code"] is None and result["p_value"] is None
    assert result["note"] == "not judged: `families.test.nodes` has no 9"
    listed_elsewhere = Study("learning_rate", param="learning_rates")
    other = judged(F.above(acc(listed_elsewhere(1e-06)), 0.5), finals({"a": BASE}))
    assert other["note"] == "not judged: `families.test.learning_rates` has no 1e-06"
    trend = judged(F.increasing(NODES, "val_accuracy"), finals({NODES(1): BASE, "a": BASE}))
    assert trend["verdict"] == F.NOT_JUDGED and "`families.test.nodes` has fewer than two values" in trend["note"]
    part = judged(F.all_of(F.above(acc("a"), 0.3), F.above(acc(NODES(9)), 0.5)), finals({"a": BASE}))
    assert part["verdict"] == F.NOT_JUDGED and "nodes` has no 9" in part["note"]


def test_diverged_seeds_give_no_value_to_any_quantity_but_divergence():
    # seed 2 of "a" diverged: its loss became NaN, although its accuracy still reads 0.9
    curves = history({"a": [[0.5, 0.5], [0.5, 0.9], [0.5, 0.5]], "higher": [[0.9, 0.9]] * 3})
    loss = history({"a": [[1.0, 0.9], [1.0, math.nan], [1.0, 0.8]], "higher": [[1.0, 0.5]] * 3}, "loss")
    both = pd.concat([curves, loss], ignore_index=True)
    both.attrs["declared"] = curves.attrs["declared"]
    results = F.Results(both, both.attrs["declared"])
    assert np.isnan(acc("a").sample(results).values[2])
    assert F.epochs_to(cid("a"), "val_accuracy", 0.8).sample(results).values.isna().tolist() == [False, True, False]
    assert list(F.diverged(cid("a")).sample(results).values) == [0.0, 1.0, 0.0]
    result = judged(F.greater(acc("higher"), acc("a")), both)
    assert result["samples"][1]["n"] == 2 and "1 diverged" in result["samples"][1]["note"]
    lonely = judged(F.greater(acc("higher"), acc("a")),
                    finals({"a": [0.5, math.nan], "higher": HIGHER}))
    assert lonely["verdict"] == F.INCONCLUSIVE and "fewer than two" in lonely["note"]


def test_book_table_sets_the_book_number_beside_ours():
    rows = F.book_table({cid("a"): {"val_accuracy": 0.5}, cid("higher"): {"val_accuracy": (0.2, 0.1)},
                         cid("absent"): {"val_accuracy": 1.0}}, finals({"a": BASE, "higher": HIGHER}))
    inside, outside, absent = rows
    assert inside["book_inside_ci95"] and inside["n"] == 8 and inside["mean"] == pytest.approx(0.5)
    assert inside["ci95_low"] < 0.5 < inside["ci95_high"]
    assert not outside["book_inside_ci95"] and outside["book_std"] == 0.1
    assert absent["n"] == 0 and not absent["book_inside_ci95"]


def test_finding_ids_are_checked():
    with pytest.raises(ValueError, match="lower-case"):
        F.Finding("Bad Id", "claim", F.above(acc("a"), 0.5))
    with pytest.raises(ValueError, match="duplicate"):
        F.judge([F.Finding("x", "c", F.above(acc("a"), 0.5))] * 2, finals({"a": BASE}), [cid("a")], SECTION)


@pytest.mark.parametrize("name", families.NAMES)
def test_at_the_default_params_every_family_can_judge_every_finding_and_show_every_book_number(name):
    from conftest import REPO

    from trainlab.params import load

    params = load(REPO / "params.yaml")
    family, cfg = families.check_family(params, name)
    declared = family.configs(cfg)
    assert len(set(declared)) == len(declared) and len({str(c) for c in declared}) == len(declared)
    found = family.findings(cfg)
    assert len({f.id for f in found}) == len(found)
    section = families.section_key(params, name)
    unmet = {f.id: f.statement.unmet(declared, section) for f in found if f.statement.unmet(declared, section)}
    assert not unmet, f"the default params leave findings unjudged: {unmet}"
    assert set(family.book) <= set(declared), "the book table names configurations the params do not define"


def test_capacity_findings_follow_its_params():
    from conftest import REPO

    from trainlab.families import capacity
    from trainlab.params import load

    cfg = capacity.FAMILY.check(load(REPO / "params.yaml")["families"]["capacity"], "families.capacity",
                                load(REPO / "params.yaml"))
    # On results where every configuration learns perfectly, width and depth make no difference.
    declared = capacity.FAMILY.configs(cfg)
    perfect = pd.concat([finals({c: [1.0] * 8}, m) for c in declared for m in ("val_accuracy", "loss")])
    verdicts = {r["id"]: r["verdict"] for r in F.judge(capacity.FAMILY.findings(cfg), perfect, declared,
                                                       "families.capacity")}
    assert verdicts["one_node_fails"] == F.DOES_NOT_HOLD
    assert verdicts["six_seven_nodes_near_perfect"] == F.HOLDS
    assert verdicts["more_nodes_higher_test_accuracy"] == F.INCONCLUSIVE
    # The claim texts say the widths the params chose, and leaving out nodes=1 leaves one_node_fails unjudged.
    narrow = cfg | {"layer_width": 4, "nodes": [2, 3, 4, 5, 6, 7]}
    texts = {f.id: f.claim for f in capacity.FAMILY.findings(narrow)}
    assert "layers of 4 nodes" in texts["one_to_three_layers_near_perfect"]
    unjudged = {r["id"]: r for r in F.judge(capacity.FAMILY.findings(narrow), perfect,
                                            capacity.FAMILY.configs(narrow), "families.capacity")}
    assert unjudged["one_node_fails"]["note"] == "not judged: `families.capacity.nodes` has no 1"
    assert unjudged["six_seven_nodes_near_perfect"]["verdict"] == F.HOLDS


def test_findings_leave_diverged_seeds_out_exactly_like_the_metrics_summary():
    """A seed whose loss became NaN still scores an 'accuracy' (NaN weights predict one class):
    findings must not judge on it, just as reports/metrics leaves it out of n."""
    from trainlab.engine.trial import TrialResult
    from trainlab.stats.results import history_frame, summarize

    nan = math.nan
    runs = [TrialResult(NODES(1), seed, {"loss": np.array([1.0, nan if seed <= 3 else 0.9]),
                                           "val_loss": np.array([1.0, nan if seed <= 3 else 0.9]),
                                           "val_accuracy": np.array([0.05, 0.05 if seed <= 3 else 0.4 + seed / 100])},
                        2 if seed <= 3 else None, [])
            for seed in range(1, 6)]
    summary = summarize(runs)["nodes=1"]
    assert summary["diverged"] == 3 and summary["val_accuracy"]["n"] == 2
    result = judged_on(F.below(acc(NODES(1)), 0.5), history_frame(runs))
    assert [s["n"] for s in result["samples"]] == [summary["val_accuracy"]["n"]]
    assert result["samples"][0]["mean"] == summary["val_accuracy"]["mean"]
    assert "3 diverged or undefined left out" in result["samples"][0]["note"]
    counted = judged_on(F.above(F.diverged(NODES(1)), 0.1), history_frame(runs))
    assert counted["samples"][0]["n"] == 5  # the count of diverged seeds still sees every seed


def judged_on(statement: F.Statement, history: pd.DataFrame) -> dict:
    return F.judge([F.Finding("claim", "a claim", statement)], history, [NODES(1)], SECTION)[0]


def test_paired_spread_test_keeps_alpha_on_heavy_tailed_seeds_where_pitman_morgans_pearson_test_does_not():
    """Equal spread, exchangeable pairs with a shared seed effect, 10 % of runs failing wildly (heavy tails):
    the permutation test rejects at about 5 %; Pitman-Morgan's Pearson test far more often. On normal seeds
    it finds a doubled spread more often than not."""
    from scipy import stats

    rng = np.random.default_rng(21)
    reps, n = 1500, 30

    def pair(scale_x: float = 1.0, failing: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        shared = rng.normal(size=n)
        x, y = scale_x * rng.normal(size=n), rng.normal(size=n)
        x = np.where(rng.random(n) < failing, 8 * x, x)
        y = np.where(rng.random(n) < failing, 8 * y, y)
        return x + shared, y + shared

    permutation = pearson = 0
    for _ in range(reps):
        x, y = pair()
        permutation += F.paired_spread_test(x, y, permutations=999)[1] < 0.05
        pearson += stats.pearsonr(x + y, x - y).pvalue < 0.05
    low = stats.binomtest(permutation, reps).proportion_ci(0.95).low
    print(f"\nfalse rejections at 5 %: permutation {permutation / reps:.3f}, Pearson {pearson / reps:.3f}")
    assert low <= 0.05 and permutation / reps < 0.07
    assert stats.binomtest(pearson, reps).proportion_ci(0.95).low > 0.15
    power = np.mean([F.paired_spread_test(*pair(2.0, failing=0.0), permutations=999)[1] < 0.05
                     for _ in range(300)])
    print(f"power for a doubled spread on normal seeds: {power:.2f}")
    assert power > 0.5
    x, y = pair()
    assert F.paired_spread_test(x, y) == F.paired_spread_test(x, y)  # the same data, the same p


# ------------------------------------------------ tests that fit the data, estimates and one-run shares

NUDGE = [0.11, -0.04, 0.09, 0.03, 0.13, -0.02, 0.08, 0.05]  # paired t-test against 0: p = 0.041


def test_bimodal_rule_splits_solving_and_failing_seeds_and_leaves_normal_or_discrete_seeds_alone():
    rng = np.random.default_rng(3)
    assert F.bimodal(np.array([0.85, 0.86, 0.84, 0.85, 0.87, 0.5, 0.85, 0.86, 0.84, 0.85]))  # one seed fails
    assert not any(F.bimodal(rng.normal(0.8, 0.01, 20)) for _ in range(200))
    assert not F.bimodal(np.array([1.0] * 8 + [0.998] * 2))  # a test set's resolution is not a second mode
    assert not F.bimodal(np.array([0.85, 0.86, 0.5, 0.5]))  # too few seeds to tell


def test_a_bimodal_comparison_is_the_share_of_seeds_where_a_beats_b_never_a_t_test():
    solving = [0.85, 0.86, 0.84, 0.85, 0.87, 0.50, 0.85, 0.86, 0.84, 0.50]
    steady = [0.78, 0.79, 0.77, 0.78, 0.78, 0.79, 0.77, 0.78, 0.79, 0.78]
    result = judged(F.greater(acc("solving"), acc("steady")), finals({"solving": solving, "steady": steady}))
    assert result["shape"] == "bimodal" and result["test"].startswith("sign test over shared seeds")
    assert result["estimate"]["kind"] == "share of seeds where A beats B" and result["estimate"]["value"] == 0.8
    assert result["one_run"]["share"] == 0.8 and result["one_run"]["low"] < 0.5 < result["one_run"]["high"]


def test_all_of_holds_when_every_part_holds_at_the_whole_level_and_fails_only_at_level_over_parts():
    results = finals({"a": BASE, "b": [x + d for x, d in zip(BASE, NUDGE)]})
    part = F.greater(acc("b"), acc("a"))  # p = 0.041: holds at 0.05, not at 0.05 / 2
    both = judged(F.all_of(part, F.above(acc("a"), 0.3)), results)
    assert both["verdict"] == F.HOLDS and both["parts"][0]["p_value"] > 0.025
    against = judged(F.all_of(F.less(acc("b"), acc("a")), F.above(acc("a"), 0.3)), results)
    assert against["verdict"] == F.INCONCLUSIVE and against["parts"][0]["level_against"] == 0.025
    # one run shows an all_of when one seed shows every part
    assert both["one_run"]["share"] == pytest.approx(6 / 8)


def test_equivalence_needs_both_one_sided_tests_and_an_interval_off_zero_inside_the_margin_is_equivalent():
    a = [0.80 + 0.002 * i for i in range(10)]
    b = [x + 0.015 + 0.003 * (-1) ** i for i, x in enumerate(a)]  # b − a = 0.015 ± 0.003: not 0, inside ±0.03
    results = finals({"a": a, "b": b})
    inside = judged(F.similar(acc("b"), acc("a"), margin=0.03), results)
    assert inside["verdict"] == F.EQUIVALENT and inside["estimate"]["low"] > 0
    assert inside["estimate"]["kind"] == "difference (paired)" and inside["estimate"]["margin"] == 0.03
    # at the margin's edge neither one-sided test can reject: not equivalent, and not shown outside either
    edge = judged(F.similar(acc("b"), acc("a"), margin=0.015), results)
    assert edge["verdict"] == F.INCONCLUSIVE
    # "does not hold" picks its side from the data: a two-sided test, half the level per side
    assert judged(F.similar(acc("b"), acc("a"), margin=0.01), results)["level_outside"] == 0.025


def test_threshold_estimate_is_the_share_that_solves_and_for_epochs_to_the_share_reaching_it_by_then():
    results = finals({"a": BASE})
    share = judged(F.above(acc("a"), 0.5), results)
    assert share["estimate"]["kind"] == "share of seeds above 0.5"
    assert share["one_run"]["share"] == 3 / 8  # 0.5 itself is not above it
    curves = [[0.5, 0.8, 0.9, 0.9]] * 5 + [[0.1, 0.2, 0.3, 0.4]] * 3
    reached = judged(F.below(F.epochs_to(cid("c"), "val_accuracy", 0.78), 3), history({"c": curves}))
    assert reached["shape"] == "censored" and reached["estimate"]["value"] == 5 / 8
    assert reached["estimate"]["kind"] == "share reaching the threshold by epoch 3 (Kaplan-Meier)"


def test_a_spread_has_an_estimate_but_no_one_run_share():
    rng = np.random.default_rng(0)
    results = finals({"wide": list(0.5 + 0.1 * rng.standard_normal(10)),
                      "narrow": list(0.5 + 0.005 * rng.standard_normal(10))})
    result = judged(F.wider(acc("wide"), acc("narrow")), results)
    assert result["one_run"] is None and result["estimate"]["low"] > 1
