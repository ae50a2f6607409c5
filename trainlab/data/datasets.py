"""The data sets a family can train on, and their params: the book's generators, scikit-learn's bundled
data sets, and your own files.

- ``datasets.<name>`` with ``generator: blobs | circles | regression``: the book's scikit-learn calls, the
  first ``n_train`` rows train and the rest test (as in the book).
- ``datasets.<name>`` with ``generator: breast_cancer | wine | digits | diabetes``: the data sets that ship
  with scikit-learn (no download), split at random with ``split_seed`` into ``n_train`` train rows or a
  ``test_fraction`` of test rows, stratified by class for the classification sets.
- ``datasets_from_files.<name>``: a CSV or Parquet file in the repository (``file``), its ``target`` column,
  its ``task`` (``classification`` or ``regression``; inferred when left out: a text, boolean or integer
  target with few distinct values is a classification) and the same split options. A separate section
  because DVC's ``foreach`` cannot list a key only some entries have: its stage
  ``generate_file@<name>`` depends on the file and writes ``data/raw_files/<name>.npz``, a directory
  the ``scale`` stage depends on, so editing the file reruns what depends on it.

Every other column of a file is a feature and must be numeric. Class labels (of any type) become 0 … k-1 in
sorted order. Anything wrong with a file is one ``InputError`` naming the params key and the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from trainlab import params as P
from trainlab.io import InputError

BOOK_GENERATORS = ("blobs", "circles", "regression")
BUNDLED = {  # generator -> (scikit-learn loader, task)
    "breast_cancer": ("load_breast_cancer", "classification"),
    "wine": ("load_wine", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
GENERATORS = BOOK_GENERATORS + tuple(BUNDLED)
SECTIONS = ("datasets", "datasets_from_files")  # where data sets are declared; names are unique over both
TASKS = ("classification", "regression")
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_INFERRED_CLASSES = 20  # an integer target with more distinct values is read as a regression target

BOOK_COMMON = {
    "generator": P.Field(str, choices=GENERATORS),
    "n_samples": P.Field(int, minimum=2),
    "n_train": P.Field(int, minimum=1),
    "random_state": P.Field(int, minimum=0),
}
SPLIT = {  # a random split (bundled data sets and files): n_train rows, or a test fraction; default half
    "n_train": P.Field(int, default=None, minimum=1, allowed="an integer ≥ 1: rows in the train split"),
    "test_fraction": P.Field(float, default=None, minimum=0, maximum=1, exclusive_minimum=True,
                             allowed="a number in (0, 1): the share of rows in the test split"),
    "split_seed": P.Field(int, default=0, minimum=0),
}
FIELDS = {
    "blobs": {**BOOK_COMMON, "centers": P.Field(int, minimum=1), "n_features": P.Field(int, minimum=1),
              "cluster_std": P.Field(float, minimum=0, exclusive_minimum=True)},
    "circles": {**BOOK_COMMON, "noise": P.Field(float, minimum=0),
                "factor": P.Field(float, default=0.8, minimum=0, exclusive_minimum=True, maximum=1)},
    "regression": {**BOOK_COMMON, "n_features": P.Field(int, minimum=1),
                   "n_informative": P.Field(int, default=10, minimum=1), "noise": P.Field(float, minimum=0)},
    **{name: {"generator": P.Field(str, choices=GENERATORS), **SPLIT} for name in BUNDLED},
}
FILE_FIELDS = {
    "file": P.Field(str, check=lambda v: Path(v).suffix.lower() in FILE_SUFFIXES and not Path(v).is_absolute(),
                    allowed="a relative path in the repository ending in .csv or .parquet"),
    "target": P.Field(str),
    "task": P.Field(str, default=None, choices=TASKS),
    **SPLIT,
}


def section_key(params: dict, name: str) -> str:
    """Where data set ``name`` is declared: ``datasets.<name>`` or ``datasets_from_files.<name>``."""
    if isinstance(params.get(SECTIONS[1]), dict) and name in params[SECTIONS[1]]:
        return f"{SECTIONS[1]}.{name}"
    return f"{SECTIONS[0]}.{name}"


def names(params: dict) -> list[str]:
    return [name for top in SECTIONS for name in (params.get(top) or {})]


RAW_DIRS = {SECTIONS[0]: "data/raw", SECTIONS[1]: "data/raw_files"}  # a data set's rows, split, by section


def raw_path(params: dict, name: str, root: Path | None = None) -> Path:
    """Where data set ``name``'s split rows live: ``data/raw/<name>.npz`` (written by the ``data`` stage), or
    ``data/raw_files/<name>.npz`` for a file's (by ``generate_file@<name>``, which depends on the file)."""
    return (root or P.project_root()) / RAW_DIRS[section_key(params, name).split(".")[0]] / f"{name}.npz"


