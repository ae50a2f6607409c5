"""Group-sequential boundaries: the nominal level a test must go below at each look.

A finding is tested after every round of seeds at looks n_1 < ... < n_K = cap. Its error is spent
over the looks by a Lan-DeMets spending function of the information fraction t_k = n_k / cap, so
that, with "no effect", the chance of any verdict by look k is at most alpha(t_k):

- ``boundaries`` / ``nominal_levels``: normal-theory boundaries (Armitage, McPherson and Rowe 1969) for
  tests whose statistic is close to normal (rank, trend and permutation tests);
- ``t_levels``: levels calibrated on the exact null law of the repeated t statistic (t-tests);
- ``sign_level``: exact levels of the sign test (and of a share tested against 1/2), enumerated from the
  binomial law of the signs at each look: no normal approximation and no simulation. A discrete test
  cannot spend its alpha exactly; what a look leaves unspent is carried to the next look, so the chance
  of a verdict by look k under "no effect" is at most alpha(t_k) exactly.

``Look`` is what a statement is told when it is judged inside the design: the alpha it holds, the looks
and which one this is. It chooses the level of the test it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats


def spent(kind: str, alpha: float, t: float) -> float:
    """The error a design may have spent by information fraction ``t`` (Lan-DeMets)."""
    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    if kind == "obrien_fleming":  # alpha / 2 per side, each spent as Lan-DeMets' one-sided O'Brien-Fleming
        return float(4 * stats.norm.sf(stats.norm.isf(alpha / 4) / math.sqrt(t)))
    return float(alpha * math.log(1 + (math.e - 1) * t))


@lru_cache(maxsize=512)
def boundaries(alpha: float, looks: tuple[int, ...], kind: str = "obrien_fleming", points: int = 801) -> tuple:
    """Two-sided boundaries c_1..c_K for the look statistics Z_k (reject when |Z_k| ≥ c_k).

    Z_k = S_k / sqrt(n_k) with S a sum of independent increments, so Z_k given Z_{k-1} = u is
    normal with mean u sqrt(n_{k-1}/n_k) and variance (n_k - n_{k-1}) / n_k. The density of Z_k on
    the continuation region is carried on a grid; c_k solves P(exit at k) = alpha(t_k) - alpha(t_{k-1}).
    """
    cap = looks[-1]
    out, grid, density, previous = [], None, None, 0.0
    for k, n in enumerate(looks):
        target = spent(kind, alpha, n / cap) - previous
        if k == 0:
            c = float(stats.norm.ppf(1 - target / 2)) if target > 0 else math.inf

            grid = np.linspace(-c, c, points) if math.isfinite(c) else np.linspace(-8, 8, points)
            density = stats.norm.pdf(grid)
        else:
            scale = math.sqrt(looks[k - 1] / n)
            sd = math.sqrt((n - looks[k - 1]) / n)
            weights = np.full(points, grid[1] - grid[0])
            weights[[0, -1]] /= 2  # trapezoid rule
            mass = density * weights

            def exit_probability(c: float, mean: np.ndarray = grid * scale, mass: np.ndarray = mass,
                                 sd: float = sd) -> float:
                return float(np.sum(mass * (stats.norm.sf((c - mean) / sd) + stats.norm.cdf((-c - mean) / sd))))

            if target <= 0 or exit_probability(12.0) >= target:
                c = math.inf if target <= 0 else 12.0
            else:
                c = float(optimize.brentq(lambda c, f=exit_probability, t=target: f(c) - t, 1e-6, 12.0, xtol=1e-10))
            upper = c if math.isfinite(c) else 8.0
            new_grid = np.linspace(-upper, upper, points)
            kernel = stats.norm.pdf((new_grid[:, None] - grid[None, :] * scale) / sd) / sd
            density, grid = kernel @ mass, new_grid
        previous += target
        out.append(c)
    return tuple(out)


def nominal_levels(alpha: float, looks: tuple[int, ...], kind: str = "obrien_fleming") -> tuple[float, ...]:
    """The two-sided p-value a test must go below at each look."""
    return tuple(float(2 * stats.norm.sf(c)) if math.isfinite(c) else 0.0 for c in boundaries(alpha, looks, kind))


T_SIMULATIONS = 100_000  # null paths per calibration: the spent error is then within about ±3 % of itself


@lru_cache(maxsize=256)
def t_levels(alpha: float, looks: tuple[int, ...], kind: str = "pocock") -> tuple[float, ...]:
    """Nominal two-sided levels for a t-test repeated at each look, calibrated on its exact null law.

    The normal-theory boundaries assume the look statistics are jointly normal; a t-test on 5 or 10 seeds
    has heavier tails and a random variance, and with the normal levels it errs up to ~15 % more often
    than alpha. Under "no effect" the sequence of t statistics does not depend on the unknown mean or
    spread (it is pivotal), so its law is simulated once (a fixed random seed: the same levels on every
    run) and each look's level is the p-value quantile that spends exactly the error alpha(t_k) leaves.
    """
    rng = np.random.default_rng(20_240_611)
    x = rng.standard_normal((looks[-1], T_SIMULATIONS))
    alive, levels, previous = np.ones(T_SIMULATIONS, bool), [], 0.0
    for n in looks:
        sample = x[:n]
        t = sample.mean(axis=0) / (sample.std(axis=0, ddof=1) / math.sqrt(n))
        p = 2 * stats.t.sf(np.abs(t), n - 1)
        target = spent(kind, alpha, n / looks[-1]) - previous
        candidates = np.sort(p[alive])
        count = int(round(target * T_SIMULATIONS))
        level = float(candidates[count]) if 0 < count < len(candidates) else (0.0 if count <= 0 else 1.0)
        alive &= p >= level
        previous += target
        levels.append(level)
    return tuple(levels)


@lru_cache(maxsize=4096)
def sign_boundary(alpha: float, looks: tuple[int, ...], counts: tuple[int, ...], kind: str) -> int:
    """The smallest |2 S - m| that rejects at the last of ``counts`` (a two-sided sign test).

    ``counts`` are the seeds that count at each look so far (m_j: seeds off the threshold, or pairs not
    tied); under "no effect" each of them is a fair coin, independent of the others, so the number S_j
    of "+" signs is a random walk whose law on the continuation region is carried look by look. At look
    j the rejection region |2 S_j - m_j| >= c_j is the largest whose probability, added to the error
    already spent, stays within alpha(t_j). Returns m + 1 (no rejection possible) where none fits.
    """
    density, previous_m, spent_so_far, c = np.ones(1), 0, 0.0, 0
    for j, m in enumerate(counts):
        step = stats.binom.pmf(np.arange(m - previous_m + 1), m - previous_m, 0.5)
        density = np.convolve(density, step)
        deviation = np.abs(2 * np.arange(m + 1) - m)
        allowed = spent(kind, alpha, looks[j] / looks[-1]) - spent_so_far
        c = m + 1
        for candidate in sorted(set(deviation.tolist()), reverse=True):
            if candidate == 0 or density[deviation >= candidate].sum() > allowed * (1 + 1e-12):
                break
            c = candidate
        rejected = deviation >= c
        spent_so_far += float(density[rejected].sum())
        density = np.where(rejected, 0.0, density)
        previous_m = m
    return int(c)


def sign_p(successes: int, m: int) -> float:
    """The exact two-sided p-value of ``successes`` "+" signs among ``m`` fair coins."""
    if m == 0:
        return 1.0
    return float(stats.binomtest(successes, m, 0.5).pvalue)


def sign_level(alpha: float, looks: tuple[int, ...], counts: tuple[int, ...], kind: str) -> float:
    """The exact two-sided p-value at the boundary of the last look: the sign test rejects when its
    p-value is at most this (0 when no count can reject)."""
    m, c = counts[-1], sign_boundary(alpha, looks, counts, kind)
    if c > m:
        return 0.0
    deviation = np.abs(2 * np.arange(m + 1) - m)
    return float(stats.binom.pmf(np.arange(m + 1), m, 0.5)[deviation >= c].sum())


@dataclass(frozen=True)
class Look:
    """One look of the design at which a statement is judged: the alpha it holds now, the design's looks
    (seeds per configuration), which look this is (0-based) and the spending function."""

    alpha: float
    looks: tuple[int, ...]
    k: int
    spending: str = "pocock"

    def normal(self) -> float:
        return nominal_levels(self.alpha, self.looks, self.spending)[self.k]

    def t(self) -> float:
        return t_levels(self.alpha, self.looks, self.spending)[self.k]

    def sign(self, counts: tuple[int, ...]) -> float:
        """``counts``: the seeds that count at each look up to this one."""
        return sign_level(self.alpha, self.looks, counts, self.spending)

    def with_alpha(self, alpha: float) -> Look:
        return Look(alpha, self.looks, self.k, self.spending)
