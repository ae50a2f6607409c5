"""The book's findings about a family, as statements checked over seeds.

A family module declares what the book says, next to the experiment it describes::

    FINDINGS = [
        Finding("one_node_fails", "With 1 node the model does not learn the problem",
                below(final(NODES(1), "val_accuracy"), 0.5)),
        Finding("more_nodes_lower_loss", "More nodes reach a lower training loss",
                decreasing(NODES, "loss")),
    ]

where ``NODES = Study("nodes")`` (``trainlab.configs``): quantities name configurations by id, never by
string. A family builds its findings from its validated params, so ids and thresholds are the ones it
ran with; a finding that needs a configuration the params left out is **not judged**, and says which
params key lacks which value.

A *quantity* turns the history into one number per seed (``final``, ``at_epoch``, ``best``,
``epochs_to``, ``rebound``, ``volatility``, ``diverged``, ``difference``, or ``custom``), with the
curve measures of ``trainlab.curves``. **Diverged seeds** (loss or test loss NaN/inf at some epoch, the
engine's rule) give no value to any quantity except ``diverged`` itself, exactly as the metrics
summary leaves them out: NaN weights can still score an "accuracy".
A *statement* compares quantities with a two-sided scipy test. Configurations of a family share
their seed list (common random numbers: the same seed, the same initial weights where the
architecture is the same, and the same batch order), so where two samples come from the same seeds
the test pairs them seed by seed, and falls back to an unpaired test only where the seeds differ:

================  ==========================================================================
``above/below``   the share of seeds on the claimed side, tested against 1/2 by the exact
                  binomial (sign) test: a claim about what one run does (``test="t"``: a
                  one-sample t-test of the mean, for a quantity neither bimodal nor censored)
``greater/less``  paired t-test over shared seeds, else Welch; for a bimodal or censored
                  quantity (``shape``) or ``test="mannwhitney"``: the exact sign test of the
                  share of seeds where A beats B (paired), else Mann-Whitney U
``similar``       equivalence within ±margin: two one-sided t-tests (TOST), paired over shared
                  seeds, each at alpha; **equivalent** when both reject, **does not hold** when
                  the difference is shown outside the margin
``wider``         spread over seeds: over shared seeds a permutation test of Pitman-Morgan's idea
                  (``paired_spread_test``), else Brown-Forsythe
``increasing``    Page's trend test over the study's settings with seeds as blocks (shared seeds;
``decreasing``    Wilcoxon signed-rank for two settings), else Spearman rank correlation of the
                  per-seed values with the numeric setting
``all_of``        every part must hold (intersection-union: each part at the whole level for
                  *holds*, at level / parts for *does not hold*)
================  ==========================================================================

Every outcome leads with an ``estimate`` {value, low, high, kind} in the claim's natural unit (a paired
difference, the share of seeds where A beats B, the share of seeds that solve, the share reaching a
threshold by an epoch, a trend coefficient, a ratio of spreads) and ``one_run`` {share, low, high, seeds}:
the share of single seeds in which the statement, as printed, is seen (exact 95 % intervals for shares).

``judge(results, level)`` decides one look at a two-sided ``level``: **holds** when p < level and the
estimated effect points the way the book says, **does not hold** when p < level and it points the
other way, **undecided** otherwise (or when a configuration has fewer than two finite values). The
train stage judges in rounds of seeds with alpha-spending levels (``trainlab.stats.sequential``),
which also turns "undecided" at the last look into **undecided at the cap**. ``judge`` below is the
one-look check at ``ALPHA``. When every seed gives the same value the comparison is exact (p = 0 if
the values differ, 1 if they are equal).
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from trainlab import curves
from trainlab.configs import ConfigId, Study, format_value
from trainlab.stats.boundaries import Look, sign_p
from trainlab.stats.results import bounds, clip_interval, describe

ALPHA = 0.05
HOLDS, DOES_NOT_HOLD, NOT_JUDGED = "holds", "does not hold", "not judged"
EQUIVALENT = "equivalent"            # a claim of sameness, shown within the margin it states
SEED_DEPENDENT = "seed-dependent"    # what one run shows depends on the seed: its share lies inside the band
INCONCLUSIVE = "undecided"           # not decided at this look (more seeds may decide it)
UNDECIDED = "undecided at the cap"   # not decided with every seed the design allows
BOOK_DATA_ONLY = "book data only"   # tied to the book's numbers, and the family trained on other data
HELD = (HOLDS, EQUIVALENT)
CODE = {HOLDS: 1, EQUIVALENT: 1, INCONCLUSIVE: 0, UNDECIDED: 0, SEED_DEPENDENT: 0, DOES_NOT_HOLD: -1,
        NOT_JUDGED: None, BOOK_DATA_ONLY: None}
# A claim about what one run does (a threshold: "1 node stays below 0.5") is seed-dependent when, with every
# seed the design allows, the 95 % interval of the share of seeds showing it lies inside this band: neither
# "most runs" nor "few runs", but a result ("6 nodes solve it in 55 % of runs").
SEED_DEPENDENT_BAND = (0.2, 0.8)
RULE = (f"Each finding is a two-sided test over seeds; the errors of a family's findings together are held at "
        f"alpha = {ALPHA} (each finding starts with alpha / the number of findings and a decided finding passes its "
        "share to the open ones: weighted Holm), and seeds are added in "
        "rounds with an alpha-spending boundary per finding (trainlab.stats.sequential). A finding holds when its test "
        "crosses the boundary and the effect points the way the book says, does not hold when it crosses and "
        "points the other way; a claim of sameness is equivalent when the difference is shown inside its "
        "margin. A claim about what one run does (a threshold) is seed-dependent when, with every seed the "
        f"design allows, the 95 % interval of the share of seeds showing it lies inside [{SEED_DEPENDENT_BAND[0]}, "
        f"{SEED_DEPENDENT_BAND[1]}]; any other finding still short of its boundary there is undecided at the "
        "cap, and says which way it leans. Bimodal and censored quantities are never given to a t-test: "
        "they are compared by the share of seeds where one configuration beats the other (an exact sign "
        "test with exact boundaries). A claim made of parts holds when every part holds at the finding's "
        "alpha (no split: intersection-union) and does not hold when one part is shown wrong at alpha / parts. "
        "A finding that needs a configuration the family's params leave out is not judged, and says "
        "which params key lacks which value. On data other than the book's, a finding tied to the book's numbers "
        "(a threshold its data reaches, a value it prints) is listed as book data only, with the reason, and "
        "the general ones are judged on that data.")
ID = re.compile(r"^[a-z0-9_]+$")


class MissingResults(LookupError):
    """A finding needs a configuration or metric this run did not produce."""


# ---------------------------------------------------------------- the results a family produced

class Results:
    """A family's history indexed for the quantities: per (config, metric), a seed x epoch table.

    ``declared`` are the configurations the family's params define (in the family's order):
    trends over a study read their numeric settings from them, never from the id strings.
    """

    def __init__(self, history: pd.DataFrame, declared: Sequence[ConfigId] = ()):
        self.history = history
        self.declared = list(declared)
        self._rows = dict(iter(history.groupby(["config", "metric"], sort=False)))
        self._curves: dict[tuple[str, str], pd.DataFrame] = {}
        self._diverged: dict[str, pd.Index] = {}

    def curves(self, config: ConfigId, metric: str) -> pd.DataFrame:
        """One row per seed, one column per epoch (NaN where a curve is shorter)."""
        key = (str(config), metric)
        if key not in self._rows:
            raise MissingResults(f"no {metric} results for {config}")
        if key not in self._curves:
            self._curves[key] = self._rows[key].pivot(index="seed", columns="epoch", values="value").sort_index(axis=1)
        return self._curves[key]

    def diverged_seeds(self, config: ConfigId) -> pd.Index:
        """The seeds of ``config`` whose loss or test loss became NaN/inf (the engine's divergence rule)."""
        name = str(config)
        if name not in self._diverged:
            bad: set = set()
            for metric in ("loss", "val_loss"):
                if (name, metric) in self._rows:
                    table = self.curves(config, metric).to_numpy(dtype=float)
                    index = self.curves(config, metric).index
                    bad |= set(index[~np.isfinite(table).all(axis=1)])
            self._diverged[name] = pd.Index(sorted(bad))
        return self._diverged[name]

    def study(self, name: str) -> list[ConfigId]:
        """The declared configurations of one study, in the family's order."""
        return [c for c in self.declared if c.study == name]


@dataclass(frozen=True)
class Sample:
    """One number per seed (NaN where undefined), with what the reader should know about it."""

    label: str
    values: pd.Series
    note: str = ""
    censored: int = 0  # seeds that never reached an epochs-to threshold (their value is epochs + 1)

    def finite(self) -> np.ndarray:
        v = self.values.to_numpy(dtype=float)
        return v[np.isfinite(v)]

    def summary(self) -> dict:
        left_out = len(self.values) - len(self.finite())
        note = "; ".join(p for p in (self.note, f"{left_out} diverged or undefined left out" if left_out else "") if p)
        return {"label": self.label, **describe(list(self.finite())), "note": note}


@dataclass(frozen=True)
class Quantity:
    """A number per seed computed from the results, e.g. the final test accuracy of ``nodes=1``."""

    label: str
    compute: Callable[[Results], Sample] = field(repr=False)
    configs: tuple[ConfigId, ...] = ()  # the configurations it reads

    def sample(self, results: Results) -> Sample:
        return self.compute(results)


def _per_seed(label: str, config: ConfigId, metric: str, reduce: Callable[[np.ndarray], float],
              keep_diverged: bool = False) -> Quantity:
    """A quantity that reduces each seed's curve of one metric to a number (NaN for a diverged seed)."""
    def compute(results: Results) -> Sample:
        table = results.curves(config, metric)
        values = pd.Series({seed: reduce(row.to_numpy(dtype=float)) for seed, row in table.iterrows()}, dtype=float)
        if not keep_diverged:
            values[values.index.isin(results.diverged_seeds(config))] = math.nan
        return Sample(label, values)
    return Quantity(label, compute, (config,))


def final(config: ConfigId, metric: str) -> Quantity:
    """The metric at the last epoch."""
    return _per_seed(f"{metric} of {config} (final)", config, metric, curves.final)


def at_epoch(config: ConfigId, metric: str, epoch: int) -> Quantity:
    """The metric at one epoch (epochs count from 1)."""
    return _per_seed(f"{metric} of {config} at epoch {epoch}", config, metric,
                     lambda c: curves.at_epoch(c, epoch))


def best(config: ConfigId, metric: str, mode: str = "max") -> Quantity:
    """The best value over epochs (``mode`` max or min)."""
    return _per_seed(f"{mode} {metric} of {config} over epochs", config, metric, lambda c: curves.best(c, mode))


def epochs_to(config: ConfigId, metric: str, threshold: float, below: bool = False) -> Quantity:
    """The first epoch at which the metric reaches ``threshold`` (≥, or ≤ with ``below``).

    A seed that never reaches it counts as epochs + 1 (``trainlab.curves``; the note says how many):
    compare such counts with ``test="mannwhitney"``, which only uses their order.
    """
    label = f"epochs until {metric} of {config} {'≤' if below else '≥'} {threshold:g}"
    inner = _per_seed(label, config, metric, lambda c: curves.epochs_to(c, threshold, below))

    def compute(results: Results) -> Sample:
        sample = inner.sample(results)
        never = results.curves(config, metric).shape[1] + 1
        count = int((sample.values == never).sum())
        return Sample(label, sample.values, f"{count} never reached (counted as {never})" if count else "", count)
    return Quantity(label, compute, (config,))


def rebound(config: ConfigId, metric: str = "loss") -> Quantity:
    """How far the curve climbs back above its lowest value so far (0 for a curve that only falls)."""
    return _per_seed(f"largest rise of {metric} of {config} above its running minimum", config, metric,
                     curves.rebound)


def volatility(config: ConfigId, metric: str, last: int | None = None) -> Quantity:
    """Mean absolute change between consecutive epochs over the last ``last`` epochs (default: second half)."""
    span = f"last {last} epochs" if last else "second half"
    return _per_seed(f"mean epoch-to-epoch change of {metric} of {config} ({span})", config, metric,
                     lambda c: curves.volatility(c, last))


def diverged(config: ConfigId, metric: str = "loss") -> Quantity:
    """1 for a seed whose curve became NaN/inf, else 0 (the one quantity that counts diverged seeds)."""
    return _per_seed(f"{config} diverged (1 = yes)", config, metric, curves.diverged, keep_diverged=True)


def difference(a: Quantity, b: Quantity) -> Quantity:
    """``a - b`` seed by seed (the seeds both have)."""
    def compute(results: Results) -> Sample:
        sa, sb = a.sample(results), b.sample(results)
        return Sample(f"{a.label} − {b.label}", (sa.values - sb.values).dropna(), "paired by seed",
                      sa.censored + sb.censored)
    return Quantity(f"{a.label} − {b.label}", compute, a.configs + b.configs)


def custom(label: str, configs: Sequence[ConfigId], compute: Callable[[Results], pd.Series]) -> Quantity:
    """Any per-seed number of ``configs``: ``compute(results)`` returns a Series indexed by seed.

    Diverged seeds of those configurations are left out, as everywhere.
    """
    def sample(results: Results) -> Sample:
        values = compute(results).astype(float)
        for config in configs:
            values[values.index.isin(results.diverged_seeds(config))] = math.nan
        return Sample(label, values)
    return Quantity(label, sample, tuple(configs))


# ---------------------------------------------------------------- statements and their tests

def _num(x: float | None, digits: int = 6) -> float | None:
    """A JSON-safe rounded number (None for NaN/inf)."""
    if x is None or not math.isfinite(float(x)):
        return None
    return float(f"{float(x):.{digits}g}")


# ---------------------------------------------------------------- the shape of a quantity over seeds

BIMODAL_GAP = 5.0     # a gap this many within-cluster standard deviations wide splits the seeds in two
BIMODAL_SCALE = 0.02  # ... and at least this share of the largest |value| (a test set's resolution never does)
BIMODAL_MIN_SEEDS = 8  # fewer seeds cannot tell two clusters from a normal tail (12 % of normal samples of 5 split)


def bimodal(values: np.ndarray) -> bool:
    """Whether the seeds split into two clusters (e.g. seeds that solve the problem and seeds that fail).

    The rule: sort the values and cut them at their widest gap; they are bimodal when that gap is more
    than ``BIMODAL_GAP`` times the pooled standard deviation within the two sides and more than
    ``BIMODAL_SCALE`` of the largest |value|, among at least ``BIMODAL_MIN_SEEDS`` seeds. On normal seeds
    it fires in 1.8 % of samples of 8, 0.6 % of 10 and 0.01 % of 20; on a 80/20 mix of solving (0.85) and
    failing (0.50) seeds it fires whenever both kinds are present (89 % of samples of 10). A single failed
    seed counts: one run in ten at chance is exactly what breaks a t-test.
    """
    x = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    if len(x) < BIMODAL_MIN_SEEDS:
        return False
    gaps = np.diff(x)
    cut = int(np.argmax(gaps))
    low, high = x[:cut + 1], x[cut + 1:]
    within = math.sqrt((((low - low.mean()) ** 2).sum() + ((high - high.mean()) ** 2).sum()) / (len(x) - 2))
    return bool(gaps[cut] > BIMODAL_GAP * within and gaps[cut] > BIMODAL_SCALE * np.abs(x).max())


def shape(*samples: Sample, paired_differences: np.ndarray | None = None) -> str:
    """``censored`` (some seed never reached an epochs-to threshold), ``bimodal`` (``bimodal`` fires on a
    sample or on the paired differences) or ``continuous``: only the last goes to a t-test."""
    if any(s.censored for s in samples):
        return "censored"
    if any(bimodal(s.finite()) for s in samples) or (paired_differences is not None
                                                      and bimodal(paired_differences)):
        return "bimodal"
    return "continuous"


# ---------------------------------------------------------------- estimates and shares

def _estimate(value: float | None, low: float | None, high: float | None, kind: str, **detail) -> dict:
    return {"value": _num(value), "low": _num(low), "high": _num(high), "kind": kind,
            **{k: (_num(v) if isinstance(v, float) else v) for k, v in detail.items()}}


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """The exact 95 % interval of a binomial share."""
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def share_estimate(k: int, n: int, kind: str, **detail) -> dict:
    low, high = clopper_pearson(k, n)
    return _estimate(k / n if n else None, low, high, kind, seeds=n, **detail)


def one_run(seen: pd.Series | None) -> dict | None:
    """The share of single seeds in which the statement, as printed, is seen (``seen``: per seed True/False,
    NaN where undefined), with its exact 95 % interval (Clopper-Pearson)."""
    if seen is None:
        return None
    defined = seen.dropna().astype(bool)
    if not len(defined):
        return None
    k, n = int(defined.sum()), len(defined)
    low, high = clopper_pearson(k, n)
    return {"share": _num(k / n), "low": _num(low), "high": _num(high), "seeds": n}


def _t_interval(x: np.ndarray) -> tuple[float, float]:
    if len(x) < 2 or np.ptp(x) == 0:
        return float(np.mean(x)), float(np.mean(x))
    half = float(stats.t.ppf(0.975, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x)))
    return float(np.mean(x)) - half, float(np.mean(x)) + half


