"""One family's experiments as a table narrow enough to read: ``make exp FAMILY=<family>``.

``dvc exp show`` lists every param, metric and dep of the project (over 500 columns), so the everyday
``dvc exp run -S 'families.<family>.<key>=<value>'`` is lost in it even with ``--only-changed``. This
asks ``dvc exp show`` for the family's headline metrics (``reports/metrics/<family>.json``, always) and
for the params that differ between the rows shown, among the family's own and the shared ones every
family reads (``seed``, ``seeds``, ``sequential``, ``runtime``); everything else is dropped. Column
names lose the family's prefix, which the title states once.

Usage: ``python -m tools.exp_table FAMILY [-- extra dvc exp show flags, e.g. -A or -n 3]``.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys

from tools.compare import tool
from trainlab.families import SECTIONS
from trainlab.params import load

# Params every family's training reads: a change there reruns the family, so it belongs in its table.
SHARED_PARAMS = r"seed$|params\.yaml:seeds$|sequential\.|runtime\."
# DVC's row identity in --csv output; dropping them would leave rows that cannot be told apart.
ROW_COLUMNS = ("Experiment", "rev", "typ", "Created", "parent")


def family_names(params: dict) -> list[str]:
    """Every family of params.yaml, over the three sections that hold families."""
    return sorted(name for section in SECTIONS for name in (params.get(section) or {}))


def metrics_prefix(family: str) -> str:
    """How ``dvc exp show`` names a family's metric columns: the file, then the key."""
    return f"reports/metrics/{family}.json:"


def params_pattern(family: str) -> str:
    return rf"({'|'.join(map(re.escape, SECTIONS))})\.{re.escape(family)}\."


def exp_show_flags(family: str) -> list[str]:
    """``dvc exp show`` flags for one family: its metrics kept, its changed params and the changed shared ones
    left, all else dropped (DVC applies ``--keep`` before ``--only-changed`` and ``--drop``, and never drops a
    kept column)."""
    keep = "|".join([rf"^({'|'.join(ROW_COLUMNS)})$", "^" + re.escape(metrics_prefix(family))])
    drop = rf"^(?!{params_pattern(family)}|{SHARED_PARAMS})"
    return ["--no-pager", "--only-changed", "--precision", "4", "--keep", keep, "--drop", drop]


def short_name(column: str, family: str) -> str:
    """A column's name without the family's prefix (the title names the family)."""
    if column.startswith(metrics_prefix(family)):
        return column[len(metrics_prefix(family)):]
    return re.sub("^" + params_pattern(family), "", column).removeprefix("params.yaml:")


def experiment_label(row: dict) -> str:
    """The row's name as ``dvc exp show`` prints it: the baseline's rev, else ``sha [name]``."""
    if row.get("typ") == "baseline" or not row.get("Experiment"):
        return row.get("rev", "")
    return f"  {row.get('rev', '')} [{row['Experiment']}]"


def table(csv_text: str, family: str) -> str:
    """The ``--csv`` output of ``dvc exp show`` as aligned text: experiment, created, metrics, then params."""
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    if not rows:
        return f"{family}: no experiments.\n"
    columns = [c for c in rows[0] if c not in ROW_COLUMNS]
    metrics = [c for c in columns if c.startswith(metrics_prefix(family))]
    params = [c for c in columns if c not in metrics]
    headers = ["experiment", "created", *(short_name(c, family) for c in metrics + params)]
    body = [[experiment_label(r), (r.get("Created") or "-")[:16].replace("T", " "),
             *(r.get(c) or "-" for c in metrics + params)] for r in rows]
    widths = [max(len(line[i]) for line in [headers, *body]) for i in range(len(headers))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip()
             for line in [headers, *body]]
    title = (f"{family}: metrics of {metrics_prefix(family)[:-1]}; the params of families.{family}, seed, seeds, "
             "sequential and runtime that differ between rows" + ("" if params else " (none do)"))
    return "\n".join([title, *lines]) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    families = family_names(load())
    if not args or args[0] not in families:
        print(f"usage: make exp FAMILY=<family>; families: {', '.join(families)}", file=sys.stderr)
        return 2
    family, extra = args[0], [a for a in args[1:] if a != "--"]
    result = subprocess.run([tool("dvc"), "exp", "show", "--csv", *exp_show_flags(family), *extra],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr.strip(), file=sys.stderr)
        return result.returncode
    print(table(result.stdout, family), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
