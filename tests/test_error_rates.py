"""The false-verdict rate of the real ``Sequential`` / ``judge`` on the shipped design (start 10, block 10,
cap 20, Pocock-type spending, alpha 0.05), with null data of every shape the findings meet: normal,
bimodal (seeds that solve or fail), censored (seeds that never reach a threshold) and a share of seeds
at exactly 1/2; equivalence (TOST) at the edge of its margin. And the exact sign-test boundaries checked
against a brute-force enumeration.

Each Monte Carlo test runs ``REPS`` = 1000 null families and asserts a false-verdict rate ≤ ``BOUND`` =
0.075: a true rate of 0.05 exceeds it with probability 1e-4 (75 of 1000 is 3.7 SD above 50), and a
doubled true rate of 0.10 stays within it with probability 0.005 (75 is 2.6 SD below 100)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trainlab.configs import Study
from trainlab.stats import findings as F
from trainlab.stats import sequential as S

pytestmark = pytest.mark.slow  # Monte Carlo through the real design: 1000 repetitions per rate

RUN = Study("run")
A, B, C, D, E, G, H = (RUN(x) for x in "abcdegh")
SHIPPED = S.Design(start=10, block=10, cap=20, spending="pocock", alpha=0.05)
REPS = 1000
BOUND = 0.075
SEEDS = np.arange(1, 21)


def acc(c):
    return F.final(c, "val_accuracy")


def to_threshold(c):
    return F.epochs_to(c, "val_accuracy", 0.9)


def curves(config, finals: np.ndarray | None = None, reached: np.ndarray | None = None, epochs: int = 2):
    """Per seed a val_accuracy curve ending at ``finals``, or stepping from 0.5 to 0.95 at epoch ``reached``
    (later than ``epochs``: never)."""
    ep = np.arange(1, epochs + 1)
    table = (np.outer(finals, ep / epochs) if reached is None
             else np.where(ep[None, :] >= reached[:, None], 0.95, 0.5))
    return pd.DataFrame({"config": str(config), "study": "run", "seed": np.repeat(SEEDS, epochs),
                         "epoch": np.tile(ep, len(SEEDS)), "metric": "val_accuracy", "value": table.ravel()})


def normal_pair(rng):
    shared = rng.normal(size=20)  # common random numbers: a seed's luck shared by both configurations
    return [curves(c, 0.8 + 0.02 * shared + 0.01 * rng.normal(size=20)) for c in (A, B)]


def bimodal_pair(rng):
    return [curves(c, np.where(rng.random(20) < 0.8, rng.normal(0.85, 0.01, 20), 0.496)) for c in (C, D)]


def censored_pair(rng):
    return [curves(c, reached=rng.geometric(0.15, 20), epochs=10) for c in (E, G)]  # 20 % never reach it


def share_at_half(rng):
    return [curves(H, rng.normal(0.5, 0.1, 20))]


NORMAL = F.Finding("normal", "b beats a", F.greater(acc(B), acc(A)))
BIMODAL = F.Finding("bimodal", "d beats c", F.greater(acc(D), acc(C)))
CENSORED = F.Finding("censored", "e reaches 0.9 sooner than g", F.less(to_threshold(E), to_threshold(G)))
SHARE = F.Finding("share", "h above 0.5", F.above(acc(H), 0.5))
ALL = [A, B, C, D, E, G, H]


def false_verdict_rate(findings, draw, seed: int) -> tuple[float, list[str]]:
    """The share of null families in which the real ``sequential.judge`` gives any verdict (holds or does
    not hold), and the tests it ran."""
    rng = np.random.default_rng(seed)
    false, tests = 0, set()
    for _ in range(REPS):
        history = pd.concat([frame for make in draw for frame in make(rng)], ignore_index=True)
        out = S.judge(findings, history, ALL, "families.null", SHIPPED, 1)
        false += any(o["verdict"] in (F.HOLDS, F.DOES_NOT_HOLD) for o in out)
        tests |= {o["test"].split(":")[0] for o in out}
    return false / REPS, sorted(tests)


@pytest.mark.parametrize("finding, draw, expect", [
    (NORMAL, normal_pair, "paired t-test"),
    (BIMODAL, bimodal_pair, "sign test over shared seeds"),
    (CENSORED, censored_pair, "sign test over shared seeds"),
])
def test_a_finding_with_no_effect_errs_at_most_alpha_on_the_shipped_design(finding, draw, expect):
    rate, tests = false_verdict_rate([finding], [draw], seed=hash(finding.id) % 1000)
    print(f"\n{finding.id}: false verdicts {rate:.3f} over {REPS} null runs ({', '.join(tests)})")
    assert any(t.startswith(expect) for t in tests)
    assert rate <= BOUND


def margin_edge_pair(rng):
    base = 0.8 + 0.02 * rng.normal(size=20)
    return [curves(A, base), curves(B, base + 0.01 + 0.01 * rng.normal(size=20))]  # b − a: 0.01 ± 0.01


def test_a_difference_exactly_at_the_margin_is_called_equivalent_at_most_alpha_of_the_time():
    """TOST through the real design: at the edge of "sameness" (true difference = margin) each one-sided
    test rejects at most alpha, so "equivalent" comes up at most alpha of the time."""
    similar = F.Finding("similar", "b is a within 0.01", F.similar(acc(B), acc(A), margin=0.01))
    rng = np.random.default_rng(31)
    equivalent = 0
    for _ in range(REPS):
        history = pd.concat(margin_edge_pair(rng), ignore_index=True)
        equivalent += S.judge([similar], history, ALL, "families.null", SHIPPED, 1)[0]["verdict"] == F.EQUIVALENT
    print(f"\nTOST at the margin's edge: equivalent in {equivalent / REPS:.3f} of {REPS} runs")
    assert equivalent / REPS <= BOUND


def test_a_family_of_four_null_findings_errs_at_most_alpha_together_on_the_shipped_design():
    """Normal, bimodal, censored and a share at 1/2 in one family: Holm's recycling included."""
    rate, tests = false_verdict_rate([NORMAL, BIMODAL, CENSORED, SHARE],
                                     [normal_pair, bimodal_pair, censored_pair, share_at_half], seed=24)
    print(f"\nfamily of 4: any false verdict {rate:.3f} over {REPS} null families ({', '.join(tests)})")
    assert rate <= BOUND