# ---------------------------------------------------------------- levels and verdicts

def _level(level: float | Look, test: str, counts: tuple[int, ...] = ()) -> float:
    """The nominal two-sided level of this look for a test of kind ``t``, ``normal`` or ``sign``
    (``counts``: the seeds that count at each look so far). A plain number is a fixed-sample level."""
    if not isinstance(level, Look):
        return float(level)
    return level.t() if test == "t" else level.sign(counts) if test == "sign" else level.normal()


def _prefix_counts(values: pd.Series, level: float | Look) -> tuple[int, ...]:
    """Per look so far, how many of the first n_j seeds count (``values``: True where a seed counts)."""
    if not isinstance(level, Look):
        return (int(values.sum()),)
    ordered = values.sort_index()
    return tuple(int(ordered.iloc[:n].sum()) for n in level.looks[:level.k + 1])


def _verdict(p: float | None, right_way: bool, level: float = ALPHA, inclusive: bool = False) -> str:
    """Decided when p < level (``inclusive``: p <= level, for exact discrete levels)."""
    if p is None or not math.isfinite(p) or level <= 0:
        return INCONCLUSIVE
    crossed = p <= level * (1 + 1e-9) if inclusive else p < level
    return (HOLDS if right_way else DOES_NOT_HOLD) if crossed else INCONCLUSIVE


