"""What the DVC stages share: params checked before anything heavy loads, and bad input reported as
one line with exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from trainlab import params as P
from trainlab.io import InputError

BAD_INPUT = 2


def run(body: Callable[[], int]) -> int:
    """Run a stage's body; a bad value, or a missing or broken input or tracking store, stops it: one line, exit 2."""
    try:
        return body()
    except (P.ParamsError, FileNotFoundError, InputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT


def load_params() -> tuple[dict, dict]:
    """params.yaml and its checked top-level settings (``seed``, ``seeds``, ``runtime``)."""
    params = P.load(P.project_root() / P.PARAMS_FILE)
    return params, P.check_common(params)
