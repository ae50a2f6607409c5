"""The sequential design on synthetic data with a known truth: its false-verdict rate under no effect
stays within alpha despite looking after every round (Monte Carlo), its power for a stated effect,
pairing where seeds are shared, and the same inputs giving the same seeds spent and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trainlab import params as P
from trainlab.configs import Study
from trainlab.stats import findings as F
from trainlab.stats import sequential as S
from trainlab.stats.results import COLUMNS

RUN = Study("run")
A, B, C = RUN("a"), RUN("b"), RUN("c")
DESIGN = S.Design(start=5, block=5, cap=30, spending="pocock", alpha=0.05)
REPS = 4000  # the binomial interval of a rate near 0.05 is then about ±0.007


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(0.95)
    return ci.low, ci.high


# ------------------------------------------------ the design's error rate, vectorised over repetitions

def sequential_paired_t(diffs: np.ndarray, design: S.Design, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per repetition (columns of ``diffs``, seeds as rows): the verdict (+1 / -1 / 0 undecided) and the
    seeds spent, deciding at each look with the paired t-test (as ``Compare`` does) against the design's
    nominal levels."""
    levels = S.t_levels(alpha, design.looks, design.spending)
    reps = diffs.shape[1]
    verdict, spent = np.zeros(reps, int), np.full(reps, design.looks[-1])
    open_ = np.ones(reps, bool)
    for n, level in zip(design.looks, levels):
        r = stats.ttest_1samp(diffs[:n], 0.0, axis=0)  # = ttest_rel on the pairs
        stop = open_ & (r.pvalue < level)
        verdict[stop] = np.sign(r.statistic[stop]).astype(int)
        spent[stop] = n
        open_ &= ~stop
    return verdict, spent


def sequential_sign(values: np.ndarray, threshold: float, design: S.Design, alpha: float) -> np.ndarray:
    """The sign test of ``Threshold`` (exact binomial, two-sided) at each look."""
    levels = S.nominal_levels(alpha, design.looks, design.spending)
    verdict, open_ = np.zeros(values.shape[1], int), np.ones(values.shape[1], bool)
    for n, level in zip(design.looks, levels):
        over = (values[:n] > threshold).sum(axis=0)
        p = np.minimum(1.0, 2 * np.minimum(stats.binom.cdf(over, n, 0.5), stats.binom.sf(over - 1, n, 0.5)))
        stop = open_ & (p < level)
        verdict[stop] = np.where(over[stop] * 2 > n, 1, -1)
        open_ &= ~stop
    return verdict


@pytest.mark.parametrize("spending", ["pocock", "obrien_fleming"])
def test_no_effect_false_verdict_rate_at_most_alpha_despite_a_look_per_round(spending):
    design = S.Design(5, 5, 30, spending)
    rng = np.random.default_rng(11)
    verdict, _ = sequential_paired_t(rng.normal(size=(30, REPS)), design, 0.05)
    false = int((verdict != 0).sum())
    low, high = clopper_pearson(false, REPS)
    print(f"\n{spending}: false verdicts {false}/{REPS} = {false / REPS:.4f} (95% CI {low:.4f}-{high:.4f})")
    assert low <= 0.05  # not detectably above alpha
    # naive repeated testing at 0.05 after every round is detectably above it (the reason for the design)
    p_each = np.stack([stats.ttest_1samp(rng.normal(size=(30, REPS))[:n], 0, axis=0).pvalue for n in design.looks])
    assert clopper_pearson(int((p_each < 0.05).any(axis=0).sum()), REPS)[0] > 0.05


def test_family_of_findings_false_verdict_rate_at_most_alpha_with_bonferroni():
    """Four findings with no effect, each at alpha / 4 with its own boundary: the family errs at most alpha."""
    rng = np.random.default_rng(12)
    m = 4
    any_false = np.zeros(REPS, bool)
    for _ in range(m - 1):
        verdict, _ = sequential_paired_t(rng.normal(size=(30, REPS)), DESIGN, 0.05 / m)
        any_false |= verdict != 0
    any_false |= sequential_sign(rng.normal(size=(30, REPS)), 0.0, DESIGN, 0.05 / m) != 0  # a threshold claim
    low, high = clopper_pearson(int(any_false.sum()), REPS)
    print(f"\nfamily of {m}: any false verdict {any_false.mean():.4f} (95% CI {low:.4f}-{high:.4f})")
    assert low <= 0.05


