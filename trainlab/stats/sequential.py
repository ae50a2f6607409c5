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
alpha_f(t_k) of its error by look k, with the Pocock-type spending function alpha ln(1 + (e - 1) t)
(the default: about even over looks, so a large effect is decided at the first round) or the
O'Brien-Fleming-type 4(1 - Phi(z_{1-alpha/4} / sqrt t)) (alpha/2 per side; strict early, nearly alpha
at the cap). Each test takes the boundary that fits it (``trainlab.stats.boundaries``): rank, trend and
permutation tests the normal-theory boundary (Armitage, McPherson and Rowe 1969); t-tests (paired,
one-sample, TOST) levels calibrated on the exact null law of the repeated t statistic; the sign test
and a share tested against 1/2 exact boundaries enumerated from the binomial law at each look.
References: Lan & DeMets (1983), Biometrika 70:659; O'Brien & Fleming (1979), Biometrics 35:549;
Pocock (1977), Biometrika 64:191; Jennison & Turnbull (2000), *Group Sequential Methods with
Applications to Clinical Trials*, ch. 7 (spending), 11 (t-tests) and 12 (discrete data).

**Multiplicity.** The findings of one family share alpha = 0.05. Each judged finding starts with
alpha / m. A finding made of several parts (``all_of``) holds only when every part holds, so each part
is tested for *holds* at the finding's whole alpha (intersection-union: no split); one part shown
wrong makes it *does not hold*, so a part counts against it only at alpha / parts. When a finding is
decided (held, or failed), its alpha passes to the findings still open, in proportion to their
shares, and they are tested again at the same look with the boundaries of their larger alpha: the
weighted Holm step-down, which in a group-sequential design stays valid when each hypothesis keeps its
spending function and its boundaries are recomputed for the alpha it holds (Holm 1979, Scand. J.
Statist. 6:65; Maurer & Bretz 2013, Statist. Biopharm. Res. 5:311). A share is never taken back, and a
finding that failed takes no more. Across the report, each family's probability of any false verdict is
at most 0.05 (not the report's as a whole). *Seed-dependent* and *undecided at the cap* are not
verdicts: they reject nothing and spend no alpha.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from scipy import stats

from trainlab import params as P
from trainlab.configs import ConfigId
from trainlab.stats import findings as F
from trainlab.stats.boundaries import Look, boundaries, nominal_levels, sign_boundary, sign_level, spent, t_levels

__all__ = ["Design", "Look", "Sequential", "boundaries", "design_for", "judge", "nominal_levels", "seeds_needed",
           "sign_boundary", "sign_level", "spent", "t_levels", "train_family", "train_rounds"]

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


# ---------------------------------------------------------------- boundaries (trainlab.stats.boundaries)

def seeds_needed(p: float | None, n: int, alpha: float, power: float = POWER, shape: str = "continuous") -> int | None:
    """Seeds a fixed-sample test at ``alpha`` would need for ``power``, were the observed effect true:
    they would decide the finding the way its estimate leans now (``leans``), which may be *does not hold*.

    The observed two-sided p at n seeds gives z = Phi^-1(1 - p/2); the effect's z grows as sqrt(n).
    None when no effect is seen (p = 1), and for a bimodal or censored quantity, whose share of seeds
    does not grow into significance the way a mean difference does.
    """
    if shape in ("bimodal", "censored") or p is None or not math.isfinite(p) or p >= 1:
        return None
    z_obs = float(stats.norm.isf(max(p, 1e-300) / 2))
    if z_obs <= 0:
        return None
    z_need = float(stats.norm.isf(alpha / 2) + stats.norm.ppf(power))
    return int(math.ceil(n * (z_need / z_obs) ** 2))


def seed_dependent(statement: F.Statement, judged: dict) -> bool:
    """A threshold claim whose one-run share, with every seed the design allows, lies inside the band."""
    shown = judged.get("one_run")
    low, high = F.SEED_DEPENDENT_BAND
    return (isinstance(statement, F.Threshold) and shown is not None and shown["low"] is not None
            and low <= shown["low"] and shown["high"] <= high)


# ---------------------------------------------------------------- judging over looks

@dataclass
class _Unit:
    """One statement tested sequentially (a finding, or one part of an ``all_of``)."""

    statement: F.Statement
    judged: dict | None = None
    judged_alpha: float | None = None  # the alpha of its last test
    look: int | None = None  # the look (0-based) at which it was decided
    last: int = 0  # the last look (0-based) at which it was judged

    @property
    def decided(self) -> bool:
        return self.look is not None


class Sequential:
    """The sequential state of a family's findings; ``look(history, k)`` after each round of seeds.

    Alpha belongs to findings, not parts: each judged finding starts with alpha / m (its Holm weight) and
    every part of an ``all_of`` is tested at its finding's alpha (``F.judge_part``). A finding that is
    decided (held, or failed) passes its alpha to the findings still open.
    """

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
        self.units = {f.id: [_Unit(part) for part in f.statement.parts()] for f in judged}
        self.weight = {f.id: 1 / max(1, len(judged)) for f in judged}  # Holm's weights, equal
        self.alpha: dict[str, float] = {}
        self.results: dict[str, F.Results] = {}  # the seeds each finding was last judged on
        self._pass_on_alpha()
        self.looks_done = 0

    def _pass_on_alpha(self) -> None:
        """Weighted Holm: the open findings share the family's alpha in proportion to their weights (a
        decided finding, held or failed, keeps what it had and takes no more)."""
        open_ = [i for i, units in self.units.items() if self._open(units)]
        total = sum(self.weight[i] for i in open_)
        for i in open_:
            self.alpha[i] = self.design.alpha * self.weight[i] / total

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
        while True:  # Holm's step-down within the look: test again while a decided finding frees alpha
            closed = False
            for fid, units in self.units.items():
                if not self._open(units):
                    continue
                alpha = self.alpha[fid]
                look = Look(alpha, self.design.looks, k, self.design.spending)
                self.results[fid] = results
                for u in units:
                    if u.decided or (u.last == k and u.judged_alpha == alpha):
                        continue
                    u.judged = F.judge_part(u.statement, results, look, len(units))
                    u.last, u.judged_alpha = k, alpha
                    if u.judged["verdict"] not in (F.INCONCLUSIVE, F.NOT_JUDGED):
                        u.look = k
                closed |= not self._open(units)
            if not closed:
                break
            self._pass_on_alpha()
        self.looks_done = k + 1
        return self.needed() if k + 1 < len(self.design.looks) else []

    def outcomes(self) -> list[dict]:
        """Each finding's outcome with its estimate, one-run share, test, the boundary it crossed and the
        round it stopped at."""
        out, looks, kind = [], self.design.looks, self.design.spending
        for f in self.findings:
            head = {"id": f.id, "claim": f.claim, "statement": f.statement.text}
            if f.id in self.book_only:
                out.append(head | F.book_data_only(self.book_only[f.id]))
                continue
            if self.unmet[f.id]:
                out.append(head | F.not_judged(self.unmet[f.id]))
                continue
            units = self.units[f.id]
            failed = any(v.decided and v.judged["verdict"] == F.DOES_NOT_HOLD for v in units)
            parts = []
            for u in units:
                judged = dict(u.judged or F._not_enough([], "not reached"))
                at = u.look if u.decided else u.last
                alpha = u.judged_alpha or self.alpha[f.id]
                seq = {"alpha": F._num(alpha), "round": at + 1, "seeds": looks[at],
                       "boundary_p": judged.get("level"),
                       "boundary_z": F._num(boundaries(alpha, looks, kind)[at], 4)}
                # the last look was the cap: seed-dependent, or undecided and which way it leans (a part that
                # could not be judged, e.g. an input another stage writes is missing, stays not judged)
                if not u.decided and not failed and judged["verdict"] != F.NOT_JUDGED:
                    if seed_dependent(u.statement, judged):
                        judged["verdict"] = F.SEED_DEPENDENT
                    else:
                        judged["verdict"] = F.UNDECIDED
                        seq["leans"] = judged.get("leans")
                        seq["seeds_needed"] = seeds_needed(judged.get("p_value"), looks[at], alpha,
                                                           shape=judged.get("shape", "continuous"))
                    judged["code"] = F.CODE[judged["verdict"]]
                parts.append(judged | {"sequential": seq})
            if len(units) == 1:
                outcome = parts[0]
            else:
                shown = F.one_run(f.statement.seen(self.results[f.id])) if f.id in self.results else None
                outcome = F.combine_parts([u.statement for u in units], parts, shown)
                decided = [p for p in parts if p["verdict"] not in (F.UNDECIDED, F.SEED_DEPENDENT)]
                stop = (min((p for p in parts if p["verdict"] == F.DOES_NOT_HOLD),
                            key=lambda p: p["sequential"]["round"], default=None)
                        or max(parts, key=lambda p: p["sequential"]["round"]))
                outcome["sequential"] = {"alpha": stop["sequential"]["alpha"], "round": stop["sequential"]["round"],
                                         "seeds": stop["sequential"]["seeds"], "parts_decided": len(decided),
                                         "boundary_p": stop["sequential"]["boundary_p"],
                                         "boundary_z": stop["sequential"]["boundary_z"]}
                undecided = [p for p in parts if p["verdict"] == F.UNDECIDED]
                if outcome["verdict"] == F.UNDECIDED and undecided:
                    needed = [p["sequential"].get("seeds_needed") for p in undecided]
                    outcome["sequential"]["leans"] = outcome.get("leans")
                    outcome["sequential"]["seeds_needed"] = None if None in needed else max(needed)
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
