"""Configuration ids: which setting of which study a trial trains.

A configuration is ``(study, value)``, e.g. ``("nodes", 5)``, and remembers the key of the
family's params section that listed it (``nodes``), so that a finding needing a configuration
the params left out can say which key to extend. ``str(config)`` (``nodes=5``) is the one
canonical form, used for files, MLflow run names and the report; nothing parses it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def format_value(value: Any) -> str:
    """The canonical text of a setting: integers as written, floats as ``%g`` (1e-06), else ``str``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True, order=False)
class ConfigId:
    """One configuration of a family: a study and its setting (and the params key that lists it)."""

    study: str
    value: Any
    param: str | None = field(default=None, compare=False)  # the section key that lists the value

    def __str__(self) -> str:
        return f"{self.study}={format_value(self.value)}"

    @property
    def number(self) -> float:
        """The setting as a number, for trends over a numeric study (``TypeError`` when it is not one)."""
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise TypeError(f"{self} has no numeric setting")
        return float(self.value)

    @property
    def source(self) -> str:
        """Where the params list this configuration, for messages: ``nodes`` has no 1."""
        return self.param or self.study


class Study:
    """A study of a family: ``Study("nodes")(5)`` is the configuration ``nodes=5``.

    ``param`` names the key of the family's section that lists the study's settings.
    """

    def __init__(self, name: str, param: str | None = None) -> None:
        self.name, self.param = name, param or name

    def __call__(self, value: Any) -> ConfigId:
        return ConfigId(self.name, value, self.param)

    def of(self, values: list) -> list[ConfigId]:
        return [self(v) for v in values]

    def __repr__(self) -> str:
        return f"Study({self.name!r}, param={self.param!r})"
