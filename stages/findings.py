"""The book's findings about a family, as statements checked over seeds.

A family module declares what the book says, next to the experiment it describes::

    FINDINGS = [
        Finding("one_node_fails", "With 1 node the model does not learn the problem",
                below(final("nodes=1", "val_accuracy"), 0.5)),
        Finding("more_nodes_lower_loss", "More nodes reach a lower training loss",
                decreasing("nodes", "loss")),
    ]
    BOOK = {"nodes=1": {"val_accuracy": 0.138}}   # numbers the book prints; (mean, std) for repeats

A *quantity* turns the history into one number per seed (``final``, ``at_epoch``, ``best``,
``epochs_to``, ``rebound``, ``volatility``, ``diverged``, ``difference``, or ``custom``).
A *statement* compares quantities with a two-sided scipy test:

================  ==========================================================================
``above/below``   one-sample t-test of the mean against a threshold
``greater/less``  Welch two-sample t-test (``test="paired"``: paired t-test on the seeds both
                  configurations share; ``test="mannwhitney"``: Mann-Whitney U, for censored
                  counts such as ``epochs_to``)
``similar``       equivalence within ±margin: two one-sided Welch tests (TOST)
``wider``         spread over seeds: Brown-Forsythe test (Levene, centred on the median)
``increasing``    Spearman rank correlation of the per-seed values with the study's
``decreasing``    numeric setting (``nodes=1..7``), over all seeds of the study
``all_of``        every part must hold
================  ==========================================================================

Verdict rule (alpha = 0.05), the same for every statement: the test's null hypothesis is "no
effect" (mean equals the threshold, means equal, spreads equal, no trend). **holds** when
p < alpha and the estimated effect points the way the book says; **does not hold** when p < alpha
and it points the other way; **inconclusive** when p ≥ alpha, or when a configuration has fewer
than two finite values (not run, or diverged). ``similar`` holds when the TOST p < alpha (the
90 % interval of the difference lies inside ±margin) and does not hold when the 95 % interval lies
wholly outside it. ``all_of`` holds when every part holds, does not hold when any part does not
hold, and reports the largest p of its parts (an intersection-union test). When every seed gives
the same value the comparison is exact (p = 0 if the values differ, 1 if they are equal).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from stages.results import describe

ALPHA = 0.05
HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
CODE = {HOLDS: 1, INCONCLUSIVE: 0, DOES_NOT_HOLD: -1}
RULE = (f"Each finding is a two-sided test over seeds at alpha = {ALPHA}: it holds when p < {ALPHA} and the "
        "effect points the way the book says, does not hold when p < alpha and the effect points the other way, "
        "and is inconclusive otherwise (too few seeds to tell, or a configuration that was not run). "
        + "A seed that diverged (its loss or val_loss became NaN/inf at some epoch) is left out of every quantity "
        "but the count of diverged seeds, exactly as the metrics summary leaves it out of n.")
DIVERGENCE_METRICS = ("loss", "val_loss")  # the engine's rule for a diverged seed (stages.engine.population)
ID = re.compile(r"^[a-z0-9_]+$")


class MissingResults(LookupError):
    """A finding names a configuration or metric this run did not produce."""


# ---------------------------------------------------------------- the results a family produced

class Results:
    """A family's history indexed for the quantities: per (config, metric), a seed x epoch table."""

    def __init__(self, history: pd.DataFrame):
        self.history = history
        self.configs = list(history["config"].unique())
        self._rows = dict(iter(history.groupby(["config", "metric"], sort=False)))
        self._curves: dict[tuple[str, str], pd.DataFrame] = {}
        watched = history[history["metric"].isin(DIVERGENCE_METRICS)]
        bad = watched[~np.isfinite(watched["value"].to_numpy(dtype=float))]
        self.diverged = {config: set(rows["seed"]) for config, rows in bad.groupby("config")}

    def healthy(self, config: str, values: pd.Series) -> pd.Series:
        """``values`` (indexed by seed) with the seeds of ``config`` that diverged set to NaN."""
        out = values.astype(float).copy()
        out[out.index.isin(list(self.diverged.get(config, ())))] = math.nan
        return out

    def curves(self, config: str, metric: str) -> pd.DataFrame:
        """One row per seed, one column per epoch (NaN where a curve is shorter)."""
        key = (config, metric)
        if key not in self._rows:
            raise MissingResults(f"no {metric} results for {config} (not in this run's params?)")
        if key not in self._curves:
            self._curves[key] = self._rows[key].pivot(index="seed", columns="epoch", values="value").sort_index(axis=1)
        return self._curves[key]

    def study_configs(self, study: str) -> list[tuple[float, str]]:
        """The configurations ``<study>=<number>`` with their numeric setting, in order."""
        found = []
        for config in self.configs:
            name, _, value = config.partition("=")
            if name == study:
                try:
                    found.append((float(value), config))
                except ValueError:
                    continue
        if len(found) < 2:
            raise MissingResults(f"fewer than two numeric configurations of study {study!r}")
        return sorted(found)


