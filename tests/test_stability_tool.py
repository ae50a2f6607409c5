"""``tools.stability.compare``: agreement counted among outcomes both runs decided, contradictions apart."""

from __future__ import annotations

from tools.stability import compare


def test_agreement_is_among_decided_outcomes_and_contradictions_are_counted_on_their_own():
    first = {"verdicts": {"a": "holds", "b": "undecided at the cap", "c": "holds", "d": "equivalent",
                          "e": "seed-dependent", "f": "holds"}}
    second = {"verdicts": {"a": "holds", "b": "undecided at the cap", "c": "does not hold", "d": "undecided at the cap",
                           "e": "seed-dependent", "f": "seed-dependent"}}
    c = compare(first, second)
    assert c["findings"] == 6 and c["decided_both"] == 4  # a, c, e, f: two undecided are not an agreement
    assert c["agree"] == 2 and c["contradictions"] == 1  # a and e agree; c holds once and fails once
    assert c["one_side"] == 1 and c["neither"] == 1  # d decided once; b never
    assert set(c["differ"]) == {"c", "d", "f"}