def made_by(params: dict, name: str) -> str:
    """The DVC stage that writes data set ``name``'s split arrays."""
    return "generate" if section_key(params, name).startswith("datasets.") else f"generate_file@{name}"


def check_split(cfg: dict, key: str) -> None:
    if cfg["n_train"] is not None and cfg["test_fraction"] is not None:
        raise P.ParamsError(f"{key}.test_fraction: give n_train or test_fraction, not both")


def check_dataset(params: dict, name: str) -> dict:
    """Validate a data set's params (not a file's contents: ``load`` does that)."""
    key = section_key(params, name)
    if key.startswith(SECTIONS[1]):
        if isinstance(params.get(SECTIONS[0]), dict) and name in params[SECTIONS[0]]:
            raise P.ParamsError(f"{key}: the name {name!r} is also under datasets:; each data set name once")
        cfg = P.check(P.section(params, key), key, FILE_FIELDS)
        check_split(cfg, key)
        return cfg
    spec = P.section(params, key)
    generator = spec.get("generator") if isinstance(spec, dict) else None
    if generator not in GENERATORS:
        raise P.ParamsError(f"{key}.generator: expected one of {', '.join(GENERATORS)}, got {generator!r}")
    cfg = P.check(spec, key, FIELDS[generator])
    if generator in BUNDLED:
        check_split(cfg, key)
    elif cfg["n_train"] >= cfg["n_samples"]:
        raise P.ParamsError(f"{key}.n_train: expected fewer than n_samples={cfg['n_samples']}, got {cfg['n_train']}")
    return cfg


# ---------------------------------------------------------------- loading

@dataclass(frozen=True)
class Loaded:
    """A data set's rows split into train and test, and what the stage says about it."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str  # classification | regression
    classes: int | None  # None for regression
    said: str  # one line: rows, features, task (and how it was found), the split

    @property
    def n_train(self) -> int:
        return len(self.x_train)


def make(cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """The book's generator call exactly as the book makes it."""
    from sklearn import datasets as sk

    args = {k: v for k, v in cfg.items() if k not in ("generator", "n_train")}
    return getattr(sk, f"make_{cfg['generator']}")(**args)


def _book(cfg: dict) -> Loaded:
    x, y = make(cfg)
    n = cfg["n_train"]
    task = "regression" if cfg["generator"] == "regression" else "classification"
    classes = None if task == "regression" else int(len(np.unique(y)))
    return Loaded(x[:n], y[:n], x[n:], y[n:], task, classes,
                  f"{len(x)} rows ({n} train), {x.shape[1]} features")


def _fail(key: str, where: str, why: str) -> InputError:
    return InputError(f"{key} ({where}): {why}")


