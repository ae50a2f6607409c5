"""Seeds spent where a finding needs them: a group-sequential design over rounds of seeds.

A family trains in rounds: ``start`` seeds per configuration, then ``block`` more at a time up to
``cap`` (params ``sequential``; a family's section may override any of the three, and a family that
sets its own ``seeds: N`` runs one look at N seeds). After each round every undecided finding is
tested on all the seeds so far; a configuration gets the next block only while an undecided finding
reads it. Same params, same seeds, same verdicts: the seeds are ``seed, seed + 1, ...`` in order and
every decision is a function of the history.

**Error control.** Testing again after each round until p < 0.05 is not valid (optional stopping
inflates the error). Each finding instead has a Lan-DeMets alpha-spending boundary over the planned
looks n_1 < ... < n_K = cap (information fraction t_k = n_k / cap): it may spend at most
alpha_f(t_k) of its error by look k, with the O'Brien-Fleming-type spending function
the Pocock-type alpha ln(1 + (e - 1) t) (the default: about even over looks, so a large effect is decided
at the first round) or the O'Brien-Fleming-type 4(1 - Phi(z_{1-alpha/4} / sqrt t)) (alpha/2 per side;
strict early, nearly alpha at the cap). The boundary c_k is found by the recursive
integration of Armitage, McPherson and Rowe (1969) for the joint normal law of the look
statistics (corr sqrt(n_j / n_k)); a test's two-sided p-value at look k is compared with the nominal
level 2(1 - Phi(c_k)). For the t-tests (paired, one-sample, TOST) the levels are instead calibrated on
the exact null law of the repeated t statistic (``t_levels``): with 5 seeds the normal levels would
let a t-test err up to ~15 % more often than alpha. References: Lan & DeMets (1983), Biometrika 70:659;
O'Brien & Fleming (1979), Biometrics 35:549; Pocock (1977), Biometrika 64:191; Jennison & Turnbull (2000),
*Group Sequential Methods with Applications to Clinical Trials*, ch. 7 (spending) and 11 (t-tests).

**Multiplicity.** The findings of one family share alpha = 0.05. Each judged finding starts with
alpha / m, and a finding made of several parts (``all_of``) splits its share over its parts, so both a
false *holds* and a false *does not hold* stay within it. When a part is decided (its null rejected),
its share passes to the parts still undecided, in proportion to their shares, and they are tested again
at the same look with the boundaries of their larger alpha: the weighted Holm step-down, which in a
group-sequential design stays valid when each hypothesis keeps its spending function and its boundaries
are recomputed for the alpha it holds (Holm 1979, Scand. J. Statist. 6:65; Maurer & Bretz 2013,
Statist. Biopharm. Res. 5:311). A share is never taken back, and a part left untested (its finding
already failed) keeps its share unused. Across the report, each family's probability of any false
verdict is at most 0.05 (not the report's as a whole).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize, stats

from trainlab import params as P
from trainlab.configs import ConfigId
from trainlab.stats import findings as F

SPENDING = ("obrien_fleming", "pocock")
POWER = 0.8  # the power the "seeds needed" estimate of an undecided finding aims at


@dataclass(frozen=True)
class Design:
    """The planned looks and the error each family may spend."""

    start: int
    block: int
    cap: int
    spending: str = "obrien_fleming"
    alpha: float = F.ALPHA

    @property
    def looks(self) -> tuple[int, ...]:
        """Seeds per configuration at each look: start, start + block, ..., cap."""
        looks = list(range(self.start, self.cap, self.block)) or [self.cap]
        return tuple(looks + [self.cap]) if looks[-1] != self.cap else tuple(looks)

    def describe(self) -> dict:
        return {"start": self.start, "block": self.block, "cap": self.cap, "spending": self.spending,
                "alpha": self.alpha, "looks": list(self.looks)}


def design_for(settings: Mapping, cfg: Mapping, key: str = "families") -> Design:
    """The family's design: the checked top-level ``sequential`` (``stage.load_params``), overridden key by
    key by the section's own ``sequential``. A section's own ``seeds: N`` (and no ``sequential``), e.g. the
    book's 30 repeats, means one look at N seeds; so does a top-level ``seeds: N`` (null: rounds).
    """
    merged = dict(P.SEQUENTIAL_DEFAULTS) | dict(settings.get("sequential") or {})
    merged |= P.check_sequential(cfg.get("sequential") or {}, f"{key}.sequential")
    fixed = cfg.get("seeds") or settings.get("seeds")  # the family's own count, else the top level's
    if fixed and not cfg.get("sequential"):
        merged |= {"start": fixed, "cap": fixed}
    if merged["cap"] < merged["start"]:
        raise P.ParamsError(f"{key}.sequential.cap: {merged['cap']} is below start {merged['start']}; "
                            "allowed: an integer ≥ start")
    return Design(**merged)


# ---------------------------------------------------------------- boundaries

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


def uses_t(statement: F.Statement) -> bool:
    """Whether the statement decides with a t-test (calibrated levels, ``t_levels``)."""
    return (isinstance(statement, F.Compare) and statement.test != "mannwhitney") \
        or (isinstance(statement, F.Threshold) and statement.test == "t") or isinstance(statement, F.Similar)


def levels_for(statement: F.Statement, alpha: float, looks: tuple[int, ...], kind: str) -> tuple[float, ...]:
    """The nominal two-sided level of each look for this statement's test."""
    return t_levels(alpha, looks, kind) if uses_t(statement) else nominal_levels(alpha, looks, kind)