# ------------------------------------------------ exact sign-test boundaries

def enumerated_rejection(looks: tuple[int, ...], alpha: float) -> list[float]:
    """Brute force: every sequence of ``looks[-1]`` fair signs (no ties), the sign test applied at each look
    with ``sign_boundary``; the exact probability of a first rejection at each look."""
    n = looks[-1]
    signs = np.array(list(itertools.product((1, -1), repeat=n)), dtype=np.int8)
    alive, first = np.ones(len(signs), bool), []
    for k, m in enumerate(looks):
        c = S.sign_boundary(alpha, looks, looks[:k + 1], "pocock")
        reject = alive & (np.abs(signs[:, :m].sum(axis=1)) >= c)
        first.append(reject.sum() / len(signs))
        alive &= ~reject
    return first


def test_exact_sign_boundaries_spend_at_most_the_alpha_of_each_look_and_most_of_it_in_total():
    looks, alpha = (10, 20), 0.05
    first = enumerated_rejection(looks, alpha)
    allowed = [S.spent("pocock", alpha, n / looks[-1]) for n in looks]
    print(f"\nsign test, looks {looks}: spent {np.cumsum(first)} of {allowed}")
    assert np.all(np.cumsum(first) <= np.array(allowed) + 1e-12)
    # a discrete test cannot spend all of it: here 0.0215 at 10 seeds and 0.0077 more at 20 (0.029 of 0.05);
    # the next larger region at 20 seeds would take 0.041 in all, beyond alpha
    assert sum(first) >= 0.5 * alpha
    # the level reported is the exact binomial p at the boundary: p <= level exactly when it rejects
    level = S.sign_level(alpha, looks, looks, "pocock")
    c = S.sign_boundary(alpha, looks, looks, "pocock")
    assert stats.binomtest((20 + c) // 2, 20, 0.5).pvalue <= level < stats.binomtest((20 + c) // 2 - 1, 20).pvalue


def test_ties_lower_the_count_and_the_boundary_follows_it():
    """Seeds tied (or at the threshold) do not count: the boundary at look 2 is computed for the counts seen."""
    fewer = S.sign_boundary(0.05, (10, 20), (8, 15), "pocock")
    assert fewer <= 15 and S.sign_level(0.05, (10, 20), (8, 15), "pocock") > 0
    assert S.sign_boundary(0.05, (10, 20), (3,), "pocock") == 4  # 3 coins cannot reach p < 0.03: none rejects