def split(x: np.ndarray, y: np.ndarray, task: str, cfg: dict, key: str, where: str
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """A random split by ``split_seed`` (stratified by class for a classification), checked to be possible."""
    from sklearn.model_selection import train_test_split

    n = len(x)
    if cfg["n_train"] is not None:
        n_train = cfg["n_train"]
    else:
        n_train = n - math.ceil((cfg["test_fraction"] or 0.5) * n)
    n_test = n - n_train
    classes = len(np.unique(y)) if task == "classification" else 1
    need = 2 * classes  # each split needs a row of every class (one row each for a regression)
    if n_train < classes or n_test < classes:
        asked = f"n_train={cfg['n_train']}" if cfg["n_train"] is not None else \
            f"test_fraction={cfg['test_fraction'] if cfg['test_fraction'] is not None else 0.5:g}"
        per = f" (a row of each of the {classes} classes in both splits)" if task == "classification" else ""
        raise _fail(key, where, f"{n} rows, fewer than the split needs: {asked} gives {n_train} train and {n_test} "
                                f"test rows, and each split needs at least {classes}{per}; the data needs at "
                                f"least {need} rows")
    stratify = y if task == "classification" else None
    x_train, x_test, y_train, y_test = train_test_split(x, y, train_size=n_train, test_size=n_test,
                                                        random_state=cfg["split_seed"], shuffle=True,
                                                        stratify=stratify)
    strat = ", stratified by class" if stratify is not None else ""
    return x_train, y_train, x_test, y_test, f"{n} rows split at random ({n_train} train, {n_test} test, " \
        f"split_seed {cfg['split_seed']}{strat})"


def _bundled(cfg: dict, key: str) -> Loaded:
    from sklearn import datasets as sk

    loader, task = BUNDLED[cfg["generator"]]
    x, y = getattr(sk, loader)(return_X_y=True)  # shipped inside the scikit-learn package: no download
    x_train, y_train, x_test, y_test, said = split(x.astype(np.float64), y, task, cfg, key, f"scikit-learn {loader}")
    classes = int(len(np.unique(y))) if task == "classification" else None
    what = f"{classes} classes" if classes else "regression"
    return Loaded(x_train, y_train, x_test, y_test, task, classes,
                  f"scikit-learn {loader}: {x.shape[1]} features, {what}; {said}")


def infer_task(target) -> tuple[str, str]:
    """(task, why) for a target column (a pandas Series) the params give no task for."""
    import pandas as pd

    distinct = int(target.nunique())
    if pd.api.types.is_bool_dtype(target) or not pd.api.types.is_numeric_dtype(target):
        return "classification", f"inferred: a {target.dtype} target with {distinct} distinct values"
    integral = pd.api.types.is_integer_dtype(target) or bool(np.all(np.mod(target.to_numpy(dtype=float), 1) == 0))
    if integral and distinct <= MAX_INFERRED_CLASSES:
        return "classification", f"inferred: an integer target with {distinct} distinct values " \
                                  f"(≤ {MAX_INFERRED_CLASSES})"
    return "regression", ("inferred: a numeric target with " + (
        f"{distinct} distinct integer values (> {MAX_INFERRED_CLASSES})" if integral else "non-integer values"))


@lru_cache(maxsize=32)
def _read(path: str, mtime: float):
    import pandas as pd

    if Path(path).suffix.lower() == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


def _file(cfg: dict, key: str, root: Path) -> Loaded:
    import pandas as pd

    where = cfg["file"]
    path = root / where
    if not path.is_file():
        raise _fail(key, where, f"file not found (looked in {path})")
    try:
        frame = _read(str(path), path.stat().st_mtime)
    except Exception as err:  # pandas' parsers and pyarrow raise many kinds; each means an unreadable file
        why = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise _fail(key, where, f"not a readable {path.suffix.lstrip('.')} file ({why})") from None
    target = cfg["target"]
    if target not in frame.columns:
        raise _fail(key, where, f"target column {target!r} not found; columns: {', '.join(map(str, frame.columns))}")
    features = [c for c in frame.columns if c != target]
    if not features:
        raise _fail(key, where, f"no feature columns besides the target {target!r}")
    text = [str(c) for c in features if not pd.api.types.is_numeric_dtype(frame[c])
            or pd.api.types.is_bool_dtype(frame[c])]
    if text:
        raise _fail(key, where, f"non-numeric feature columns: {', '.join(text)} (encode them as numbers, "
                                "or drop them)")
    missing = frame.isna().sum()
    missing = missing[missing > 0]
    if len(missing):
        column = str(missing.index[0])
        more = f" (and {len(missing) - 1} more columns)" if len(missing) > 1 else ""
        raise _fail(key, where, f"column {column!r} has {int(missing.iloc[0])} missing values{more}; "
                                "fill or drop them first")
    x = frame[features].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        bad = [str(c) for c in features if not np.isfinite(frame[c].to_numpy(dtype=np.float64)).all()]
        raise _fail(key, where, f"column {bad[0]!r} holds inf values")
    column = frame[target]
    task, how = (cfg["task"], "as params say") if cfg["task"] else infer_task(column)
    if task == "classification":
        labels, y = np.unique(column.to_numpy(), return_inverse=True)
        counts = np.bincount(y)
        if len(labels) < 2:
            raise _fail(key, where, f"target {target!r} has one class ({labels[0]!r}); a classification needs two")
        rare = [(labels[i], int(counts[i])) for i in range(len(labels)) if counts[i] < 2]
        if rare:
            raise _fail(key, where, f"class {rare[0][0]!r} of {target!r} has {rare[0][1]} row; every class needs "
                                    "at least 2 (one for each split)")
        what = f"{len(labels)} classes ({', '.join(map(str, labels[:10]))}{', …' if len(labels) > 10 else ''} → " \
               f"0 … {len(labels) - 1})"
        classes: int | None = len(labels)
    else:
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            raise _fail(key, where, f"target {target!r} holds {column.dtype} values; a regression needs numbers")
        y, what, classes = column.to_numpy(dtype=np.float64), "regression", None
        if not np.isfinite(y).all():
            raise _fail(key, where, f"target {target!r} holds inf values")
    x_train, y_train, x_test, y_test, said = split(x, y, task, cfg, key, where)
    return Loaded(x_train, y_train, x_test, y_test, task, classes,
                  f"{where}: {len(features)} features, target {target!r}: {task} ({how}), {what}; {said}")


def load(params: dict, name: str, root: Path | None = None) -> Loaded:
    """Data set ``name`` made, read or loaded, and split (bad params: ``ParamsError``; a bad file: ``InputError``)."""
    cfg = check_dataset(params, name)
    key = section_key(params, name)
    if "file" in cfg:
        return _file(cfg, key, root or P.project_root())
    if cfg["generator"] in BUNDLED:
        return _bundled(cfg, key)
    return _book(cfg)


def raw(params: dict, name: str) -> tuple[dict[str, np.ndarray], str]:
    """Data set ``name``'s split arrays and the line that says what they are (a bad value or file raises)."""
    loaded = load(params, name)
    arrays = {"x_train": loaded.x_train, "y_train": loaded.y_train, "x_test": loaded.x_test, "y_test": loaded.y_test}
    return arrays, f"{name}: {loaded.said}"


@dataclass(frozen=True)
class Info:
    """What the params checks need to know about a data set, without training anything."""

    name: str
    task: str  # classification | regression
    classes: int | None
    n_train: int
    book: bool  # one of the book's generated data sets


def info(params: dict, name: str) -> Info:
    """Task, classes and train rows of data set ``name``; the book's from its params, the others by loading
    (a file is read once per process; bundled sets load in milliseconds)."""
    cfg = check_dataset(params, name)
    if cfg.get("generator") in BOOK_GENERATORS:
        generator = cfg["generator"]
        classes = {"circles": 2, "blobs": cfg.get("centers")}.get(generator)
        return Info(name, "regression" if generator == "regression" else "classification", classes,
                    cfg["n_train"], True)
    loaded = load(params, name)
    return Info(name, loaded.task, loaded.classes, loaded.n_train, False)