def _outcome(verdict: str, test: str, statistic: float | None, p: float | None, estimate: dict | None,
             samples: Sequence[Sample], note: str = "", level: float | None = None, leans: str | None = None,
             **extra) -> dict:
    return {"verdict": verdict, "code": CODE[verdict], "test": test, "statistic": _num(statistic),
            "p_value": _num(p, 4), "level": _num(level, 4), "estimate": estimate, "leans": leans,
            "samples": [s.summary() for s in samples], "note": note, **extra}


def _leans(right_way: bool, neutral: bool = False) -> str | None:
    return None if neutral else HOLDS if right_way else DOES_NOT_HOLD


def _not_enough(samples: Sequence[Sample], test: str, why: str = "") -> dict:
    why = why or "fewer than two finite values: " + ", ".join(f"{s.label} (n={len(s.finite())})" for s in samples)
    return _outcome(INCONCLUSIVE, test, None, None, None, samples, why)


def _constant(*arrays: np.ndarray) -> bool:
    return all(np.ptp(a) == 0 for a in arrays)


def shared_seeds(*samples: Sample) -> bool:
    """True when the samples come from the same seeds (common random numbers): compare them seed by seed."""
    first = set(samples[0].values.index)
    return all(set(s.values.index) == first for s in samples[1:])


def _paired_frame(sa: Sample, sb: Sample) -> pd.DataFrame:
    """The seeds where both samples are finite, aligned by seed (columns a, b)."""
    both = pd.concat([sa.values.rename("a"), sb.values.rename("b")], axis=1).astype(float)
    return both[np.isfinite(both.to_numpy()).all(axis=1)].sort_index()


def _pairs(sa: Sample, sb: Sample) -> tuple[np.ndarray, np.ndarray]:
    both = _paired_frame(sa, sb)
    return both["a"].to_numpy(), both["b"].to_numpy()


