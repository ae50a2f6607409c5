"""The experiment families, one module each.

A family module defines:

- ``FIELDS``: the keys of its ``families.<name>`` section of params.yaml;
- ``check(section, key, params) -> cfg``: validates that section (usually
  ``common.check_training`` plus the family's own rules);
- ``trials(cfg, seeds) -> list[Trial]``: one trial per configuration and seed, with
  readable configuration ids of the form ``<study>=<value>`` (``nodes=5``);
- ``figures(history, cfg) -> dict[str, Figure]``: one figure per study, named after it.

Optionally, ``trial_metrics(result, cfg) -> dict[str, float]``: numbers derived from one
trial's curves (epochs to a threshold, late-epoch volatility, ...), summarised over
seeds beside the final metrics in ``reports/metrics/<family>.json``.

Families whose training has several phases may define ``run(cfg, seeds, execute)``
instead of ``trials``; ``execute`` trains a list of trials and returns their results.

A family module must not import TensorFlow or Keras at import time (import them
inside the builders): ``train`` checks params and applies the runtime flags first.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from stages import params as P

SHARED = ("common",)  # modules here that are not families
NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in SHARED))


def load(name: str) -> ModuleType:
    if name not in NAMES:
        raise P.ParamsError(f"family {name!r} does not exist; known families: {', '.join(NAMES)}")
    return importlib.import_module(f"stages.families.{name}")


def study(config: str) -> str:
    """The study a configuration belongs to: the part of its id before '='."""
    return config.split("=", 1)[0]


# Top-level params sections that hold family sections. ``families_from_source`` holds the
# families that start from a saved source model: their DVC stages (train_from_source@,
# evaluate_from_source@) also depend on data/models/<source>.keras, which the generic
# train@ stage cannot list per family.
SECTIONS = ("families", "families_from_source")


def section_key(params: dict, name: str) -> str:
    """Where family ``name``'s params live: ``families.<name>`` unless it is under another section."""
    for top in SECTIONS[1:]:
        if isinstance(params.get(top), dict) and name in params[top]:
            return f"{top}.{name}"
    return f"families.{name}"


def check_family(params: dict, name: str) -> dict:
    """Validate the family's params section with the family's own rules."""
    key = section_key(params, name)
    return load(name).check(P.section(params, key), key, params)