def seeds_needed(p: float | None, n: int, alpha: float, power: float = POWER) -> int | None:
    """Seeds a fixed-sample test at ``alpha`` would need for ``power``, were the observed effect true.

    The observed two-sided p at n seeds gives z = Phi^-1(1 - p/2); the effect's z grows as sqrt(n).
    None when no effect is seen (p = 1).
    """
    if p is None or not math.isfinite(p) or p >= 1:
        return None
    z_obs = float(stats.norm.isf(max(p, 1e-300) / 2))
    if z_obs <= 0:
        return None
    z_need = float(stats.norm.isf(alpha / 2) + stats.norm.ppf(power))
    return int(math.ceil(n * (z_need / z_obs) ** 2))


# ---------------------------------------------------------------- judging over looks

@dataclass
class _Unit:
    """One statement tested sequentially (a finding, or one part of an ``all_of``)."""

    statement: F.Statement
    weight: float  # the unit's share of the family's alpha before any was passed on (Holm's weight)
    alpha: float = 0.0  # the alpha it holds now: its weight over the weights still unrejected, times alpha
    judged: dict | None = None
    judged_alpha: float | None = None  # the alpha of its last test
    look: int | None = None  # the look (0-based) at which it was decided
    last: int = 0  # the last look (0-based) at which it was judged

    @property
    def decided(self) -> bool:
        return self.look is not None