class Statement:
    """Something the book says, checkable on the results.

    ``judge(results, level)`` decides at the nominal two-sided ``level``, a number (a fixed-sample check,
    e.g. ``ALPHA``) or a ``Look`` of the sequential design, from which the statement takes the level of
    the test it runs. ``seen(results)`` says per seed whether one run shows the statement as printed
    (None where one run cannot show it, e.g. a spread).
    """

    text: str

    def judge(self, results: Results, level: float | Look = ALPHA) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def seen(self, results: Results) -> pd.Series | None:
        return None

    def quantities(self) -> tuple[Quantity, ...]:
        return tuple(v for v in vars(self).values() if isinstance(v, Quantity))

    def configs(self) -> tuple[ConfigId, ...]:
        """The configurations the statement reads (a study's trend: none fixed, see ``Trend``)."""
        return tuple(c for q in self.quantities() for c in q.configs)

    def needs(self, declared: Sequence[ConfigId]) -> tuple[ConfigId, ...]:
        """The declared configurations whose seeds this statement reads (more seeds go to them)."""
        return self.configs()

    def parts(self) -> tuple[Statement, ...]:
        """The statements tested one by one (``all_of`` splits into its parts)."""
        return (self,)

    def unmet(self, declared: Sequence[ConfigId], section: str) -> list[str]:
        """Why the params cannot judge this statement, naming the key to extend (empty: they can)."""
        return list(dict.fromkeys(f"`{section}.{c.source}` has no {format_value(c.value)}"
                                  for c in self.configs() if c not in declared))


THRESHOLD_TESTS = ("sign", "t")


@dataclass(frozen=True)
class Threshold(Statement):
    """Seeds above/below a threshold: a claim about what one run does, so its estimate is a share.

    ``test="sign"`` (default): the share of seeds on the claimed side, tested against 1/2 with the exact
    binomial (sign) test; in the sequential design its boundaries are exact (``boundaries.sign_level``).
    A seed exactly at the threshold counts for neither side. ``test="t"``: one-sample t-test of the mean,
    used only when the quantity is neither bimodal nor censored (else the sign test, and the note says so).
    """

    quantity: Quantity
    threshold: float
    side: int  # +1: above, -1: below
    test: str = "sign"

    def __post_init__(self) -> None:
        if self.test not in THRESHOLD_TESTS:
            raise ValueError(f"threshold test {self.test!r}: use one of {', '.join(THRESHOLD_TESTS)}")

    @property
    def text(self) -> str:
        what = "most seeds:" if self.test == "sign" else "mean"
        return f"{what} {self.quantity.label} {'>' if self.side > 0 else '<'} {self.threshold:g}"

    def seen(self, results: Results) -> pd.Series:
        values = self.quantity.sample(results).values.astype(float)
        shown = (values - self.threshold) * self.side > 0
        return shown.where(np.isfinite(values))

    def _share_kind(self, sample: Sample, form: str) -> str:
        if sample.censored and self.side < 0:
            return f"share reaching the threshold by epoch {self.threshold:g} (Kaplan-Meier)"
        if form == "bimodal" and self.side > 0:
            return f"share of seeds that solve (above {self.threshold:g})"
        return f"share of seeds {'above' if self.side > 0 else 'below'} {self.threshold:g}"

    def judge(self, results: Results, level: float | Look = ALPHA) -> dict:
        sample = self.quantity.sample(results)
        x = sample.finite()
        form = shape(sample)
        if self.test == "sign" or form != "continuous":
            return self._sign(sample, x, form, level)
        test = "one-sample t-test (two-sided)"
        if len(x) < 2:
            return _not_enough([sample], test)
        nominal = _level(level, "t")
        low, high = _t_interval(x)
        if _constant(x):
            diff = x[0] - self.threshold
            p, stat, test = (0.0 if diff else 1.0), None, "exact (no spread over seeds)"
        else:
            r = stats.ttest_1samp(x, self.threshold)
            p, stat = float(r.pvalue), float(r.statistic)
            diff = x.mean() - self.threshold
        return _outcome(_verdict(p, diff * self.side > 0, nominal), test, stat, p,
                        _estimate(float(np.mean(x)), low, high, "mean"), [sample], level=nominal,
                        leans=_leans(diff * self.side > 0, diff == 0), shape=form)

    def _sign(self, sample: Sample, x: np.ndarray, form: str, level: float | Look) -> dict:
        test = ("sign test: exact binomial test of the share of seeds above the threshold against 1/2 "
                "(two-sided, exact boundaries)")
        over, under = int((x > self.threshold).sum()), int((x < self.threshold).sum())
        m = over + under
        if m < 1:
            return _not_enough([sample], test, "no seed off the threshold")
        p = sign_p(over, m)
        counts = _prefix_counts((sample.values - self.threshold).abs() > 0, level)
        nominal = _level(level, "sign", counts)
        shown = over if self.side > 0 else under
        right_way = (over - under) * self.side > 0
        detail = {}
        if form == "bimodal" and self.side > 0 and over:  # how well the solving seeds do
            detail["solving_mean"] = float(np.mean(x[x > self.threshold]))
        note = f"{over} of {m} seeds above {self.threshold:g}" + ("" if form == "continuous" else f" ({form})")
        if self.test == "t":
            note += f"; {form}: the sign test instead of a t-test"
        ci = clopper_pearson(over, m)
        return _outcome(_verdict(p, right_way, nominal, inclusive=True), test, over, p,
                        share_estimate(shown, m, self._share_kind(sample, form), **detail), [sample], note,
                        level=nominal, leans=_leans(right_way, over == under), shape=form,
                        share_above=_num(over / m), share_ci95=[_num(ci[0]), _num(ci[1])])


COMPARE_TESTS = ("welch", "paired", "mannwhitney")