@dataclass(frozen=True)
class Sample:
    """One number per seed (NaN where undefined), with what the reader should know about it."""

    label: str
    values: pd.Series
    note: str = ""

    def finite(self) -> np.ndarray:
        v = self.values.to_numpy(dtype=float)
        return v[np.isfinite(v)]

    def summary(self) -> dict:
        left_out = len(self.values) - len(self.finite())
        note = "; ".join(p for p in (self.note, f"{left_out} non-finite (diverged) left out" if left_out else "") if p)
        return {"label": self.label, **describe(list(self.finite())), "note": note}


@dataclass(frozen=True)
class Quantity:
    """A number per seed computed from the results, e.g. the final test accuracy of ``nodes=1``."""

    label: str
    compute: Callable[[Results], Sample] = field(repr=False)

    def sample(self, results: Results) -> Sample:
        return self.compute(results)


def _per_seed(label: str, config: str, metric: str, reduce: Callable[[np.ndarray], float],
              keep_diverged: bool = False) -> Quantity:
    """A quantity that reduces each seed's curve of one metric to a number (NaN for a diverged seed)."""
    def compute(results: Results) -> Sample:
        curves = results.curves(config, metric)
        values = pd.Series({seed: reduce(row.to_numpy(dtype=float)) for seed, row in curves.iterrows()}, dtype=float)
        return Sample(label, values if keep_diverged else results.healthy(config, values))
    return Quantity(label, compute)


def final(config: str, metric: str) -> Quantity:
    """The metric at the last epoch (NaN for a seed that diverged)."""
    return _per_seed(f"{metric} of {config} (final)", config, metric, lambda c: float(c[-1]))


def at_epoch(config: str, metric: str, epoch: int) -> Quantity:
    """The metric at one epoch (epochs count from 1)."""
    return _per_seed(f"{metric} of {config} at epoch {epoch}", config, metric,
                     lambda c: float(c[epoch - 1]) if epoch <= len(c) else math.nan)


def best(config: str, metric: str, mode: str = "max") -> Quantity:
    """The best value over epochs (``mode`` max or min)."""
    pick = np.nanmax if mode == "max" else np.nanmin
    return _per_seed(f"{mode} {metric} of {config} over epochs", config, metric, lambda c: float(pick(c)))


