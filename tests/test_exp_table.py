"""`make exp FAMILY=<family>`: the flags it gives `dvc exp show`, applied by DVC's own column filter to a
table shaped like the project's (no experiment is run)."""

import pytest
from dvc.cli import parse_args
from dvc.commands.experiments.show import show_experiments
from dvc.compare import TabularData

from tools.exp_table import exp_show_flags, family_names, table

ROWS = ["Experiment", "rev", "typ", "Created", "parent", "State", "Executor"]
# column: (baseline value, experiment value); the experiment changed batch_norm's threshold
COLUMNS = {
    "reports/metrics/batch_norm.json:best_acc": ("0.848", "0.848"),       # the family's metric, unchanged
    "reports/metrics/batch_norm.json:seeds": ("30", "30"),
    "reports/metrics/batch_norm_extra.json:best_acc": ("0.5", "0.6"),     # a family whose name starts alike
    "reports/metrics/adam.json:best_acc": ("0.8", "0.9"),                 # another family's metric, changed
    "families.batch_norm.threshold": ("0.8", "0.75"),                     # the family's param, changed
    "families.batch_norm.epochs": ("100", "100"),                         # the family's param, unchanged
    "families.adam.epochs": ("100", "200"),                               # another family's param, changed
    "families_from_source.transfer.epochs": ("10", "20"),
    "seed": ("1", "2"),                                                   # shared by every family, changed
    "runtime.xla": ("False", "False"),
    "data/runs/batch_norm": ("abc", "def"),                               # a dep hash
    "holds": ("59", "60"),                                                # findings.json
}


def shown_columns(family: str) -> list[str]:
    """The columns `dvc exp show --csv` prints with the flags of `make exp FAMILY=family`."""
    args = parse_args(["exp", "show", "--csv", *exp_show_flags(family)])
    td = TabularData([*ROWS, *COLUMNS])
    td.append(["", "workspace", "baseline", "", "", "", "", *(old for old, _ in COLUMNS.values())])
    td.append(["exp-1", "060aa6e", "branch_base", "2026-12-05T19:02:57", "", "", "",
               *(new for _, new in COLUMNS.values())])
    show_experiments(td, {"metrics": [], "params": [], "deps": []}, keep=args.keep, drop=args.drop, pager=False,
                     csv=True, only_changed=args.only_changed)
    return list(td.keys())  # what is left after DVC dropped columns, the columns it printed


def test_make_exp_keeps_the_familys_metrics_and_changed_params_and_drops_other_families():
    shown = shown_columns("batch_norm")
    assert set(shown) - set(ROWS) == {"reports/metrics/batch_norm.json:best_acc",
                                      "reports/metrics/batch_norm.json:seeds",
                                      "families.batch_norm.threshold", "seed"}
    assert {"Experiment", "rev", "Created"} <= set(shown)  # the rows stay identifiable


def test_make_exp_finds_a_family_of_families_from_source():
    assert "families_from_source.transfer.epochs" in shown_columns("transfer")


def test_the_table_names_columns_without_the_familys_prefix_and_fits_200_characters():
    csv_text = ("Experiment,rev,typ,Created,parent,reports/metrics/batch_norm.json:best_acc,"
                "families.batch_norm.optimizer.learning_rate\n"
                ",workspace,baseline,,,0.848,0.02\n"
                "pavid-bean,060aa6e,branch_base,2026-12-05T19:02:57,,0.851,0.02\n")
    lines = table(csv_text, "batch_norm").splitlines()
    assert lines[1].split() == ["experiment", "created", "best_acc", "optimizer.learning_rate"]
    assert "060aa6e [pavid-bean]" in lines[3]
    assert max(map(len, lines)) <= 200


@pytest.mark.parametrize("section", ["families", "families_from_source", "families_on_results"])
def test_every_section_of_families_names_a_family(section):
    assert family_names({section: {"x": {}}, "sources": {"y": {}}}) == ["x"]
