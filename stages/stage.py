"""What the DVC stages share: params checked before anything heavy loads, bad input reported as
one line with exit code 2, and the provenance tags of their MLflow runs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from stages import params as P
from stages import tracking

BAD_INPUT = 2


def run(body: Callable[[], int]) -> int:
    """Run a stage's body; a bad value or a missing input stops it with one line, exit 2."""
    try:
        return body()
    except (P.ParamsError, tracking.TrackingError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT


def load_params() -> tuple[dict, dict]:
    """params.yaml and its checked top-level settings (``seed``, ``seeds``, ``runtime``)."""
    params = P.load(P.project_root() / P.PARAMS_FILE)
    return params, P.check_common(params)


def provenance(stage: str, section: Mapping) -> dict[str, str]:
    """The tags every MLflow run of a stage carries."""
    commit = tracking.git_commit()
    return {"dvc.stage": stage, "git.commit": commit, "mlflow.source.git.commit": commit,
            "params.hash": tracking.params_hash(section)}