@dataclass(frozen=True)
class Compare(Statement):
    """``a`` greater/less than ``b``.

    Seeds shared (the same seed list: common random numbers) and both quantities continuous: the paired
    t-test on the per-seed differences (``test="welch"``, the default, or ``"paired"``); seeds not shared:
    Welch's t-test. When a quantity is censored or bimodal (``shape``), or ``test="mannwhitney"`` (only
    the order means something), a mean is the wrong summary: over shared seeds the exact sign test of
    the share of seeds where ``a`` beats ``b`` (ties left out) against 1/2, else the Mann-Whitney U test.
    """

    a: Quantity
    b: Quantity
    side: int  # +1: a greater than b, -1: a less than b
    test: str = "welch"

    def __post_init__(self) -> None:
        if self.test not in COMPARE_TESTS:
            raise ValueError(f"comparison test {self.test!r}: use one of {', '.join(COMPARE_TESTS)}")

    @property
    def text(self) -> str:
        return f"{self.a.label} {'>' if self.side > 0 else '<'} {self.b.label}"

    def seen(self, results: Results) -> pd.Series | None:
        sa, sb = self.a.sample(results), self.b.sample(results)
        if not (self.test == "paired" or shared_seeds(sa, sb)):
            return None
        d = (sa.values.astype(float) - sb.values.astype(float))
        return (d * self.side > 0).where(np.isfinite(d))

    def judge(self, results: Results, level: float | Look = ALPHA) -> dict:
        sa, sb = self.a.sample(results), self.b.sample(results)
        paired = self.test == "paired" or shared_seeds(sa, sb)
        x, y = _pairs(sa, sb) if paired else (sa.finite(), sb.finite())
        form = shape(sa, sb, paired_differences=(x - y) if paired else None)
        order_only = self.test == "mannwhitney" or form != "continuous"
        if order_only and paired:
            return self._sign(sa, sb, form, level)
        test = {(False, False): "Welch two-sample t-test (two-sided)",
                (True, False): "paired t-test over shared seeds (two-sided)",
                (False, True): "Mann-Whitney U test (two-sided)"}[(paired, order_only)]
        if len(x) < 2 or len(y) < 2:
            return _not_enough([sa, sb], test)
        if order_only:
            nominal = _level(level, "normal")
            auc = float(np.mean((x[:, None] - y[None, :]) * self.side > 0))
            if _constant(np.concatenate([x, y])):
                stat, p = None, 1.0
            else:
                r = stats.mannwhitneyu(x, y, alternative="two-sided")
                stat, p = float(r.statistic), float(r.pvalue)
            right_way = (np.median(x) - np.median(y)) * self.side > 0
            return _outcome(_verdict(p, right_way, nominal), test, stat, p,
                            _estimate(auc, None, None, "share of seed pairs where A beats B (unpaired)"), [sa, sb],
                            level=nominal, leans=_leans(right_way, np.median(x) == np.median(y)), paired=False,
                            shape=form)
        nominal = _level(level, "t")
        diff = float(np.mean(x - y) if paired else np.mean(x) - np.mean(y))
        if _constant(x - y) if paired else _constant(x, y):
            stat, p, ci, test = None, (0.0 if diff else 1.0), (diff, diff), "exact (no spread over seeds)"
        else:
            r = stats.ttest_rel(x, y) if paired else stats.ttest_ind(x, y, equal_var=False)
            stat, p, ci = float(r.statistic), float(r.pvalue), r.confidence_interval(0.95)
        kind = "difference (paired)" if paired else "difference (Welch)"
        return _outcome(_verdict(p, diff * self.side > 0, nominal), test, stat, p,
                        _estimate(diff, float(ci[0]), float(ci[1]), kind), [sa, sb], level=nominal,
                        leans=_leans(diff * self.side > 0, diff == 0), paired=paired, shape=form)

    def _sign(self, sa: Sample, sb: Sample, form: str, level: float | Look) -> dict:
        test = "sign test over shared seeds: exact binomial test of the share of seeds where A beats B (two-sided)"
        both = _paired_frame(sa, sb)
        d = (both["a"] - both["b"]) * self.side
        wins, losses = int((d > 0).sum()), int((d < 0).sum())
        m = wins + losses
        if len(both) < 2:
            return _not_enough([sa, sb], test)
        p = sign_p(wins, m)
        aligned = pd.concat([sa.values.rename("a"), sb.values.rename("b")], axis=1).astype(float)
        counts = _prefix_counts((aligned["a"] - aligned["b"]).abs() > 0, level)
        nominal = _level(level, "sign", counts)
        why = "only the order means something" if self.test == "mannwhitney" else f"{form} quantity"
        note = f"A beats B in {wins} of {m} seeds not tied ({len(both) - m} tied; {why})"
        return _outcome(_verdict(p, wins > losses, nominal, inclusive=True), test, wins, p,
                        share_estimate(wins, m, "share of seeds where A beats B",
                                       median_difference=float(np.median(both["a"] - both["b"]))),
                        [sa, sb], note, level=nominal, leans=_leans(wins > losses, wins == losses), paired=True,
                        shape=form)


@dataclass(frozen=True)
class Similar(Statement):
    """``a`` and ``b`` the same within ±margin: two one-sided t-tests (TOST), paired over shared seeds.

    **equivalent** when each one-sided test ("the difference is above −margin", "below +margin") rejects
    at the finding's alpha on its own: both must reject, so neither needs a split (intersection-union),
    and the result is the same as a 1 − 2 alpha interval lying inside the margin. An interval that
    excludes 0 but lies inside the margin is equivalent: the claim is sameness within the margin, not
    equality. **does not hold** when the difference is shown outside the margin: the one-sided test on
    the side the estimate lies, at half the alpha (the side is chosen by the data, so it is a two-sided
    test). In the sequential design a one-sided test at alpha takes the boundary of a two-sided design
    at 2 alpha, halved.
    """

    a: Quantity
    b: Quantity
    margin: float

    @property
    def text(self) -> str:
        return f"|{self.a.label} − {self.b.label}| < {self.margin:g}"

    def seen(self, results: Results) -> pd.Series | None:
        sa, sb = self.a.sample(results), self.b.sample(results)
        if not shared_seeds(sa, sb):
            return None
        d = sa.values.astype(float) - sb.values.astype(float)
        return (d.abs() < self.margin).where(np.isfinite(d))

    def judge(self, results: Results, level: float | Look = ALPHA) -> dict:
        sa, sb = self.a.sample(results), self.b.sample(results)
        paired = shared_seeds(sa, sb)
        kind = "paired t-tests over shared seeds" if paired else "Welch t-tests"
        test = f"equivalence within ±{self.margin:g}: two one-sided {kind} (TOST)"
        x, y = _pairs(sa, sb) if paired else (sa.finite(), sb.finite())
        if len(x) < 2 or len(y) < 2:
            return _not_enough([sa, sb], test)
        form = shape(sa, sb, paired_differences=(x - y) if paired else None)
        if isinstance(level, Look):
            one_sided = level.with_alpha(min(1.0, 2 * level.alpha)).t() / 2
            outside_level = level.t() / 2
        else:
            one_sided, outside_level = float(level), float(level) / 2
        diff = float(np.mean(x - y) if paired else np.mean(x) - np.mean(y))
        label = "difference (paired)" if paired else "difference (Welch)"
        note = f"{form} quantity: the t-tests read its mean" if form != "continuous" else ""
        if _constant(x - y) if paired else _constant(x, y):
            inside = abs(diff) < self.margin
            return _outcome(EQUIVALENT if inside else DOES_NOT_HOLD, "exact (no spread over seeds)", None,
                            0.0, _estimate(diff, diff, diff, label, margin=self.margin), [sa, sb], note,
                            level=one_sided, leans=EQUIVALENT if inside else DOES_NOT_HOLD, paired=paired,
                            p_outside=0.0 if not inside else 1.0, shape=form)

        def p_one_sided(shift: float, alternative: str) -> float:
            if paired:
                return float(stats.ttest_rel(x - shift, y, alternative=alternative).pvalue)
            return float(stats.ttest_ind(x - shift, y, equal_var=False, alternative=alternative).pvalue)

        p_low, p_high = p_one_sided(-self.margin, "greater"), p_one_sided(self.margin, "less")
        p = max(p_low, p_high)  # equivalence: d > -margin and d < margin, each shown at the one-sided level
        p_out = p_one_sided(self.margin, "greater") if diff >= 0 else p_one_sided(-self.margin, "less")
        r = stats.ttest_rel(x, y) if paired else stats.ttest_ind(x, y, equal_var=False)
        ci = r.confidence_interval(0.95)
        verdict = (EQUIVALENT if p < one_sided else DOES_NOT_HOLD if p_out < outside_level else INCONCLUSIVE)
        return _outcome(verdict, test, None, p, _estimate(diff, float(ci.low), float(ci.high), label,
                                                          margin=self.margin),
                        [sa, sb], note, level=one_sided,
                        leans=EQUIVALENT if abs(diff) < self.margin else DOES_NOT_HOLD, paired=paired,
                        p_outside=_num(p_out, 4), level_outside=_num(outside_level, 4), shape=form)


