"""What an experiment family is: one declared object that the stages call.

A family module (``trainlab/families/<name>.py``) reads top to bottom like the book's chapter:
its setup (the module docstring and its params fields), its models, its configurations and
its findings, and ends by declaring ``FAMILY = Family(...)`` from those parts.
The ``train`` stage (and ``stages.evaluate``, which it runs) call the fields below and nothing else.

A family module must not import TensorFlow or Keras at import time (import them inside the
builders): the stages check params and apply the runtime flags first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from trainlab import params as P
from trainlab.configs import ConfigId
from trainlab.engine.trial import Trial, TrialResult
from trainlab.stats.findings import Finding

Execute = Callable[[list[Trial]], list[TrialResult]]  # trains trials, returns their results in order


@dataclass(frozen=True)
class Family:
    """An experiment family, bound to its params only when its functions are called with them.

    - ``doc``: the module docstring: the chapter's title line, then the setup in paragraphs.
    - ``fields``: the keys of its params section; ``check(section, key, params)`` validates that
      section (the fields plus the family's own rules) and returns the checked ``cfg``.
    - ``configs(cfg)``: the configurations the params define, in order (cheap: no data loaded).
    - ``trials(cfg, seeds)``: one ``Trial`` per configuration and seed; or
    - ``train(cfg, seeds, execute)``: for families trained in phases (or that measure something
      after training); it calls ``execute`` on lists of trials and returns every result.
    - ``measure(results, cfg)``: optional; numbers measured on the trained models (e.g. dead units),
      returned as the results with them added to their history.
    - ``same_experiment(trial)``: optional key under which configurations that are one experiment
      (e.g. momentum=0 and learning_rate=0.01 are both SGD(0.01)) share one training per seed.
    - ``trial_metrics(result, cfg)``: optional numbers from one trial's curves (``trainlab.curves``),
      summarised over seeds beside the final metrics.
    - ``findings(cfg)``: what the book concludes, as ``trainlab.stats.findings.Finding``s built from ``cfg``.
    - ``book``: the numbers the book prints, per configuration and metric ((mean, std) for repeats).
    - ``book_only``: the findings tied to the book's data (a threshold its data reaches, a number it
      prints), with the reason: on other data they are listed as *book data only*, the rest are judged.
    - ``needs_book_data``: why the family cannot run on other data than the book's (its lesson needs
      the book's problem); empty when it runs on any data set whose task fits (``families.<f>.data``).
    """

    name: str
    doc: str
    fields: Mapping[str, P.Field]
    check: Callable[[dict, str, dict], dict]
    configs: Callable[[dict], list[ConfigId]]
    findings: Callable[[dict], Sequence[Finding]]
    trials: Callable[[dict, list[int]], list[Trial]] | None = None
    train: Callable[[dict, list[int], Execute], list[TrialResult]] | None = None
    book: Mapping[ConfigId, Mapping[str, float | tuple[float, float]]] = field(default_factory=dict)
    trial_metrics: Callable[[TrialResult, dict], dict[str, float]] | None = None
    same_experiment: Callable[[Trial], Hashable] | None = None
    measure: Callable[[list[TrialResult], dict], list[TrialResult]] | None = None
    book_only: Mapping[str, str] = field(default_factory=dict)  # finding id -> why it is tied to the book's data
    needs_book_data: str = ""  # why the family runs on the book's data only; empty: on any data its task fits

    def __post_init__(self) -> None:
        if self.trials is None and self.train is None:
            raise TypeError(f"family {self.name!r}: give trials(cfg, seeds), or train(cfg, seeds, execute)")

    def run(self, cfg: dict, seeds: list[int], execute: Execute,
            configs: Collection[ConfigId] | None = None) -> list[TrialResult]:
        """Train ``configs`` (None: every configuration) over ``seeds``; a family trained in phases
        (``train``) always trains whole."""
        if self.train is not None:
            return self.train(cfg, seeds, execute)
        trials = self.trials(cfg, seeds)
        if configs is not None:
            wanted = set(configs)
            trials = [t for t in trials if t.config in wanted]
        if self.same_experiment is not None:
            results = train_unique(trials, self.same_experiment, execute)
        else:
            results = execute(trials)
        return results if self.measure is None else self.measure(results, cfg)

    def judged_findings(self, cfg: dict) -> list[Finding]:
        """The findings as judged on the data ``cfg`` trains on: on other data than the book's
        (``cfg["book_data"]`` false), those tied to the book's numbers are listed as *book data only*."""
        from trainlab.stats.findings import on_data

        marked = [dataclasses.replace(f, book_only=f.book_only or self.book_only.get(f.id, ""))
                  for f in self.findings(cfg)]
        return on_data(marked, cfg.get("book_data", True))

    @property
    def title(self) -> str:
        return " ".join(self.doc.strip().split("\n\n")[0].split())

    @property
    def setup(self) -> list[str]:
        """The setup paragraphs, each on one line; a list keeps its items as lines starting "- "."""
        out = []
        for paragraph in self.doc.strip().split("\n\n")[1:]:
            items: list[str] = []
            for line in paragraph.strip().splitlines():
                if line.startswith("- ") or not items:
                    items.append(line.strip())
                else:  # a wrapped line continues the item (or the text) above it
                    items[-1] += " " + line.strip()
            out.append("\n".join(" ".join(item.split()) for item in items))
        return out + [self.other_data]

    @property
    def other_data(self) -> str:
        """What the family does on data other than the book's (``families.<f>.data``), in one paragraph."""
        if self.needs_book_data:
            return f"Other data: this family runs on the book's data only, because {self.needs_book_data}."
        tied = ", ".join(self.book_only) or "none"
        return ("Other data: runs on any data set whose task fits its loss; input width and classes come from the "
                f"data. There the findings tied to the book's numbers ({tied}) are listed as book data only, "
                "the others judged on that data.")


def train_unique(trials: list[Trial], recipe: Callable[[Trial], Hashable], execute: Execute) -> list[TrialResult]:
    """Train each distinct (recipe, seed) once; configurations naming the same experiment share its result."""
    first: dict = {}
    for t in trials:
        first.setdefault((recipe(t), t.seed), t)
    trained = dict(zip(first, execute(list(first.values()))))
    out = []
    for t in trials:
        result = trained[(recipe(t), t.seed)]
        out.append(dataclasses.replace(result, config=t.config, tags={**result.tags, **t.tags}))
    return out