def holm(diffs: np.ndarray, design: S.Design = DESIGN, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Per repetition: the verdicts (+1 / -1 / 0) of m paired-t findings on ``diffs`` (findings × seeds ×
    repetitions) and the look each stopped at, their alpha recycled by weighted Holm (equal weights) at each
    look, as ``Sequential.look`` does."""
    m, reps = diffs.shape[0], diffs.shape[2]
    levels = {r: S.t_levels(alpha / r, design.looks, design.spending) for r in range(1, m + 1)}
    verdict, look_of = np.zeros((m, reps), int), np.full((m, reps), -1)
    for k, n in enumerate(design.looks):
        r = stats.ttest_1samp(diffs[:, :n], 0.0, axis=1)
        while True:
            open_ = verdict == 0
            remaining = open_.sum(axis=0)
            level = np.array([levels[max(1, c)][k] for c in remaining])
            stop = open_ & (r.pvalue < level[None, :])
            if not stop.any():
                break
            verdict[stop] = np.sign(r.statistic[stop]).astype(int)
            look_of[stop] = k
    return verdict, look_of


def test_holm_recycling_keeps_a_familys_false_verdicts_within_alpha_when_true_effects_free_their_alpha():
    """Two findings with a large true effect, decided early, hand their alpha to three with none: the three
    still err (any false verdict) at most alpha, and a half-SD effect is decided more often than Bonferroni."""
    rng = np.random.default_rng(15)

    def simulate(*effects: float) -> np.ndarray:
        return holm(rng.normal(size=(len(effects), DESIGN.looks[-1], REPS)) + np.array(effects)[:, None, None])[0]

    verdict = simulate(1.5, 1.5, 0.0, 0.0, 0.0)
    freed = float((verdict[:2] == 1).all(axis=0).mean())
    false = int((verdict[2:] != 0).any(axis=0).sum())
    low, high = clopper_pearson(false, REPS)
    print(f"\nHolm, 2 effects of 1.5 SD + 3 nulls: both effects decided in {freed:.3f}; any false verdict "
          f"{false / REPS:.4f} (95% CI {low:.4f}-{high:.4f})")
    assert freed > 0.95 and low <= 0.05
    # the worst case for the nulls is all alpha passed to one of them: it then errs at most alpha alone
    verdict = simulate(3.0, 3.0, 3.0, 3.0, 0.0)
    false = int((verdict[4] != 0).sum())
    low, high = clopper_pearson(false, REPS)
    print(f"Holm, 4 effects of 3 SD + 1 null: false verdict {false / REPS:.4f} (95% CI {low:.4f}-{high:.4f})")
    assert low <= 0.05 and high >= 0.05 / 5  # above Bonferroni's share: the recycled alpha is really used
    verdict = simulate(1.5, 1.5, 1.5, 1.5, 0.5)
    bonferroni, _ = sequential_paired_t(rng.normal(0.5, 1.0, size=(30, REPS)), DESIGN, 0.05 / 5)
    power_holm, power_bonferroni = float((verdict[4] == 1).mean()), float((bonferroni == 1).mean())
    print(f"power for 0.5 SD among 5 (4 of 1.5 SD): Holm {power_holm:.3f}, Bonferroni {power_bonferroni:.3f}")
    assert power_holm > power_bonferroni + 0.1


def test_power_for_one_standard_deviation_paired_effect_and_the_seeds_it_spends():
    """A paired difference of 1 SD, a finding among 8 (alpha 0.05 / 8): decided the right way nearly always."""
    rng = np.random.default_rng(13)
    verdict, spent = sequential_paired_t(rng.normal(1.0, 1.0, size=(30, REPS)), DESIGN, 0.05 / 8)
    power = float((verdict == 1).mean())
    print(f"\npower at d = 1, alpha 0.05/8: {power:.3f}; mean seeds {spent.mean():.1f}; "
          f"wrong way {(verdict == -1).sum()}")
    assert power >= 0.95 and (verdict == -1).sum() == 0
    verdict, spent = sequential_paired_t(rng.normal(0.5, 1.0, size=(30, REPS)), DESIGN, 0.05 / 8)
    print(f"power at d = 0.5: {(verdict == 1).mean():.3f}; mean seeds {spent.mean():.1f}")
    assert 0.2 <= (verdict == 1).mean() < 0.5  # half an SD among 8 findings: usually undecided at 30 seeds


def test_boundaries_match_published_lan_demets_values():
    """Five equally spaced looks, two-sided alpha 0.05 (Jennison & Turnbull 2000, table 7.?; gsDesign)."""
    obf = S.boundaries(0.05, (1, 2, 3, 4, 5), "obrien_fleming")
    assert obf == pytest.approx((4.877, 3.357, 2.680, 2.290, 2.031), abs=2e-3)
    pocock = S.boundaries(0.05, (1, 2, 3, 4, 5), "pocock")
    assert pocock == pytest.approx((2.438, 2.427, 2.410, 2.397, 2.388), abs=3e-3)


# ------------------------------------------------ the real Sequential on synthetic histories

def history(values: dict) -> pd.DataFrame:
    """{config: {seed: final value}} as a two-epoch history."""
    rows = [(str(c), c.study, seed, epoch, "val_accuracy", v)
            for c, per_seed in values.items() for seed, value in per_seed.items()
            for epoch, v in ((1, 0.0), (2, float(value)))]
    return pd.DataFrame(rows, columns=COLUMNS)


def fake_family(effects: dict, sd: float = 1.0, correlated: float = 0.0):
    """A run_round that 'trains' a configuration: value = effect + a seed's shared noise + own noise."""
    def value(config, seed):
        shared = np.random.default_rng(seed).normal() * correlated
        own = np.random.default_rng([seed, list(effects).index(config)]).normal() * sd
        return effects[config] + shared + own

    def run_round(seeds, configs):
        return [(c, s, value(c, s)) for c in (configs or list(effects)) for s in seeds]

    def history_of(results):
        per = {}
        for c, s, v in results:
            per.setdefault(c, {})[s] = v
        return history(per)
    return run_round, history_of


def acc(c):
    return F.final(c, "val_accuracy")


FINDINGS = [
    F.Finding("b_greater", "b beats a", F.greater(acc(B), acc(A))),
    F.Finding("c_like_a", "c is a", F.similar(acc(C), acc(A), margin=3.0)),
    F.Finding("c_greater", "c beats a (no effect)", F.greater(acc(C), acc(A))),
]


def test_same_inputs_same_seeds_spent_and_verdicts_and_seeds_go_where_findings_need_them():
    run_round, history_of = fake_family({A: 0.0, B: 10.0, C: 0.0}, sd=1.0)
    outs = []
    for _ in range(2):
        results, rounds = S.train_rounds(run_round, history_of, FINDINGS, [A, B, C], "families.test", DESIGN, 1)
        outs.append((rounds, S.judge(FINDINGS, history_of(results), [A, B, C], "families.test", DESIGN, 1),
                     S.seeds_per_config(history_of(results))))
    assert outs[0] == outs[1]
    rounds, verdicts, seeds = outs[0]
    by_id = {v["id"]: v for v in verdicts}
    assert by_id["b_greater"]["verdict"] == F.HOLDS and by_id["b_greater"]["sequential"]["round"] == 1
    assert by_id["c_like_a"]["verdict"] == F.EQUIVALENT
    assert by_id["c_greater"]["verdict"] == F.UNDECIDED  # no effect: never decided, at the cap
    assert by_id["c_greater"]["sequential"]["seeds"] == 30 and "seeds_needed" in by_id["c_greater"]["sequential"]
    assert seeds == {"run=a": 30, "run=b": 5, "run=c": 30}  # b was only needed in round 1
    assert [r["seeds"][0] for r in rounds] == [1, 6, 11, 16, 21, 26]
    # the replay in evaluate reaches what train decided round by round
    assert [r["open_findings"] for r in rounds][-1] == ["c_greater"]


def test_shared_seeds_paired_test_decides_what_the_unpaired_one_cannot():
    """Common random numbers: a seed's shared noise cancels in the pairs."""
    run_round, history_of = fake_family({A: 0.0, B: 0.3}, sd=0.1, correlated=3.0)
    results = run_round(list(range(1, 11)), None)
    frame = history_of(results)
    paired = F.judge([F.Finding("x", "b > a", F.greater(acc(B), acc(A)))], frame, [A, B], "s")[0]
    assert paired["test"].startswith("paired t-test") and paired["verdict"] == F.HOLDS
    # the same values on different seeds: no pairing, Welch, and the shared noise swamps the effect
    shifted = frame.copy()
    shifted.loc[shifted["config"] == "run=b", "seed"] += 100
    welch = F.judge([F.Finding("x", "b > a", F.greater(acc(B), acc(A)))], shifted, [A, B], "s")[0]
    assert welch["test"].startswith("Welch") and welch["verdict"] == F.INCONCLUSIVE


def test_a_bimodal_threshold_quantity_never_goes_to_a_t_test_even_when_asked():
    values = {A: {s: (0.05 if s in (3, 9) else 0.99 + 0.001 * s) for s in range(1, 21)}}
    frame = history(values)
    sign = F.judge([F.Finding("x", "a solves it", F.above(acc(A), 0.95))], frame, [A], "s")[0]
    t = F.judge([F.Finding("x", "a solves it", F.above(acc(A), 0.95, test="t"))], frame, [A], "s")[0]
    assert sign["test"].startswith("sign test") and sign["verdict"] == F.HOLDS  # 18 of 20 seeds above
    # two failed seeds would drag the mean below 0.95: the seeds are bimodal, so the sign test decides
    assert t["shape"] == "bimodal" and t["test"].startswith("sign test") and t["verdict"] == F.HOLDS
    assert "the sign test instead of a t-test" in t["note"]


def test_vectorised_core_agrees_with_the_real_sequential_class():
    """The Monte Carlo above uses the same tests and boundaries as ``Sequential`` on histories."""
    rng = np.random.default_rng(14)
    finding = [F.Finding("b_vs_a", "b beats a", F.greater(acc(B), acc(A)))]
    for rep in range(8):
        a, d = rng.normal(size=30), rng.normal(0.7, 1.0, size=30)
        frame = history({A: dict(enumerate(a, 1)), B: dict(enumerate(a + d, 1))})
        real = S.judge(finding, frame, [A, B], "s", DESIGN, 1)[0]
        verdict, spent = sequential_paired_t(d[:, None], DESIGN, 0.05)
        code = {F.HOLDS: 1, F.DOES_NOT_HOLD: -1, F.UNDECIDED: 0}[real["verdict"]]
        assert (code, real["sequential"]["seeds"]) == (verdict[0], spent[0]), rep


def test_real_sequential_recycles_alpha_like_the_vectorised_holm():
    """Several findings on synthetic histories: ``Sequential`` decides what the vectorised Holm decides, at the
    same look, and a finding decided only thanks to recycled alpha says so in its alpha."""
    configs = [RUN(str(i)) for i in range(5)]
    base = configs[0]
    findings = [F.Finding(f"f{i}", f"{i} beats base", F.greater(acc(c), acc(base))) for i, c in enumerate(configs[1:])]
    effects = np.array([2.0, 2.0, 2.0, 0.7])
    recycled = 0
    for rep in range(12):
        local = np.random.default_rng([16, rep])
        diffs = local.normal(size=(4, 30)) + effects[:, None]
        values = {base: dict.fromkeys(range(1, 31), 0.0)}
        values |= {c: dict(enumerate(diffs[i], 1)) for i, c in enumerate(configs[1:])}
        real = S.judge(findings, history(values), configs, "s", DESIGN, 1)
        expected, look_of = (a[:, 0] for a in holm(diffs[:, :, None]))
        code = {F.HOLDS: 1, F.DOES_NOT_HOLD: -1, F.UNDECIDED: 0}
        assert [code[v["verdict"]] for v in real] == list(expected), rep
        for v, k in zip(real, look_of):
            if k >= 0:
                assert v["sequential"]["round"] == k + 1, rep
        recycled += real[3]["verdict"] == F.HOLDS and real[3]["sequential"]["alpha"] > 0.05 / 4
    assert recycled > 0


def test_bad_sequential_params_say_which_key_and_what_is_allowed():
    with pytest.raises(P.ParamsError, match=r"sequential\.cap: 3 is below start 5"):
        P.check_sequential({"start": 5, "cap": 3}, "sequential")
    with pytest.raises(P.ParamsError, match=r"families\.x\.sequential\.spending: expected one of"):
        S.design_for({"sequential": {}}, {"sequential": {"spending": "wald"}}, "families.x")
    with pytest.raises(P.ParamsError, match=r"sequential\.blok: unknown key \(did you mean 'block'\?\)"):
        P.check_sequential({"blok": 5}, "sequential")
    assert S.design_for({"sequential": {"cap": 20}}, {"seeds": 30}).looks == (30,)  # a fixed count: one look
    assert S.design_for({}, {"sequential": {"start": 10, "cap": 20}}).looks == (10, 20)  # default block 10
    assert S.design_for({}, {"sequential": {"start": 5, "block": 5, "cap": 15}}).looks == (5, 10, 15)
    assert math.isclose(S.design_for({}, {}).alpha, 0.05)


def test_all_of_stops_when_a_part_fails_and_its_open_parts_are_not_called_undecided_at_the_cap():
    run_round, history_of = fake_family({A: 0.0, B: 10.0, C: 0.0}, sd=1.0)
    finding = [F.Finding("both", "c beats a and b is below a",
                         F.all_of(F.greater(acc(C), acc(A)), F.less(acc(B), acc(A))))]
    results, rounds = S.train_rounds(run_round, history_of, finding, [A, B, C], "s", DESIGN, 1)
    out = S.judge(finding, history_of(results), [A, B, C], "s", DESIGN, 1)[0]
    assert len(rounds) == 1 and out["verdict"] == F.DOES_NOT_HOLD and out["sequential"]["round"] == 1
    assert [p["verdict"] for p in out["parts"]] == [F.INCONCLUSIVE, F.DOES_NOT_HOLD]


def test_a_later_round_trains_only_the_configurations_asked_for_and_shared_experiments_once(tmp_path, monkeypatch):
    """learning_rate's momentum=0 and learning_rate=0.01 are one experiment (SGD(0.01)): asked for both,
    it trains once per seed and both get the result; asked for one, nothing else trains."""
    from conftest import repo_params, write_prepared

    from trainlab.engine.trial import TrialResult
    from trainlab.families import check_family

    family, cfg = check_family(repo_params(), "learning_rate")
    # trials read the prepared data: a fresh clone has none, so make it under a temporary project root
    write_prepared(tmp_path, repo_params(), [cfg["data"]])
    monkeypatch.chdir(tmp_path)
    trained: list = []

    def execute(trials):
        trained.extend(trials)
        return [TrialResult(config=t.config, seed=t.seed, diverged_epoch=None, weights=[], history={},
                            tags=dict(t.tags)) for t in trials]

    momentum0, lr001, lr1 = (c for name in ("momentum=0", "learning_rate=0.01", "learning_rate=1")
                             for c in family.configs(cfg) if str(c) == name)
    results = family.run(cfg, [6, 7], execute, [momentum0, lr001])
    assert sorted((str(r.config), r.seed) for r in results) == [
        ("learning_rate=0.01", 6), ("learning_rate=0.01", 7), ("momentum=0", 6), ("momentum=0", 7)]
    assert len(trained) == 2 and {t.seed for t in trained} == {6, 7}
    trained.clear()
    assert [str(r.config) for r in family.run(cfg, [6], execute, [lr1])] == ["learning_rate=1"]
    assert [str(t.config) for t in trained] == ["learning_rate=1"]


def test_every_family_takes_its_own_sequential_start_block_and_cap():
    """The issue's "per family overridable": each family's section accepts ``sequential`` and the design uses it."""
    import copy

    from trainlab import families

    params = P.load(P.project_root() / P.PARAMS_FILE)
    settings = {"sequential": params.get("sequential"), "seeds": params.get("seeds")}
    for name in params["families"]:
        changed = copy.deepcopy(params)
        changed["families"][name]["sequential"] = {"start": 4, "block": 3, "cap": 10}
        _, cfg = families.check_family(changed, name)
        design = S.design_for(settings, cfg, f"families.{name}")
        assert design.looks == (4, 7, 10), name


SHIPPED = S.Design(start=10, block=10, cap=20, spending="pocock", alpha=0.05)


def test_a_threshold_whose_one_run_share_lies_inside_the_band_is_seed_dependent_at_the_cap():
    above = {11: F.SEED_DEPENDENT, 14: F.UNDECIDED}  # 11 of 20: [0.32, 0.77]; 14 of 20: [0.46, 0.88]
    for count, outcome in above.items():
        solved = set(range(1, 21, 2)) | set(range(12, 12 + 2 * (count - 10), 2))  # half of round 1 solves
        frame = history({A: {s: (0.99 if s in solved else 0.5) for s in range(1, 21)}})
        out = S.judge([F.Finding("x", "a solves it", F.above(acc(A), 0.95))], frame, [A], "s", SHIPPED, 1)[0]
        assert out["verdict"] == outcome and out["code"] == 0, count
        assert out["one_run"]["share"] == count / 20 and out["estimate"]["value"] == count / 20
    assert out["sequential"]["leans"] == F.HOLDS  # 14 of 20: undecided, leaning towards holds


def test_an_undecided_finding_says_which_way_it_leans_and_no_seed_count_for_a_share_of_bimodal_seeds():
    rng = np.random.default_rng(5)
    a = rng.normal(size=20)
    z = rng.normal(size=20)
    d = -0.1 + 0.5 * (z - z.mean()) / z.std(ddof=1)  # b − a: mean −0.1, SD 0.5 (t = −0.89 at 20 seeds)
    frame = history({A: dict(enumerate(a, 1)), B: dict(enumerate(a + d, 1))})
    out = S.judge([F.Finding("x", "b beats a", F.greater(acc(B), acc(A)))], frame, [A, B], "s", SHIPPED, 1)[0]
    assert out["verdict"] == F.UNDECIDED and out["sequential"]["leans"] == F.DOES_NOT_HOLD
    assert out["sequential"]["seeds_needed"] > 20  # seeds that would decide it the way it leans: against
    assert S.seeds_needed(0.2, 20, 0.05, shape="bimodal") is None
    assert S.seeds_needed(0.2, 20, 0.05, shape="censored") is None


def test_a_finding_that_failed_passes_its_alpha_on_and_its_open_parts_take_none():
    run_round, history_of = fake_family({A: 0.0, B: 10.0, C: 0.0}, sd=1.0)
    findings = [F.Finding("both", "c beats a and b is below a",
                          F.all_of(F.greater(acc(C), acc(A)), F.less(acc(B), acc(A)))),
                F.Finding("c_vs_a", "c beats a", F.greater(acc(C), acc(A)))]
    state = S.Sequential(findings, [A, B, C], "s", SHIPPED, 1)
    state.look(history_of(run_round(list(range(1, 11)), None)), 0)
    assert not state._open(state.units["both"])  # b is far above a: the part fails at once
    assert state.alpha["c_vs_a"] == pytest.approx(0.05)  # the failed finding's alpha went to the open one
    assert state.alpha["both"] == pytest.approx(0.025)  # and the failed one took nothing more