SPREAD_PERMUTATIONS = 20_000  # random swaps per test: p resolves to 5e-5, below any sequential boundary here


def paired_spread_test(x: np.ndarray, y: np.ndarray, permutations: int = SPREAD_PERMUTATIONS) -> tuple[float, float]:
    """Equal spread of paired x and y: Spearman's correlation of the sums x + y and differences x − y
    (their covariance is var x − var y: Pitman 1939, Morgan 1939; on ranks: McCulloch 1987), and its
    two-sided p from swapping x_i and y_i at random within pairs (d_i changes sign, s_i stays), which is
    exact when the pairs are exchangeable, as common random numbers make them under "no difference".

    Pitman-Morgan's Pearson test assumes normal pairs: on seeds where a few runs fail (heavy tails) it
    rejects far too often (tests/test_findings.py). The random swaps come from a fixed seed, so the same
    data give the same p.
    """
    s, d = x + y, x - y

    def spearman(diffs: np.ndarray) -> np.ndarray:
        ranks = stats.rankdata(diffs, axis=-1)
        ranks = (ranks - ranks.mean(axis=-1, keepdims=True)) / ranks.std(axis=-1, keepdims=True)
        return (ranks * sum_ranks).mean(axis=-1)

    sum_ranks = stats.rankdata(s)
    sum_ranks = (sum_ranks - sum_ranks.mean()) / sum_ranks.std()
    observed = float(spearman(d))
    signs = np.random.default_rng(20_261_128).choice([-1.0, 1.0], size=(permutations, len(d)))
    swapped = np.abs(spearman(signs * d))
    p = (1 + int(np.sum(swapped >= abs(observed) - 1e-12))) / (1 + permutations)
    return observed, p



BOOTSTRAP = 2000  # resamples of the seeds for the interval of a ratio of spreads (fixed seed: same data, same interval)


def _spread_ratio_interval(x: np.ndarray, y: np.ndarray, paired: bool) -> tuple[float, float]:
    """A percentile bootstrap interval of sd(x) / sd(y), resampling seeds (pairs together when paired)."""
    rng = np.random.default_rng(20_260_301)
    if paired:
        idx = rng.integers(0, len(x), size=(BOOTSTRAP, len(x)))
        bx, by = x[idx], y[idx]
    else:
        bx = x[rng.integers(0, len(x), size=(BOOTSTRAP, len(x)))]
        by = y[rng.integers(0, len(y), size=(BOOTSTRAP, len(y)))]
    sx, sy = bx.std(axis=1, ddof=1), by.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sy > 0, sx / np.where(sy > 0, sy, 1.0), np.where(sx > 0, np.inf, 1.0))
    return float(np.quantile(ratio, 0.025)), float(np.quantile(ratio, 0.975))


@dataclass(frozen=True)
class Wider(Statement):
    """Spread over seeds of ``a`` larger than that of ``b`` (one run cannot show a spread: no one-run share).

    Seeds shared: ``paired_spread_test`` (var a = var b exactly when a + b and a − b are uncorrelated, as
    Pitman-Morgan's test uses, judged on ranks by permutation); else the Brown-Forsythe test (Levene,
    centred on the median). The estimate is the ratio of standard deviations with a bootstrap interval.
    """

    a: Quantity
    b: Quantity

    @property
    def text(self) -> str:
        return f"spread over seeds of {self.a.label} > that of {self.b.label}"

    def judge(self, results: Results, level: float | Look = ALPHA) -> dict:
        sa, sb = self.a.sample(results), self.b.sample(results)
        paired = shared_seeds(sa, sb)
        test = ("paired permutation test of equal spread over shared seeds: Spearman correlation of sums and "
                "differences, pairs swapped at random (two-sided)" if paired
                else "Brown-Forsythe test of equal spread (two-sided)")
        x, y = _pairs(sa, sb) if paired else (sa.finite(), sb.finite())
        if len(x) < (3 if paired else 2) or len(y) < 2:
            return _not_enough([sa, sb], test)
        nominal = _level(level, "normal")
        sx, sy = float(np.std(x, ddof=1)), float(np.std(y, ddof=1))
        if paired:
            s, d = x + y, x - y
            if _constant(s) or _constant(d):
                stat, p = None, (0.0 if sx != sy else 1.0)
            else:
                stat, p = paired_spread_test(x, y)
        elif _constant(np.abs(x - np.median(x)), np.abs(y - np.median(y))):
            stat, p = None, (0.0 if sx != sy else 1.0)
        else:
            r = stats.levene(x, y, center="median")
            stat, p = float(r.statistic), float(r.pvalue)
        ratio = sx / sy if sy > 0 else (math.inf if sx > 0 else 1.0)
        low, high = _spread_ratio_interval(x, y, paired)
        return _outcome(_verdict(p, sx > sy, nominal), test, stat, p,
                        _estimate(ratio, low, high, "ratio of standard deviations"), [sa, sb], level=nominal,
                        leans=_leans(sx > sy, sx == sy), paired=paired)


