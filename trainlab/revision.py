"""Which code and which params a result comes from: the git commit, whether the tree had uncommitted
changes, and a short hash of a params section. Standard library only, so the report page and the MLflow
tags can both say it without the report importing the tracking code."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

from trainlab.params import project_root


def params_hash(section: Mapping) -> str:
    """12 hex digits of the SHA-256 of ``section`` as sorted JSON: equal params give equal hashes."""
    return hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()[:12]


def git(*args: str, root: Path | None = None) -> str | None:
    """``git <args>``'s output in the repository, or None where git fails or is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=root or project_root(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(root: Path | None = None) -> str:
    """The full commit hash of HEAD, or "unknown" outside a repository."""
    return git("rev-parse", "HEAD", root=root) or "unknown"


def git_dirty(root: Path | None = None) -> bool | None:
    """Whether tracked files differ from HEAD (untracked files do not count); None if git cannot tell."""
    status = git("status", "--porcelain", "--untracked-files=no", root=root)
    return None if status is None else bool(status)