def epochs_to(config: str, metric: str, threshold: float, below: bool = False) -> Quantity:
    """The first epoch at which the metric reaches ``threshold`` (≥, or ≤ with ``below``).

    A seed that never reaches it counts as epochs + 1 (censored; the note says how many): compare
    such counts with ``test="mannwhitney"``, which only uses their order.
    """
    label = f"epochs until {metric} of {config} {'≤' if below else '≥'} {threshold:g}"

    def compute(results: Results) -> Sample:
        curves = results.curves(config, metric)
        never = curves.shape[1] + 1
        reached = (curves <= threshold) if below else (curves >= threshold)
        values = reached.to_numpy().argmax(axis=1) + 1.0
        values[~reached.to_numpy().any(axis=1)] = never
        values = results.healthy(config, pd.Series(values, index=curves.index))
        count = int((values == never).sum())
        return Sample(label, values,
                      f"{count} never reached (counted as {never})" if count else "")
    return Quantity(label, compute)


def rebound(config: str, metric: str = "loss") -> Quantity:
    """How far the curve climbs back above its lowest value so far (0 for a curve that only falls)."""
    def climb(curve: np.ndarray) -> float:
        curve = curve[np.isfinite(curve)]
        return float(np.max(curve - np.minimum.accumulate(curve))) if len(curve) else math.nan
    return _per_seed(f"largest rise of {metric} of {config} above its running minimum", config, metric, climb)