@dataclass(frozen=True)
class Trend(Statement):
    """A metric rising/falling with a study's numeric setting.

    Seeds shared by the study's configurations: Page's trend test with seeds as blocks (two-sided: twice
    the smaller one-sided p), over the seeds every configuration has; the estimate is the mean per-seed
    Spearman correlation with the setting (a t-interval over seeds), and one run shows the trend when its
    own correlation has the claimed sign. Else Spearman's rank correlation over all per-seed values
    (Fisher-z interval).
    """

    study: Study
    metric: str
    side: int  # +1 increasing, -1 decreasing
    measure: Callable[[ConfigId, str], Quantity] = final

    @property
    def text(self) -> str:
        what = self.metric if self.measure is final else \
            f"{getattr(self.measure, '__name__', 'a measure').replace('_', ' ')} of {self.metric}"
        return f"{what} {'rises' if self.side > 0 else 'falls'} with {self.study.name} (per-seed values)"

    def needs(self, declared: Sequence[ConfigId]) -> tuple[ConfigId, ...]:
        return tuple(c for c in declared if c.study == self.study.name)

    def unmet(self, declared: Sequence[ConfigId], section: str) -> list[str]:
        if len([c for c in declared if c.study == self.study.name]) < 2:
            return [f"`{section}.{self.study.param}` has fewer than two values"]
        return []

    def _table(self, results: Results) -> tuple[list[ConfigId], list[Sample]]:
        configs = sorted(results.study(self.study.name), key=lambda c: c.number)
        return configs, [self.measure(config, self.metric).sample(results) for config in configs]

    def _per_seed_rho(self, configs: list[ConfigId], samples: list[Sample]) -> pd.Series:
        table = pd.concat([s.values for s in samples], axis=1).astype(float)
        table = table[np.isfinite(table.to_numpy()).all(axis=1)]
        settings = stats.rankdata([c.number for c in configs])
        return pd.Series([float(stats.spearmanr(settings, row).statistic) if np.ptp(row) else 0.0
                          for row in table.to_numpy()], index=table.index, dtype=float)

    def seen(self, results: Results) -> pd.Series | None:
        configs, samples = self._table(results)
        if len(configs) < 2 or not shared_seeds(*samples):
            return None
        return self._per_seed_rho(configs, samples) * self.side > 0

    def judge(self, results: Results, level: float | Look = ALPHA) -> dict:
        configs, samples = self._table(results)
        if len(configs) >= 2 and shared_seeds(*samples):
            return self._page(configs, samples, level)
        test = f"Spearman rank correlation with {self.study.name} (two-sided)"
        xs, ys = [], []
        for config, sample in zip(configs, samples):
            ys.extend(sample.finite())
            xs.extend([config.number] * len(sample.finite()))
        if len(ys) < 3 or len(set(xs)) < 2:
            return _not_enough(samples, test)
        nominal = _level(level, "normal")
        if np.ptp(ys) == 0:
            return _outcome(INCONCLUSIVE, test, None, 1.0, _estimate(0.0, None, None, "trend (Spearman rho)"),
                            samples, "every value equal", level=nominal)
        r = stats.spearmanr(xs, ys)
        rho, p = float(r.statistic), float(r.pvalue)
        half = 1.96 / math.sqrt(max(1, len(ys) - 3))
        z = math.atanh(max(-0.999999, min(0.999999, rho)))
        return _outcome(_verdict(p, rho * self.side > 0, nominal), test, rho, p,
                        _estimate(rho, math.tanh(z - half), math.tanh(z + half), "trend (Spearman rho)"), samples,
                        level=nominal, leans=_leans(rho * self.side > 0, rho == 0), paired=False)

    def _page(self, configs: list[ConfigId], samples: list[Sample], level: float | Look) -> dict:
        test = f"Page's trend test over {self.study.name}, seeds as blocks (two-sided)"
        table = pd.concat([s.values for s in samples], axis=1).astype(float)
        table = table[np.isfinite(table.to_numpy()).all(axis=1)].to_numpy()
        if len(table) < 2:
            return _not_enough(samples, test, f"fewer than two seeds with every {self.study.name} finite")
        nominal = _level(level, "normal")
        ranks = stats.rankdata(table, axis=1)
        settings = stats.rankdata([c.number for c in configs])
        per_seed = np.array([stats.spearmanr(settings, row).statistic if np.ptp(row) else 0.0 for row in ranks])
        rho = float(np.mean(per_seed))  # the mean per-seed rank correlation: the direction and size of the trend
        low, high = _t_interval(per_seed)
        estimate = _estimate(rho, max(-1.0, low), min(1.0, high), "trend (mean per-seed Spearman rho)")
        leans = _leans(rho * self.side > 0, rho == 0)
        if np.ptp(ranks, axis=1).max() == 0:
            return _outcome(INCONCLUSIVE, test, None, 1.0, estimate, samples, "every value equal within each seed",
                            level=nominal, paired=True)
        if len(configs) == 2:  # Page's L needs three settings; with two, a trend is a paired comparison
            lower, upper = table[:, 0], table[:, 1]
            p = 1.0 if not np.any(upper - lower) else float(stats.wilcoxon(upper, lower).pvalue)
            return _outcome(_verdict(p, rho * self.side > 0, nominal),
                            f"Wilcoxon signed-rank test of the two {self.study.name} settings over shared seeds "
                            "(two-sided)", None, p, estimate, samples, level=nominal, leans=leans, paired=True)
        # The exact law costs time exponential in the settings: 0.2 s for 8 settings, 37 s for 11 (5 seeds).
        # Beyond 8 settings or 60 cells the normal approximation is used (off by < 0.01 in p at these sizes).
        method = "exact" if len(configs) <= 8 and len(table) * len(configs) <= 60 else "asymptotic"
        up = stats.page_trend_test(table, ranked=False, predicted_ranks=list(settings), method=method)
        down = stats.page_trend_test(table, ranked=False, predicted_ranks=list(len(configs) + 1 - settings),
                                     method=method)
        p = min(1.0, 2 * min(float(up.pvalue), float(down.pvalue)))
        return _outcome(_verdict(p, rho * self.side > 0, nominal), test, float(up.statistic), p, estimate, samples,
                        level=nominal, leans=leans, paired=True)


@dataclass(frozen=True)
class AllOf(Statement):
    """Every part must hold: an intersection-union test, so each part is tested for *holds* at the
    finding's whole alpha (a false *holds* needs every part to err the right way). *Does not hold* needs
    only one part to err, so a part counts against the finding only at alpha / parts (``judge_part``)."""

    parts_: tuple[Statement, ...]

    @property
    def text(self) -> str:
        return " and ".join(part.text for part in self.parts_)

    def configs(self) -> tuple[ConfigId, ...]:
        return tuple(c for part in self.parts_ for c in part.configs())

    def needs(self, declared: Sequence[ConfigId]) -> tuple[ConfigId, ...]:
        return tuple(dict.fromkeys(c for part in self.parts_ for c in part.needs(declared)))

    def parts(self) -> tuple[Statement, ...]:
        return tuple(p for part in self.parts_ for p in part.parts())

    def unmet(self, declared: Sequence[ConfigId], section: str) -> list[str]:
        return list(dict.fromkeys(why for part in self.parts_ for why in part.unmet(declared, section)))

    def seen(self, results: Results) -> pd.Series | None:
        """One run shows every part at once (the parts one run cannot show are left out)."""
        shown = [s for s in (part.seen(results) for part in self.parts()) if s is not None]
        if not shown:
            return None
        table = pd.concat([s.astype(float) for s in shown], axis=1)
        return (table == 1).all(axis=1).where(table.notna().all(axis=1))

    def judge(self, results: Results, level: float | Look = ALPHA) -> dict:
        parts = self.parts()
        judged = [judge_part(part, results, level, len(parts)) for part in parts]
        return combine_parts(parts, judged, one_run(self.seen(results)))


def judge_part(part: Statement, results: Results, level: float | Look, count: int) -> dict:
    """A part of an ``all_of`` of ``count`` parts: *holds* at ``level``, *does not hold* only at level / count."""
    judged = judge_statement(part, results, level)
    if judged["verdict"] == DOES_NOT_HOLD and count > 1:
        stricter = level.with_alpha(level.alpha / count) if isinstance(level, Look) else level / count
        strict = judge_statement(part, results, stricter)
        if strict["verdict"] != DOES_NOT_HOLD:
            judged = judged | {"verdict": INCONCLUSIVE, "code": CODE[INCONCLUSIVE],
                               "note": "; ".join(n for n in (judged["note"], "against the claim, not yet beyond "
                                                             f"its share alpha / {count}") if n)}
        judged["level_against"] = strict["level"]
    return judged


