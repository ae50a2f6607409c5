"""Reading ``params.yaml`` and checking it once, at the edge, with messages that say what to do.

A section is described by a dict of ``Field``s; ``check`` returns the section
with defaults filled in, or raises ``ParamsError`` naming the full key (e.g.
``families.capacity.epochs``), what was found and what is allowed. Unknown keys
are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = "params.yaml"
REQUIRED = object()


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Field:
    """One key of a params section.

    ``kind`` is int, float, bool, str, list or dict. For lists, ``item`` checks
    each element; for dicts, ``fields`` describes the sub-section. ``check``
    is an extra predicate with ``allowed`` saying in words what passes it.
    """

    kind: type
    default: Any = REQUIRED
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    item: Field | None = None
    fields: Mapping[str, Field] | None = None
    nonempty: bool = True
    check: Callable[[Any], bool] | None = None
    allowed: str = ""
    finite: bool = True  # NaN and ±inf pass no bound check (every comparison is false), so refuse them first

    def describe(self) -> str:
        if self.allowed:
            return self.allowed
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        name = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                list: "a list", dict: "a mapping"}[self.kind]
        if self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else (">" if self.exclusive_minimum else "≥") + f" {self.minimum}"
            high = "" if self.maximum is None else f"≤ {self.maximum}"
            name += " " + " and ".join(p for p in (low, high) if p)
        if self.kind is list and self.item is not None:
            name += " of " + self.item.describe().removeprefix("a ").removeprefix("an ")
        return name


def _fail(key: str, field: Field, value: Any) -> ParamsError:
    return ParamsError(f"{key}: expected {field.describe()}, got {value!r}")


def check_value(key: str, field: Field, value: Any) -> Any:
    """Validate one value (recursively for lists and dicts); return it normalised."""
    kind = field.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is float and isinstance(value, str):
        try:  # YAML reads 1e-3 (no dot) as a string
            value = float(value)
        except ValueError:
            raise _fail(key, field, value) from None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail(key, field, value)
    if kind is float and field.finite and not math.isfinite(value):
        allowed = field.describe()
        allowed = allowed.replace("a number", "a finite number", 1) if allowed.startswith("a number") \
            else f"a finite number ({allowed})"
        raise ParamsError(f"{key}: expected {allowed}, got {value!r}")
    if field.choices is not None and value not in field.choices:
        raise _fail(key, field, value)
    if field.minimum is not None and (value <= field.minimum if field.exclusive_minimum else value < field.minimum):
        raise _fail(key, field, value)
    if field.maximum is not None and value > field.maximum:
        raise _fail(key, field, value)
    if kind is list:
        if field.nonempty and not value:
            raise ParamsError(f"{key}: expected a non-empty list, got []")
        if field.item is not None:
            value = [check_value(f"{key}[{i}]", field.item, v) for i, v in enumerate(value)]
    if kind is dict and field.fields is not None:
        value = check(value, key, field.fields)
    if field.check is not None and not field.check(value):
        raise _fail(key, field, value)
    return value


def check(section: Any, key: str, fields: Mapping[str, Field]) -> dict:
    """Validate a mapping against ``fields``: no unknown keys, no missing required ones."""
    if not isinstance(section, Mapping):
        raise ParamsError(f"{key}: expected a mapping with keys {', '.join(fields)}, got {section!r}")
    unknown = [k for k in section if k not in fields]
    if unknown:
        guess = difflib.get_close_matches(str(unknown[0]), list(fields), n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise ParamsError(f"{key}.{unknown[0]}: unknown key{hint}; allowed keys: {', '.join(fields)}")
    result = {}
    for name, field in fields.items():
        full = f"{key}.{name}" if key else name
        if name not in section:
            if field.default is REQUIRED:
                raise ParamsError(f"{full}: missing; expected {field.describe()}")
            result[name] = field.default
        else:
            result[name] = check_value(full, field, section[name])
    return result


def project_root() -> Path:
    """The workspace a stage reads and writes: the working directory DVC runs it in.

    (Under ``dvc exp run --temp/--queue`` that is a temporary copy of the repository;
    only the MLflow store is resolved to the parent repository, see trainlab.tracking.)
    """
    return Path.cwd()


def load(path: str | Path = PARAMS_FILE) -> dict:
    """Read params.yaml (no checking: each stage checks the sections it uses)."""
    try:
        with open(path) as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run the stages from the repository root") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return params


def section(params: Mapping, key: str) -> Any:
    """``params[a][b]`` for ``key='a.b'``, with a clear error when it is missing."""
    node: Any = params
    walked = []
    for part in key.split("."):
        walked.append(part)
        if not isinstance(node, Mapping) or part not in node:
            parent = ".".join(walked[:-1]) or "params.yaml"
            allowed = ", ".join(node) if isinstance(node, Mapping) else "nothing"
            raise ParamsError(f"{'.'.join(walked)}: missing; {parent} has: {allowed}")
        node = node[part]
    return node


# The sections every training stage reads.
RUNTIME_FIELDS = {
    "onednn": Field(bool, default=False),
    "deterministic_ops": Field(bool, default=True),
    "xla": Field(bool, default=False),
    "stack_seeds": Field(bool, default=True,
                         allowed="true or false: train a configuration's seeds as one stacked model"),
    # How many seeds one stacked model holds changes float rounding (a batched matmul sums by
    # the stack's size), so it is a param; it is also the block that a shard of seeds holds.
    "seed_block": Field(int, default=0, minimum=0,
                        allowed="an integer ≥ 0: seeds per stacked model and per shard (0: all of a configuration)"),
}

# Placement is environment, not params (trainlab.engine.placement): a params.yaml that sets it is told where.
MOVED_TO_ENVIRONMENT = {"workers": "TRAINLAB_EXECUTOR=process|dask and TRAINLAB_WORKERS",
                        "threads": "TRAINLAB_THREADS"}

TOP_LEVEL_FIELDS = {
    "seed": Field(int, minimum=0),
    "seeds": Field(int, default=None, minimum=1, maximum=1000),  # null: seeds in rounds (`sequential`)
}


# Seeds in rounds (trainlab.stats.sequential): top level `sequential`, overridable key by key in a family's section.
SEQUENTIAL_FIELDS = {
    "start": Field(int, default=None, minimum=2, maximum=1000,
                   allowed="an integer from 2 to 1000: seeds per configuration in the first round"),
    "block": Field(int, default=None, minimum=1, maximum=1000,
                   allowed="an integer from 1 to 1000: seeds added per round"),
    "cap": Field(int, default=None, minimum=2, maximum=1000,
                 allowed="an integer from 2 to 1000, ≥ start: the most seeds a configuration gets"),
    "spending": Field(str, default=None, choices=("obrien_fleming", "pocock")),
    "alpha": Field(float, default=None, minimum=0, maximum=0.5, exclusive_minimum=True,
                   allowed="a number in (0, 0.5]: the false-verdict rate of a family's findings together"),
}
SEQUENTIAL_DEFAULTS = {"start": 10, "block": 10, "cap": 20, "spending": "pocock", "alpha": 0.05}


def check_sequential(raw: Any, key: str) -> dict:
    """A ``sequential`` mapping: the keys it sets (checked), leaving the others to the level above."""
    cfg = check(raw, key, SEQUENTIAL_FIELDS)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    if "start" in cfg and "cap" in cfg and cfg["cap"] < cfg["start"]:
        raise ParamsError(f"{key}.cap: {cfg['cap']} is below start {cfg['start']}; allowed: an integer ≥ start")
    return cfg


def check_common(params: Mapping) -> dict:
    """``seed``, ``seeds``, ``sequential`` and ``runtime``: the keys every train stage shares."""
    common = check({k: params[k] for k in TOP_LEVEL_FIELDS if params.get(k) is not None}, "", TOP_LEVEL_FIELDS)
    runtime = params.get("runtime", {})
    for key, variable in MOVED_TO_ENVIRONMENT.items():
        if isinstance(runtime, Mapping) and key in runtime:
            raise ParamsError(f"runtime.{key}: not a param any more (where training runs must not rerun it); "
                              f"remove it and set {variable} in the environment instead")
    common["runtime"] = check(runtime, "runtime", RUNTIME_FIELDS)
    common["sequential"] = SEQUENTIAL_DEFAULTS | check_sequential(params.get("sequential", {}), "sequential")
    return common


# What one recorded value (one metric of one trial at one epoch) costs at the stage's peak: the curve,
# its rows of the history table and the MLflow metric objects and insert rows. Measured: 1271 bytes
# (`python -m benchmarks.value_memory`: 500,000 values, peak resident set +606 MiB).
BYTES_PER_VALUE = 1280
VALUES_PER_EPOCH = 5  # loss, metric, val_loss, val_metric, lr (grad_stats adds more per layer)


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable of /proc/meminfo, else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(key: str, epochs: list[int], limit: int | None = None) -> None:
    """Refuse, before training, trials (their ``epochs``) whose recorded curves cannot fit in memory.

    ``key`` names the epochs in params.yaml; the limit is the memory available now (or ``limit`` bytes).
    """
    limit = available_memory() if limit is None else limit
    trials = len(epochs)
    needed = sum(epochs) * VALUES_PER_EPOCH * BYTES_PER_VALUE
    if needed > limit:
        most = max(1, limit // (trials * VALUES_PER_EPOCH * BYTES_PER_VALUE))
        raise ParamsError(f"{key}: {max(epochs)} epochs × {trials} trials would hold about {needed / 2**30:.1f} GiB of "
                          f"curves and MLflow rows, more than the {limit / 2**30:.1f} GiB of memory available; "
                          f"at most {most} epochs fit (lower epochs or seeds)")
