"""The experiment families, one module each; each declares ``FAMILY`` (``trainlab.family.Family``).

To add a family, add ``trainlab/families/<name>.py`` and its ``families.<name>`` section in
params.yaml: the ``train@``/``evaluate@`` stages of dvc.yaml run every section under ``families``.
"""

from __future__ import annotations

import importlib
import pkgutil

from trainlab import params as P
from trainlab.family import Family

SHARED = ("common",)  # modules here that are not families
NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in SHARED))

# Top-level params sections that hold family sections. ``families_from_source`` holds the
# families that start from a saved source model: their DVC stages (train_from_source@,
# evaluate_from_source@) also depend on data/models/<source>.keras, which the generic
# train@ stage cannot list per family.
SECTIONS = ("families", "families_from_source", "families_on_results")


def load(name: str) -> Family:
    """The family declared by ``trainlab/families/<name>.py``."""
    if name not in NAMES:
        raise P.ParamsError(f"family {name!r} does not exist; known families: {', '.join(NAMES)}")
    family = importlib.import_module(f"trainlab.families.{name}").FAMILY
    if family.name != name:
        raise ValueError(f"trainlab/families/{name}.py declares FAMILY named {family.name!r}")
    return family


def section_key(params: dict, name: str) -> str:
    """Where family ``name``'s params live: ``families.<name>`` unless it is under another section."""
    for top in SECTIONS[1:]:
        if isinstance(params.get(top), dict) and name in params[top]:
            return f"{top}.{name}"
    return f"families.{name}"


def check_family(params: dict, name: str) -> tuple[Family, dict]:
    """The family and its params section, validated by the family's own rules."""
    family = load(name)
    key = section_key(params, name)
    cfg = family.check(P.section(params, key), key, params)
    if family.needs_book_data and not cfg.get("book_data", True):
        raise P.ParamsError(f"{key}.data: {cfg['data']!r} is not one of the book's data sets, and {name} runs on the "
                            f"book's data only: {family.needs_book_data}")
    return family, cfg