class Sequential:
    """The sequential state of a family's findings; ``look(history, k)`` after each round of seeds."""

    def __init__(self, findings: Sequence[F.Finding], declared: Sequence[ConfigId], section: str,
                 design: Design, base_seed: int):
        ids = [f.id for f in findings]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"duplicate finding ids: {', '.join(duplicated)}")
        self.findings, self.declared, self.section = list(findings), list(declared), section
        self.design, self.base_seed = design, base_seed
        self.unmet = {f.id: f.statement.unmet(declared, section) for f in self.findings}
        self.book_only = {f.id: f.statement.reason for f in self.findings if isinstance(f.statement, F.BookDataOnly)}
        judged = [f for f in self.findings if not self.unmet[f.id] and f.id not in self.book_only]
        self.units = {f.id: [_Unit(part, 1 / max(1, len(judged)) / len(f.statement.parts()))
                             for part in f.statement.parts()] for f in judged}
        self._pass_on_alpha()
        self.looks_done = 0

    def _pass_on_alpha(self) -> None:
        """Weighted Holm: the undecided units share the family's alpha in proportion to their weights."""
        undecided = [u for units in self.units.values() for u in units if not u.decided]
        total = sum(u.weight for u in undecided)
        for u in undecided:
            u.alpha = self.design.alpha * u.weight / total

    def seeds(self, k: int) -> list[int]:
        return [self.base_seed + i for i in range(self.design.looks[k])]

    def _open(self, units: list[_Unit]) -> bool:
        """A finding is open while no part has failed and some part is undecided."""
        failed = any(u.decided and u.judged["verdict"] == F.DOES_NOT_HOLD for u in units)
        return not failed and any(not u.decided for u in units)

    def needed(self) -> list[ConfigId]:
        """The configurations an open finding still reads: they get the next block of seeds."""
        need = {c for units in self.units.values() if self._open(units)
                for u in units if not u.decided for c in u.statement.needs(self.declared)}
        return [c for c in self.declared if c in need]

    def look(self, history: pd.DataFrame, k: int) -> list[ConfigId]:
        """Judge the open findings on the seeds of look ``k``; return the configurations that need more."""
        seeds = self.seeds(k)
        results = F.Results(history[history["seed"].isin(seeds)], self.declared)
        looks = self.design.looks
        while True:  # Holm's step-down within the look: test again while a decision frees alpha
            decided = False
            for units in self.units.values():
                if not self._open(units):
                    continue
                for u in units:
                    if u.decided or (u.last == k and u.judged_alpha == u.alpha):
                        continue
                    level = levels_for(u.statement, u.alpha, looks, self.design.spending)[k]
                    u.judged, u.last, u.judged_alpha = F.judge_statement(u.statement, results, level), k, u.alpha
                    if u.judged["verdict"] not in (F.INCONCLUSIVE, F.NOT_JUDGED):
                        u.look, decided = k, True
            if not decided:
                break
            self._pass_on_alpha()
        self.looks_done = k + 1
        return self.needed() if k + 1 < len(looks) else []

    def outcomes(self) -> list[dict]:
        """Each finding's verdict with its test, the boundary it crossed and the round it stopped at."""
        out, looks, kind = [], self.design.looks, self.design.spending
        for f in self.findings:
            head = {"id": f.id, "claim": f.claim, "statement": f.statement.text}
            if f.id in self.book_only:
                out.append(head | F.book_data_only(self.book_only[f.id]))
                continue
            if self.unmet[f.id]:
                out.append(head | F._outcome(F.NOT_JUDGED, "not judged", None, None, None, "", None, [],
                                             "not judged: " + "; ".join(self.unmet[f.id])))
                continue
            units = self.units[f.id]
            parts = []
            for u in units:
                judged = dict(u.judged or F._not_enough([], "not reached"))
                at = u.look if u.decided else u.last
                alpha = u.judged_alpha or u.alpha
                levels = levels_for(u.statement, alpha, looks, kind)
                seq = {"alpha": F._num(alpha), "round": at + 1, "seeds": looks[at],
                       "boundary_p": F._num(levels[at], 4),
                       "boundary_z": F._num(boundaries(alpha, looks, kind)[at], 4)}
                failed = any(v.decided and v.judged["verdict"] == F.DOES_NOT_HOLD for v in units)
                # the last look was the cap: say what more seeds would take (a part that could not be judged,
                # e.g. an input another stage writes is missing, stays not judged)
                if not u.decided and not failed and judged["verdict"] != F.NOT_JUDGED:
                    judged["verdict"], judged["code"] = F.UNDECIDED, F.CODE[F.UNDECIDED]
                    seq["seeds_needed"] = seeds_needed(judged.get("p_value"), looks[at], alpha)
                parts.append(judged | {"sequential": seq})
            if len(units) == 1:
                outcome = parts[0]
            else:
                outcome = F.combine_parts([u.statement for u in units], parts)
                if outcome["verdict"] == F.INCONCLUSIVE:
                    outcome["verdict"], outcome["code"] = F.UNDECIDED, F.CODE[F.UNDECIDED]
                decided = [p for p in parts if p["verdict"] != F.UNDECIDED]
                stop = (min((p for p in parts if p["verdict"] == F.DOES_NOT_HOLD),
                            key=lambda p: p["sequential"]["round"], default=None)
                        or max(parts, key=lambda p: p["sequential"]["round"]))
                needed = [p["sequential"].get("seeds_needed") for p in parts if p["verdict"] == F.UNDECIDED]
                outcome["sequential"] = {"alpha": stop["sequential"]["alpha"], "round": stop["sequential"]["round"],
                                         "seeds": stop["sequential"]["seeds"], "parts_decided": len(decided),
                                         "boundary_p": stop["sequential"]["boundary_p"],
                                         "boundary_z": stop["sequential"]["boundary_z"]}
                if needed:
                    outcome["sequential"]["seeds_needed"] = (None if None in needed else max(needed))
            out.append(head | outcome)
        return out


