"""The families' figures: one module per family, ``figures(history, cfg)``; shared helpers in ``common``."""

import importlib


def load(name: str):
    """Family ``name``'s ``figures(history, cfg)``: one matplotlib figure per study, named after it."""
    return importlib.import_module(f"trainlab.figures.{name}").figures
