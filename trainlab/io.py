"""Atomic writes: an output appears whole or not at all, so a failed stage leaves nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


class InputError(ValueError):
    """An input file that cannot be used; the message names it, what is wrong and what to do."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)


def write_json(path: str | Path, data: Any) -> None:
    def dump(tmp: Path) -> None:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")
    write_with(path, dump)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    def dump(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    write_with(path, dump)


def read_npz(path: str | Path, remedy: str = "") -> dict[str, np.ndarray]:
    """The arrays of an .npz file; a file that is not one (truncated, garbage) raises ``InputError``."""
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except Exception as err:  # zipfile, zlib, numpy's format and pickle checks: each means a broken file
        why = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: not a readable .npz file ({why}){'; ' + remedy if remedy else ''}") from None


def remove_except(directory: Path, keep: set[Path]) -> list[str]:
    """Delete what ``directory`` holds besides ``keep`` (e.g. data sets gone from params); the names removed."""
    removed = []
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if path not in keep:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(path.name)
    return removed