def combine_parts(parts: Sequence[Statement], judged: Sequence[dict], shown: dict | None = None) -> dict:
    """An intersection-union verdict: holds when every part holds, does not hold when any part does not,
    seed-dependent when every part holds or is seed-dependent; the estimate is the weakest part's (the
    largest p), and one run shows it when one seed shows every part (``shown``)."""
    verdicts = [j["verdict"] for j in judged]
    if DOES_NOT_HOLD in verdicts:
        verdict = DOES_NOT_HOLD
    elif all(v in HELD for v in verdicts):
        verdict = HOLDS
    elif all(v in (*HELD, SEED_DEPENDENT) for v in verdicts):
        verdict = SEED_DEPENDENT
    else:
        verdict = UNDECIDED if UNDECIDED in verdicts else INCONCLUSIVE
    ps = [j["p_value"] for j in judged]
    p = None if any(v is None for v in ps) else max(ps)
    weakest = max(judged, key=lambda j: math.inf if j["p_value"] is None else j["p_value"])
    estimate = None if weakest.get("estimate") is None else \
        weakest["estimate"] | {"kind": f"weakest part: {weakest['estimate']['kind']}"}
    leans = (DOES_NOT_HOLD if any(j.get("leans") == DOES_NOT_HOLD for j in judged)
             else HOLDS if all(j.get("leans") in (HOLDS, EQUIVALENT) for j in judged) else None)
    outcome = _outcome(verdict, "all parts must hold (largest p of the parts)", None, p, estimate, [], leans=leans)
    outcome["one_run"] = shown
    unique = {s["label"]: s for j in judged for s in j["samples"]}  # parts may share a configuration
    outcome["samples"] = list(unique.values())
    outcome["parts"] = [{"statement": part.text, **j} for part, j in zip(parts, judged)]
    return outcome


def above(quantity: Quantity, threshold: float, test: str = "sign") -> Statement:
    return Threshold(quantity, threshold, +1, test)


def below(quantity: Quantity, threshold: float, test: str = "sign") -> Statement:
    return Threshold(quantity, threshold, -1, test)


def greater(a: Quantity, b: Quantity, test: str = "welch") -> Statement:
    return Compare(a, b, +1, test)


def less(a: Quantity, b: Quantity, test: str = "welch") -> Statement:
    return Compare(a, b, -1, test)


def similar(a: Quantity, b: Quantity, margin: float) -> Statement:
    return Similar(a, b, margin)


def wider(a: Quantity, b: Quantity) -> Statement:
    return Wider(a, b)


def increasing(study: Study, metric: str, measure: Callable[[ConfigId, str], Quantity] = final) -> Statement:
    return Trend(study, metric, +1, measure)


def decreasing(study: Study, metric: str, measure: Callable[[ConfigId, str], Quantity] = final) -> Statement:
    return Trend(study, metric, -1, measure)


def all_of(*parts: Statement) -> Statement:
    return AllOf(tuple(parts))



# ---------------------------------------------------------------- findings

@dataclass(frozen=True)
class Finding:
    """One lesson of the book: a stable id (it is a metrics key), the claim in words, and its check.

    ``book_only``: why the claim is tied to the book's data (a threshold its data reaches, a number it
    prints); empty for a general lesson. On other data such a finding is listed as *book data only*.
    """

    id: str
    claim: str
    statement: Statement
    book_only: str = ""

    def __post_init__(self) -> None:
        if not ID.match(self.id):
            raise ValueError(f"finding id {self.id!r}: use lower-case letters, digits and underscores")


@dataclass(frozen=True)
class BookDataOnly(Statement):
    """A finding tied to the book's numbers, on a family trained on other data: listed, not judged."""

    reason: str
    original: Statement

    @property
    def text(self) -> str:
        return self.original.text

    def parts(self) -> tuple[Statement, ...]:
        return (self,)

    def needs(self, declared: Sequence[ConfigId]) -> tuple[ConfigId, ...]:
        return ()

    def unmet(self, declared: Sequence[ConfigId], section: str) -> list[str]:
        return []

    def judge(self, results: Results, level: float = ALPHA) -> dict:
        return book_data_only(self.reason)


def book_data_only(reason: str) -> dict:
    return _outcome(BOOK_DATA_ONLY, "not judged: book data only", None, None, None, [],
                    f"book data only: {reason}")


def on_data(findings: Sequence[Finding], book_data: bool) -> list[Finding]:
    """The findings as judged on a family's data: on other data than the book's, those tied to the book's
    numbers become *book data only* (and take no share of the family's alpha)."""
    if book_data:
        return list(findings)
    return [dataclasses.replace(f, statement=BookDataOnly(f.book_only, f.statement)) if f.book_only else f
            for f in findings]


def not_judged(why: Sequence[str]) -> dict:
    return _outcome(NOT_JUDGED, "not judged", None, None, None, [], "not judged: " + "; ".join(why))


def judge_statement(statement: Statement, results: Results, level: float | Look = ALPHA) -> dict:
    """The statement judged, with ``one_run``: the share of seeds in which one run shows it."""
    try:
        with warnings.catch_warnings():
            # scipy warns when one group has no spread (e.g. every seed at accuracy 1.0); the test is still exact.
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
            outcome = statement.judge(results, level)
            if "one_run" not in outcome:
                outcome["one_run"] = one_run(statement.seen(results))
            return outcome
    except MissingResults as err:
        return not_judged([str(err)])


def judge(findings: Sequence[Finding], history: pd.DataFrame, declared: Sequence[ConfigId],
          section: str) -> list[dict]:
    """Every finding's verdict, test, statistic, p-value and interval over the seeds in ``history``.

    ``declared`` are the configurations the family's params define and ``section`` their params key
    (``families.capacity``): a finding needing a configuration they leave out is *not judged*, and
    its note names the key, e.g. "not judged: `families.capacity.nodes` has no 1".
    """
    ids = [f.id for f in findings]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"duplicate finding ids: {', '.join(duplicated)}")
    results = Results(history, declared)
    out = []
    for f in findings:
        unmet = f.statement.unmet(declared, section)
        if isinstance(f.statement, BookDataOnly):
            outcome = book_data_only(f.statement.reason)
        elif unmet:
            outcome = not_judged(unmet)
        else:
            outcome = judge_statement(f.statement, results)
        out.append({"id": f.id, "claim": f.claim, "statement": f.statement.text, **outcome})
    return out


def book_table(book: Mapping[ConfigId, Mapping[str, float | tuple[float, float]]], history: pd.DataFrame,
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
            ours = (summary or {}).get(str(config), {}).get(metric)
            if not isinstance(ours, Mapping):
                try:
                    ours = final(config, metric).sample(results).summary()
                except MissingResults:
                    ours = describe([])
            ours = clip_interval(dict(ours), bounds(metric))  # a sample does not know its metric; the table does
            inside = (ours["n"] > 0 and ours["ci95_low"] is not None
                      and ours["ci95_low"] - 1e-9 <= book_mean <= ours["ci95_high"] + 1e-9)
            diverged = (summary or {}).get(str(config), {}).get("diverged")
            rows.append({"config": str(config), "metric": metric, "book": book_mean, "book_std": book_std,
                         "diverged": diverged,
                         **{k: ours[k] for k in ("mean", "std", "n", "ci95_low", "ci95_high")},
                         "book_inside_ci95": bool(inside)})
    return rows