def volatility(config: str, metric: str, last: int | None = None) -> Quantity:
    """Mean absolute change between consecutive epochs over the last ``last`` epochs (default: second half)."""
    def swing(curve: np.ndarray) -> float:
        window = curve[-(last or max(2, len(curve) // 2)):]
        return float(np.mean(np.abs(np.diff(window)))) if len(window) > 1 else math.nan
    span = f"last {last} epochs" if last else "second half"
    return _per_seed(f"mean epoch-to-epoch change of {metric} of {config} ({span})", config, metric, swing)


def diverged(config: str, metric: str = "loss") -> Quantity:
    """1 for a seed whose curve became NaN/inf, else 0."""
    return _per_seed(f"{config} diverged (1 = yes)", config, metric, lambda c: float(not np.all(np.isfinite(c))),
                     keep_diverged=True)


def difference(a: Quantity, b: Quantity) -> Quantity:
    """``a - b`` seed by seed (the seeds both have)."""
    def compute(results: Results) -> Sample:
        sa, sb = a.sample(results), b.sample(results)
        return Sample(f"{a.label} − {b.label}", (sa.values - sb.values).dropna(), "paired by seed")
    return Quantity(f"{a.label} − {b.label}", compute)


def custom(label: str, compute: Callable[[Results], pd.Series]) -> Quantity:
    """Any per-seed number: ``compute(results)`` returns a Series indexed by seed."""
    return Quantity(label, lambda results: Sample(label, compute(results).astype(float)))


# ---------------------------------------------------------------- statements and their tests

def _num(x: float | None, digits: int = 6) -> float | None:
    """A JSON-safe rounded number (None for NaN/inf)."""
    if x is None or not math.isfinite(float(x)):
        return None
    return float(f"{float(x):.{digits}g}")


def _verdict(p: float | None, right_way: bool) -> str:
    if p is None or not math.isfinite(p) or p >= ALPHA:
        return INCONCLUSIVE
    return HOLDS if right_way else DOES_NOT_HOLD


def _outcome(verdict: str, test: str, statistic: float | None, p: float | None, estimate: float | None,
             estimate_label: str, ci: Sequence[float] | None, samples: Sequence[Sample], note: str = "") -> dict:
    return {"verdict": verdict, "code": CODE[verdict], "test": test, "statistic": _num(statistic),
            "p_value": _num(p, 4), "estimate": _num(estimate), "estimate_label": estimate_label,
            "ci95": None if ci is None else [_num(ci[0]), _num(ci[1])],
            "samples": [s.summary() for s in samples], "note": note}


def _not_enough(samples: Sequence[Sample], test: str, why: str = "") -> dict:
    why = why or "fewer than two finite values: " + ", ".join(f"{s.label} (n={len(s.finite())})" for s in samples)
    return _outcome(INCONCLUSIVE, test, None, None, None, "", None, samples, why)


def _constant(*arrays: np.ndarray) -> bool:
    return all(np.ptp(a) == 0 for a in arrays)


class Statement:
    """Something the book says, checkable on the results."""

    text: str

    def judge(self, results: Results) -> dict:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Threshold(Statement):
    quantity: Quantity
    threshold: float
    side: int  # +1: above, -1: below

    @property
    def text(self) -> str:
        return f"mean {self.quantity.label} {'>' if self.side > 0 else '<'} {self.threshold:g}"

    def judge(self, results: Results) -> dict:
        test = "one-sample t-test (two-sided)"
        sample = self.quantity.sample(results)
        x = sample.finite()
        if len(x) < 2:
            return _not_enough([sample], test)
        if _constant(x):
            diff = x[0] - self.threshold
            p, stat, ci, test = (0.0 if diff else 1.0), None, (x[0], x[0]), "exact (no spread over seeds)"
        else:
            r = stats.ttest_1samp(x, self.threshold)
            p, stat, ci = float(r.pvalue), float(r.statistic), r.confidence_interval(0.95)
            diff = x.mean() - self.threshold
        return _outcome(_verdict(p, diff * self.side > 0), test, stat, p, float(np.mean(x)),
                        "mean", (float(ci[0]), float(ci[1])), [sample])


@dataclass(frozen=True)
class Compare(Statement):
    a: Quantity
    b: Quantity
    side: int  # +1: a greater than b, -1: a less than b
    test: str = "welch"

    @property
    def text(self) -> str:
        return f"{self.a.label} {'>' if self.side > 0 else '<'} {self.b.label}"

    def judge(self, results: Results) -> dict:
        sa, sb = self.a.sample(results), self.b.sample(results)
        if self.test == "paired":
            both = pd.concat([sa.values, sb.values], axis=1).dropna()
            both = both[np.isfinite(both).all(axis=1)]
            x, y = both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy()
        else:
            x, y = sa.finite(), sb.finite()
        names = {"welch": "Welch two-sample t-test (two-sided)", "paired": "paired t-test over seeds (two-sided)",
                 "mannwhitney": "Mann-Whitney U test (two-sided)"}
        test = names[self.test]
        if len(x) < 2 or len(y) < 2:
            return _not_enough([sa, sb], test)
        ci = None
        if self.test == "mannwhitney":
            diff = float(np.median(x) - np.median(y))
            label = "difference of medians"
            if _constant(np.concatenate([x, y])):
                stat, p = None, 1.0
            else:
                r = stats.mannwhitneyu(x, y, alternative="two-sided")
                stat, p = float(r.statistic), float(r.pvalue)
        else:
            label = "mean difference"
            diff = float(np.mean(x - y) if self.test == "paired" else np.mean(x) - np.mean(y))
            if _constant(x - y) if self.test == "paired" else _constant(x, y):
                stat, p, ci, test = None, (0.0 if diff else 1.0), (diff, diff), "exact (no spread over seeds)"
            else:
                r = stats.ttest_rel(x, y) if self.test == "paired" else stats.ttest_ind(x, y, equal_var=False)
                stat, p, ci = float(r.statistic), float(r.pvalue), r.confidence_interval(0.95)
        return _outcome(_verdict(p, diff * self.side > 0), test, stat, p, diff, label,
                        None if ci is None else (float(ci[0]), float(ci[1])), [sa, sb])


@dataclass(frozen=True)
class Similar(Statement):
    a: Quantity
    b: Quantity
    margin: float

    @property
    def text(self) -> str:
        return f"|{self.a.label} − {self.b.label}| < {self.margin:g}"

    def judge(self, results: Results) -> dict:
        test = f"equivalence within ±{self.margin:g}: two one-sided Welch t-tests (TOST)"
        sa, sb = self.a.sample(results), self.b.sample(results)
        x, y = sa.finite(), sb.finite()
        if len(x) < 2 or len(y) < 2:
            return _not_enough([sa, sb], test)
        diff = float(np.mean(x) - np.mean(y))
        if _constant(x, y):
            inside = abs(diff) < self.margin
            return _outcome(HOLDS if inside else DOES_NOT_HOLD, "exact (no spread over seeds)", None,
                            0.0, diff, "mean difference", (diff, diff), [sa, sb])
        p_low = stats.ttest_ind(x + self.margin, y, equal_var=False, alternative="greater").pvalue
        p_high = stats.ttest_ind(x - self.margin, y, equal_var=False, alternative="less").pvalue
        p = float(max(p_low, p_high))
        ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
        if p < ALPHA:
            verdict = HOLDS
        elif ci.low > self.margin or ci.high < -self.margin:
            verdict = DOES_NOT_HOLD
        else:
            verdict = INCONCLUSIVE
        return _outcome(verdict, test, None, p, diff, "mean difference", (float(ci.low), float(ci.high)), [sa, sb])


@dataclass(frozen=True)
class Wider(Statement):
    a: Quantity
    b: Quantity

    @property
    def text(self) -> str:
        return f"spread over seeds of {self.a.label} > that of {self.b.label}"

    def judge(self, results: Results) -> dict:
        test = "Brown-Forsythe test of equal spread (two-sided)"
        sa, sb = self.a.sample(results), self.b.sample(results)
        x, y = sa.finite(), sb.finite()
        if len(x) < 2 or len(y) < 2:
            return _not_enough([sa, sb], test)
        sx, sy = float(np.std(x, ddof=1)), float(np.std(y, ddof=1))
        if _constant(np.abs(x - np.median(x)), np.abs(y - np.median(y))):
            stat, p = None, (0.0 if sx != sy else 1.0)
        else:
            r = stats.levene(x, y, center="median")
            stat, p = float(r.statistic), float(r.pvalue)
        ratio = sx / sy if sy > 0 else (math.inf if sx > 0 else 1.0)
        return _outcome(_verdict(p, sx > sy), test, stat, p, ratio, "ratio of standard deviations", None, [sa, sb])


@dataclass(frozen=True)
class Trend(Statement):
    study: str
    metric: str
    side: int  # +1 increasing, -1 decreasing
    measure: Callable[[str, str], Quantity] = final

    @property
    def text(self) -> str:
        return f"{self.metric} {'rises' if self.side > 0 else 'falls'} with {self.study} (per-seed values)"

    def judge(self, results: Results) -> dict:
        test = f"Spearman rank correlation with {self.study} (two-sided)"
        settings = results.study_configs(self.study)
        samples = [self.measure(config, self.metric).sample(results) for _, config in settings]
        xs, ys = [], []
        for (setting, _), sample in zip(settings, samples):
            ys.extend(sample.finite())
            xs.extend([setting] * len(sample.finite()))
        if len(ys) < 3 or len(set(xs)) < 2:
            return _not_enough(samples, test)
        if np.ptp(ys) == 0:
            return _outcome(INCONCLUSIVE, test, None, 1.0, 0.0, "Spearman rho", None, samples, "every value equal")
        r = stats.spearmanr(xs, ys)
        rho, p = float(r.statistic), float(r.pvalue)
        return _outcome(_verdict(p, rho * self.side > 0), test, rho, p, rho, "Spearman rho", None, samples)


@dataclass(frozen=True)
class AllOf(Statement):
    parts: tuple[Statement, ...]

    @property
    def text(self) -> str:
        return " and ".join(part.text for part in self.parts)

    def judge(self, results: Results) -> dict:
        judged = [judge_statement(part, results) for part in self.parts]
        verdicts = [j["verdict"] for j in judged]
        verdict = (DOES_NOT_HOLD if DOES_NOT_HOLD in verdicts else HOLDS if all(v == HOLDS for v in verdicts)
                   else INCONCLUSIVE)
        ps = [j["p_value"] for j in judged]
        p = None if any(v is None for v in ps) else max(ps)
        outcome = _outcome(verdict, "all parts must hold (largest p of the parts)", None, p, None, "", None, [])
        unique = {s["label"]: s for j in judged for s in j["samples"]}  # parts may share a configuration
        outcome["samples"] = list(unique.values())
        outcome["parts"] = [{"statement": part.text, **j} for part, j in zip(self.parts, judged)]
        return outcome


def above(quantity: Quantity, threshold: float) -> Statement:
    return Threshold(quantity, threshold, +1)


def below(quantity: Quantity, threshold: float) -> Statement:
    return Threshold(quantity, threshold, -1)


def greater(a: Quantity, b: Quantity, test: str = "welch") -> Statement:
    return Compare(a, b, +1, test)


def less(a: Quantity, b: Quantity, test: str = "welch") -> Statement:
    return Compare(a, b, -1, test)


def similar(a: Quantity, b: Quantity, margin: float) -> Statement:
    return Similar(a, b, margin)


def wider(a: Quantity, b: Quantity) -> Statement:
    return Wider(a, b)


def increasing(study: str, metric: str, measure: Callable[[str, str], Quantity] = final) -> Statement:
    return Trend(study, metric, +1, measure)


def decreasing(study: str, metric: str, measure: Callable[[str, str], Quantity] = final) -> Statement:
    return Trend(study, metric, -1, measure)


def all_of(*parts: Statement) -> Statement:
    return AllOf(tuple(parts))


# ---------------------------------------------------------------- findings

@dataclass(frozen=True)
class Finding:
    """One lesson of the book: a stable id (it is a metrics key), the claim in words, and its check."""

    id: str
    claim: str
    statement: Statement

    def __post_init__(self) -> None:
        if not ID.match(self.id):
            raise ValueError(f"finding id {self.id!r}: use lower-case letters, digits and underscores")


def judge_statement(statement: Statement, results: Results) -> dict:
    try:
        with warnings.catch_warnings():
            # scipy warns when one group has no spread (e.g. every seed at accuracy 1.0); the test is still exact.
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
            return statement.judge(results)
    except MissingResults as err:
        return _outcome(INCONCLUSIVE, "not run", None, None, None, "", None, [], str(err))


def judge(findings: Sequence[Finding], history: pd.DataFrame) -> list[dict]:
    """Every finding's verdict, test, statistic, p-value and interval over the seeds in ``history``."""
    ids = [f.id for f in findings]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"duplicate finding ids: {', '.join(duplicated)}")
    results = Results(history)
    return [{"id": f.id, "claim": f.claim, "statement": f.statement.text, **judge_statement(f.statement, results)}
            for f in findings]


def book_table(book: Mapping[str, Mapping[str, float | tuple[float, float]]], history: pd.DataFrame,
               summary: Mapping[str, Mapping] | None = None) -> list[dict]:
    """The book's printed numbers beside ours: mean ± std, 95 % interval and n over seeds.

    Ours come from the family's summary (reports/metrics/<family>.json) when it has the metric,
    else from the final values in the history (e.g. ``lr``).
    """
    results = Results(history)
    rows = []
    for config, metrics in book.items():
        for metric, printed in metrics.items():
            book_mean, book_std = (printed if isinstance(printed, tuple | list) else (printed, None))
            ours = (summary or {}).get(config, {}).get(metric)
            if not isinstance(ours, Mapping):
                try:
                    ours = final(config, metric).sample(results).summary()
                except MissingResults:
                    ours = describe([])
            inside = (ours["n"] > 0 and ours["ci95_low"] is not None
                      and ours["ci95_low"] - 1e-9 <= book_mean <= ours["ci95_high"] + 1e-9)
            rows.append({"config": config, "metric": metric, "book": book_mean, "book_std": book_std,
                         **{k: ours[k] for k in ("mean", "std", "n", "ci95_low", "ci95_high")},
                         "book_inside_ci95": bool(inside)})
    return rows
