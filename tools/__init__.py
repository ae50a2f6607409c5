"""Tools for people working on the lab (not DVC stages): e.g. ``python -m tools.compare``."""