def judge(findings: Sequence[F.Finding], history: pd.DataFrame, declared: Sequence[ConfigId], section: str,
          design: Design, base_seed: int) -> list[dict]:
    """Replay the rounds on a family's history: the verdicts ``train`` reached, and where each stopped."""
    state = Sequential(findings, declared, section, design, base_seed)
    have = history.groupby("config")["seed"].unique() if len(history) else pd.Series(dtype=object)
    for k in range(len(design.looks)):
        need = state.needed() if k else [c for c in declared]
        if not need:
            break
        seeds = set(state.seeds(k))
        if any(not seeds <= set(have.get(str(c), [])) for c in need if k):
            raise ValueError(f"the history lacks the seeds of round {k + 1} that {section} needs: retrain it")
        state.look(history, k)
    return state.outcomes()


def seeds_per_config(history: pd.DataFrame) -> dict[str, int]:
    """How many seeds each configuration got."""
    if not len(history):
        return {}
    return {str(c): int(n) for c, n in history.groupby("config", sort=False)["seed"].nunique().items()}


def train_rounds(run_round: Callable[[list[int], list[ConfigId] | None], list],
                 history_of: Callable[[list], pd.DataFrame], findings: Sequence[F.Finding],
                 declared: Sequence[ConfigId], section: str, design: Design, base_seed: int,
                 whole: bool = False) -> tuple[list, list[dict]]:
    """Train in rounds until every finding is decided or the cap is reached.

    ``run_round(seeds, configs)`` trains ``configs`` (None: all) on the new ``seeds`` and returns their
    results; ``history_of(results)`` makes the history table. Returns every result and one record
    per round (the seeds it added and the configurations that got them; ``whole``: every round trains
    every configuration, as a family trained in phases does).
    """
    state = Sequential(findings, declared, section, design, base_seed)
    results, rounds, need = [], [], list(declared)
    looks = design.looks
    for k, n in enumerate(looks):
        done = looks[k - 1] if k else 0
        new = [base_seed + i for i in range(done, n)]
        results += run_round(new, None if k == 0 else need)
        rounds.append({"round": k + 1, "seeds": new,
                       "configs": [str(c) for c in (declared if k == 0 or whole else need)]})
        need = state.look(history_of(results), k)
        rounds[-1]["open_findings"] = [f.id for f in state.findings if f.id in state.units
                                       and state._open(state.units[f.id])]
        print(f"[{section}] round {k + 1}: {n} seeds; {len(rounds[-1]['open_findings'])} findings undecided"
              + (f", {len(need)} configurations get more seeds" if need else ""), file=sys.stderr)
        if not need:
            break
    return results, rounds


def train_family(family, cfg: dict, section: str, design: Design, base_seed: int,
                 execute: Callable[[list], list]) -> tuple[list, list[dict]]:
    """Train a family (``trainlab.family.Family``) in rounds: the configurations that undecided findings read
    get the next block of seeds; a family trained in phases (its own ``train``) reruns whole on each block.
    """
    from trainlab.stats import results as R

    def run_round(seeds: list[int], configs: list[ConfigId] | None) -> list:
        return family.run(cfg, seeds, execute, configs)

    return train_rounds(run_round, R.history_frame, family.judged_findings(cfg), family.configs(cfg), section,
                        design, base_seed, whole=family.train is not None)
