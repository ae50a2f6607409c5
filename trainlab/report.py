"""Every family's findings on one page, and their verdicts as metrics (the ``report`` stage).

From ``reports/findings/<family>.json`` (written by ``evaluate@<family>``):

- ``reports/metrics/findings.json``: over every family, how many findings have each outcome
  (the headline ``dvc metrics diff`` shows; which finding changed is in ``make diff``);
- ``reports/index.html``: the report page (static; it opens from disk, and its one inline script only opens
  the family a link or the address names);
- ``reports/README.md``: the short Markdown twin a git host renders (summary first, then per family).

Both say which run they describe: the git commit, whether tracked files had uncommitted changes, a hash
of params.yaml and when they were rendered (UTC).
"""

from __future__ import annotations

import html
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from trainlab import params as P
from trainlab.io import write_with
from trainlab.revision import git_commit, git_dirty, params_hash

VERDICTS = ("holds", "equivalent", "does not hold", "seed-dependent", "undecided at the cap", "not judged",
            "book data only")
MARK = {"holds": "✅", "equivalent": "🟰", "does not hold": "❌", "seed-dependent": "🎲", "undecided at the cap": "❔",
        "not judged": "⏸️", "book data only": "📖"}
DESIGN = ("How many seeds, and when a verdict is reached: each configuration first trains on {start} seeds. "
          "After every round the findings are checked; a finding is decided only when its evidence is strong "
          "enough that, had the book been wrong, a verdict this strong would come up rarely, even though we "
          "looked after every round ({spending} boundaries: the bar each round sets is stricter than a single "
          "test at 0.05, so looking again and again cannot manufacture a verdict). The findings of one family "
          "share one error budget of {alpha}: each of m findings starts with {alpha}/m, and a decided finding "
          "hands its share to those still open, which are then held to a looser bar (Holm's step-down). The "
          "configurations that an undecided finding reads get {block} more seeds per round, up to {cap}; a "
          "claim about what one run does whose share of seeds showing it lies, with every seed the design allows, "
          "inside a band (its 95 % interval within [0.2, 0.8]) is <i>seed-dependent</i>: one run shows it or not "
          "depending on the seed. Any other finding still undecided there is reported as <i>undecided at the "
          "cap</i>, with the way it leans and the seeds its observed effect would need. Each finding leads with "
          "its estimate and 95 % interval, and the share of single runs (seeds) that show the book's statement as "
          "printed. Bimodal and censored quantities are compared by the share of seeds where one configuration "
          "beats the other (an exact sign test with exact boundaries), never by a t-test. Two configurations "
          "compared on the same seeds are compared seed by seed (paired), which removes the luck they share. "
          "Threshold claims (\"above 0.95\") count the seeds on each"
          " side (a sign test), so a few failed seeds cannot hide a typical success; claims of sameness are "
          "<i>equivalent</i> when the difference is shown to lie inside the margin the claim states. Design: "
          "Lan-DeMets alpha spending (Lan & DeMets 1983; Jennison & Turnbull 2000), weighted Holm within a "
          "family, recycled over rounds as Maurer & Bretz (2013) show is valid.")
SPENDING_NAME = {"pocock": "Pocock-type", "obrien_fleming": "O'Brien-Fleming-type"}
CHAPTER = re.compile(r"book chapter (\d+)([a-z]?)")


def describe_run(root: Path) -> dict:
    """Which run a page describes: short commit, dirty flag (None: unknown), params.yaml hash, UTC time."""
    commit = git_commit(root)
    params_file = root / P.PARAMS_FILE
    return {"commit": commit if commit == "unknown" else commit[:10], "dirty": git_dirty(root),
            "params_hash": params_hash(P.load(params_file)) if params_file.is_file() else "unknown",
            "rendered": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def run_text(run: dict | None) -> str:
    """"Rendered 2026-12-05 14:20 UTC from commit 1a2b3c4d5e (clean tree), params.yaml hash 0123456789ab"."""
    if not run:
        return ""
    tree = {True: "with uncommitted changes to tracked files", False: "clean tree"}.get(run["dirty"],
                                                                                       "tree state unknown")
    return (f"Rendered {run['rendered']} from commit {run['commit']} ({tree}), "
            f"params.yaml hash {run['params_hash']}.")


def load(findings_dir: Path) -> list[dict]:
    """The families' findings files, in the book's chapter order (then by name)."""
    families = [json.loads(path.read_text()) for path in sorted(findings_dir.glob("*.json"))]

    def order(family: dict) -> tuple:
        chapter = CHAPTER.search(family.get("title", ""))
        return (int(chapter.group(1)), chapter.group(2), family["family"]) if chapter else (999, "", family["family"])
    return sorted(families, key=order)


def key(verdict: str) -> str:
    """A verdict as a metrics key: "undecided at the cap" -> "undecided_at_the_cap"."""
    return re.sub(r"[ -]", "_", verdict)


def counts(findings: list[dict]) -> dict[str, int]:
    verdicts = [f["verdict"] for f in findings]
    return {"findings": len(verdicts), **{key(v): verdicts.count(v) for v in VERDICTS}}


def metrics(families: list[dict]) -> dict:
    """The headline ``dvc metrics show|diff`` prints: over every family, how many findings have each
    outcome (their sum: the number of findings), as one row of flat columns (per-family columns made the
    table thousands of characters wide). Each family's findings, verdicts and p-values stay in
    reports/findings/<family>.json, and ``make diff`` names the findings whose outcome changed."""
    total = counts([f for family in families for f in family["findings"]])
    # Narrow columns: the number of findings is the row's sum, and "undecided" (at the cap) is enough here.
    return {("undecided" if k == "undecided_at_the_cap" else k): n for k, n in total.items() if k != "findings"}


# ---------------------------------------------------------------- numbers in words

def num(x: float | None) -> str:
    if x is None:
        return "—"
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.3f}"
    return f"{x:.2e}"


def pval(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def p_text(p: float | None) -> str:
    text = pval(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def ours(row: dict) -> tuple[str, str]:
    """(mean ± std, 95 % interval) of a book-vs-ours row or a sample."""
    if not row.get("n"):  # it ran when its seeds diverged: say so, not "not run"
        diverged = row.get("diverged") or "diverged" in (row.get("note") or "")
        return ("every seed diverged" if diverged else "not run"), "—"
    return f"{num(row['mean'])} ± {num(row['std'])}", f"[{num(row['ci95_low'])}, {num(row['ci95_high'])}]"


def book_number(row: dict) -> str:
    return num(row["book"]) + (f" ± {num(row['book_std'])}" if row.get("book_std") is not None else "")


def estimate(f: dict) -> str:
    """The estimate in its unit with its 95 % interval: "difference (paired) 0.012 [0.004, 0.020]"."""
    e = f.get("estimate")
    if not e or e.get("value") is None:
        return "—"
    text = f"{e['kind']} {num(e['value'])}"
    if e.get("low") is not None and e.get("high") is not None:
        text += f" [{num(e['low'])}, {num(e['high'])}]"
    if e.get("solving_mean") is not None:
        text += f"; the solving seeds average {num(e['solving_mean'])}"
    if e.get("margin") is not None:
        text += f" (margin ±{num(e['margin'])})"
    return text


def percent(x: float) -> str:
    return f"{100 * x:.0f} %"


def one_run(f: dict) -> str:
    """How often one run shows the statement as printed: "55 % [32–77 %] of 20 seeds"."""
    shown = f.get("one_run")
    if not shown or shown.get("share") is None:
        return "—" if f.get("verdict") in ("not judged", "book data only") else "one run cannot show it"
    text = percent(shown["share"])
    if shown.get("low") is not None:
        text += f" [{100 * shown['low']:.0f}–{percent(shown['high'])}]"
    return text + f" of {shown['seeds']} seeds"


def samples(f: dict) -> list[str]:
    lines = []
    for s in f["samples"]:
        mean, _ = ours(s)
        lines.append(f"{s['label']}: {mean} (n={s['n']})" + (f"; {s['note']}" if s.get("note") else ""))
    return lines


def tallies(total: dict) -> tuple[str, str, str]:
    """'8 hold', '1 does not hold', '3 inconclusive'."""
    def tally(n: int, one: str, many: str) -> str:
        return f"{n} {one if n == 1 else many}"
    return (tally(total["holds"] + total["equivalent"], "holds", "hold") + f" ({total['equivalent']} equivalent)",
            tally(total["does_not_hold"], "does not hold", "do not hold"),
            f"{total['seed_dependent']} seed-dependent, {total['undecided_at_the_cap']} undecided at the cap")


def families_text(families: list[dict]) -> str:
    return f"{len(families)} {'family' if len(families) == 1 else 'families'}"


def seeds(family: dict) -> str:
    chosen = family["seeds"]
    text = f"{len(chosen)} seeds ({chosen[0]}–{chosen[-1]})" if len(chosen) > 1 else f"seed {chosen[0]}"
    per = family.get("config_seeds")
    if per and len(set(per.values())) > 1:
        text += "; seeds per configuration: " + ", ".join(f"{c} {n}" for c, n in per.items())
    if family.get("design"):
        text += f"; {family['design']['rounds']} round(s) of {family['design']['looks']}"
    return text


def stopped(f: dict) -> str:
    """Where the sequential design stopped a finding: its round, seeds and boundary (and seeds it would need)."""
    seq = f.get("sequential")
    if not seq:
        return "—"
    text = (f"round {seq['round']} ({seq['seeds']} seeds), boundary p < {pval(seq['boundary_p'])}"
            f" (alpha {pval(seq['alpha'])})")
    if seq.get("leans"):
        text += f"; leans towards {seq['leans']}"
    if "seeds_needed" in seq:
        text += ("; ~" + f"{seq['seeds_needed']} seeds would decide it that way" if seq["seeds_needed"] else
                 "; seeds needed: not meaningful (bimodal or censored quantity, or no effect seen)")
    return text


def design_text(families: list[dict]) -> str:
    """The design paragraph, for the design most families use; the families with their own looks listed."""
    designs = [(f["family"], f["design"]) for f in families if f.get("design")]
    if not designs:
        return ""

    def key(design: dict) -> tuple:
        return tuple(design[k] for k in ("start", "block", "cap", "spending", "alpha"))

    usual = Counter(key(d) for _, d in designs).most_common(1)[0][0]
    design = next(d for _, d in designs if key(d) == usual)
    text = DESIGN.format(start=design["start"], block=design["block"], cap=design["cap"], alpha=design["alpha"],
                         spending=SPENDING_NAME.get(design["spending"], design["spending"]))
    own = [f"{name} {', '.join(str(n) for n in d['looks'])}" for name, d in designs if key(d) != usual]
    if own:
        text += (" Families with looks of their own (seeds per configuration at each look, set by their "
                 "<code>sequential</code> or <code>seeds</code> in params.yaml): " + "; ".join(own) + ".")
    return text


def figure_path(path: str) -> str:
    """Figure paths are repository-relative; the page sits in reports/."""
    return path.removeprefix("reports/")


# ---------------------------------------------------------------- HTML

CSS = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1180px; margin: 2em auto; padding: 0 1em; color: #222;
       overflow-wrap: break-word; }
table { border-collapse: collapse; margin: 0.8em 0 1.4em; font-size: 13.5px; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.wide { max-width: 100%; overflow-x: auto; }
.verdict { font-weight: 600; white-space: nowrap; padding: 0.1em 0.5em; border-radius: 0.6em; }
.holds { background: #dcf5dc; color: #185c18; }
.does-not-hold { background: #fadcdc; color: #8a1616; }
.inconclusive, .undecided-at-the-cap { background: #ececec; color: #555; }
.seed-dependent { background: #f3e6fa; color: #5a2a7a; }
.equivalent { background: #dcecf5; color: #16508a; }
.not-judged { background: #fff4d6; color: #7a5a00; }
figure { display: inline-block; max-width: 100%; margin: 0.5em 1em 0.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; }
.detail { font-size: 12.5px; color: #444; margin: 0.2em 0 0; padding-left: 1.2em; }
details.more > summary { font-size: 12.5px; color: #555; }
.tests { font-size: 13px; color: #444; }
.run { font-size: 13px; color: #555; }
code { background: #f5f5f5; padding: 0 0.2em; }
nav { display: flex; flex-wrap: wrap; gap: 0.2em 0.9em; margin: 0.5em 0; }
details.family > summary { cursor: pointer; margin: 1.2em 0 0.4em; }
details.family > summary h2 { display: inline; margin: 0; }
.tally { color: #555; font-size: 14px; margin-left: 0.6em; }
details > summary { cursor: pointer; }
@media (max-width: 700px) {
  body { margin: 1em auto; padding: 0 0.6em; }
  /* the summary table keeps every column: its verdict headings wrap instead of widening it */
  table.glance th .verdict { white-space: normal; display: inline-block; }
  table.glance th, table.glance td { padding: 0.25em 0.3em; }
  /* tables of findings and numbers: one block per row, each cell under its column's name */
  table.rows, table.rows tbody, table.rows tr, table.rows td { display: block; }
  table.rows tr:first-child { display: none; }
  table.rows tr { border: 1px solid #ccc; margin: 0 0 0.6em; padding: 0.2em 0.4em; }
  table.rows td { border: none; padding: 0.1em 0; text-align: left; white-space: normal; }
  table.rows td[data-label]::before { content: attr(data-label) ": "; color: #666; font-size: 12px; }
}
"""

# Links to a family (nav, summary table, an address ending in #learning_rate) should show it open: opening
# the <details> the address names, and every <details> around it, is all this script does.
OPEN_TARGET = """<script>
function openTarget() {
  const id = decodeURIComponent(location.hash.slice(1));
  const target = id && document.getElementById(id);
  if (!target) return;
  for (let node = target; node; node = node.parentElement) {
    if (node.tagName === "DETAILS") node.open = true;
  }
  target.scrollIntoView();
}
window.addEventListener("hashchange", openTarget);
window.addEventListener("DOMContentLoaded", openTarget);
</script>"""


def h(text: object) -> str:
    """Escape text, and turn the docstrings' ``code`` into <code>."""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", html.escape(str(text)))


def badge(verdict: str) -> str:
    return f'<span class="verdict {verdict.replace(" ", "-")}">{verdict}</span>'


def html_paragraph(paragraph: str) -> str:
    """A setup paragraph; its lines starting "- " become a list."""
    lines = paragraph.split("\n")
    text = [line for line in lines if not line.startswith("- ")]
    items = [line[2:] for line in lines if line.startswith("- ")]
    out = f"<p>{h(' '.join(text))}</p>" if text else ""
    return out + ("<ul>" + "".join(f"<li>{h(item)}</li>" for item in items) + "</ul>" if items else "")


def family_tally(family: dict) -> dict[str, int]:
    verdicts = [f["verdict"] for f in family["findings"]]
    return {v: verdicts.count(v) for v in VERDICTS}


def row(cells: list[tuple[str, str]], attrs: str = "") -> str:
    """A table row of (column name, cell HTML); the name labels the cell where a phone stacks the row.
    A cell HTML starting with "n:" is a number (right-aligned)."""
    tds = []
    for label, cell in cells:
        numeric = cell.startswith("n:")
        css = ' class="n"' if numeric else ""
        tds.append(f'<td{css} data-label="{html.escape(label)}">{cell[2:] if numeric else cell}</td>')
    return f"<tr{attrs}>" + "".join(tds) + "</tr>"


def header(names: list[str]) -> str:
    return "<tr>" + "".join(f"<th>{name}</th>" for name in names) + "</tr>"


def test_label(test: str) -> str:
    """The short name of a test ("sign test", "paired t-test"): its description up to ":" or "("."""
    return re.split(r"[:(]", test, maxsplit=1)[0].strip() or test


def tests_of(family: dict) -> dict[str, int]:
    """Each distinct test description of a family's findings and parts, numbered in order of first use."""
    numbered: dict[str, int] = {}
    for f in family["findings"]:
        for test in [f["test"], *(part["test"] for part in f.get("parts", []))]:
            numbered.setdefault(test, len(numbered) + 1)
    return numbered


def html_page(families: list[dict], run: dict | None = None) -> str:
    total = counts([f for family in families for f in family["findings"]])
    held, failed, unsure = tallies(total)
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<title>trainlab: the book\'s findings, rerun over seeds</title>', f"<style>{CSS}</style>",
           f"{OPEN_TARGET}</head><body>",
           "<h1>trainlab: the findings of <i>Better Deep Learning</i>, rerun over seeds</h1>"]
    if run:
        out.append(f'<p class="run" id="run">{h(run_text(run))}</p>')
    out.append(f"<p><b>{total['findings']} findings</b> checked over {families_text(families)}: "
               f"<b>{held}</b>, {failed}, {unsure}.</p>")
    out.append("<nav>" + "".join(f'<a href="#{f["family"]}">{h(f["family"])}</a>' for f in families) + "</nav>")
    # at a glance: one row per family, its verdicts counted and the seeds it spent
    shown = [v for v in VERDICTS if total[key(v)]]
    out.append('<div class="wide"><table class="glance">' + header(["family", *map(badge, shown), "seeds spent"]))
    for family in families:
        tally = family_tally(family)
        spent = sum((family.get("config_seeds") or {}).values())
        out.append(row([("family", f'<a href="#{family["family"]}">{h(family["family"])}</a>'),
                        *((v, f"n:{tally[v] or ''}") for v in shown),
                        ("seeds spent", f"n:{spent or len(family['seeds'])}")]))
    out.append("</table></div>")
    if families:
        if design_text(families):
            out.append(f"<p>{design_text(families)}</p>")
        out.append(f"<details><summary>The verdict rule in full</summary><p>{h(families[0]['rule'])} Numbers are "
                   f"over seeds: {NUMBERS}</p></details>")
    out.append('<details id="summary"><summary>All findings, one line each</summary><div class="wide">'
               '<table class="rows">'
               + header(["family", "finding", "estimate [95 % interval]", "one run shows it in", "verdict", "p"]))
    for family in families:
        for f in family["findings"]:
            anchor = f"{family['family']}-{f['id']}"
            out.append(row([("family", f'<a href="#{family["family"]}">{h(family["family"])}</a>'),
                            ("finding", f'<a href="#{anchor}">{h(f["claim"])}</a>'), ("estimate", h(estimate(f))),
                            ("one run shows it in", h(one_run(f))), ("verdict", badge(f["verdict"])),
                            ("p", f"n:{pval(f['p_value'])}")]))
    out.append("</table></div></details>")
    for family in families:
        out.extend(html_family(family))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


NUMBERS = ("mean ± standard deviation, a 95 % t-interval (for accuracies, which cannot leave [0, 1], the "
           "t-interval cut at 0 and 1: the true mean lies inside, so the cut loses no coverage), and n (seeds "
           "that did not diverge). Shares of seeds carry exact (Clopper-Pearson) intervals, which stay in "
           "[0, 1] by construction. The book's numbers are single runs unless a spread is given. "
           "<code>val_</code> metrics are on the book's test split.")


def html_family(family: dict) -> list[str]:
    name = family["family"]
    plural = {"holds": "hold", "does not hold": "do not hold"}
    tally = ", ".join(f"{n} {plural.get(v, v) if n > 1 else v}" for v, n in family_tally(family).items() if n)
    out = [f'<details class="family" id="{name}"><summary><h2>{h(name)}</h2> <span class="tally">{h(tally)}'
           f"</span></summary>", f"<p><b>{h(family['title'])}</b></p>"]
    out += [html_paragraph(paragraph) for paragraph in family["setup"]]
    out.append(f"<p>Rerun over {seeds(family)}.</p>")
    for path in family["figures"]:
        src = html.escape(figure_path(path))
        out.append(f'<figure><a href="{src}"><img src="{src}" alt="{h(name)}: {h(Path(path).stem)}"></a>'
                   f"<figcaption>{h(Path(path).stem)}</figcaption></figure>")
    if family["book"]:
        out.append('<h3>Book vs ours</h3><div class="wide"><table class="rows">'
                   + header(["configuration", "metric", "book", "ours: mean ± std", "95 % interval", "n",
                             "book inside our interval"]))
        for line in family["book"]:
            mean, interval = ours(line)
            out.append(row([("configuration", h(line["config"])), ("metric", h(line["metric"])),
                            ("book", f"n:{book_number(line)}"), ("ours", f"n:{mean}"),
                            ("95 % interval", f"n:{interval}"),
                            ("n", f"n:{line['n']}"), ("book inside", "yes" if line["book_inside_ci95"] else "no")]))
        out.append("</table></div>")
    out.append("<h3>Findings</h3>")
    if not family["findings"]:
        out.append("<p>No findings declared for this family yet.</p>")
        return [*out, "</details>"]
    tests = tests_of(family)

    def test_ref(test: str) -> str:
        return f'{h(test_label(test))} <a href="#{name}-test-{tests[test]}">[T{tests[test]}]</a>'

    out.append('<div class="wide"><table class="rows">'
               + header(["finding", "estimate [95 % interval]", "one run shows it in", "verdict", "test",
                         "statistic", "p", "stopped at"]))
    for f in family["findings"]:
        detail = [h(f"checked: {f['statement']}"), *map(h, samples(f))]
        if f.get("note"):
            detail.append(h(f["note"]))
        for part in f.get("parts", []):
            detail.append(h(f"{part['statement']}: {estimate(part)}; one run shows it in {one_run(part)}; "
                            f"{part['verdict']}, ") + test_ref(part["test"]) + h(f", {p_text(part['p_value'])}"))
        items = "".join(f"<li>{line}</li>" for line in detail)
        claim = (f'{h(f["claim"])}<details class="more"><summary>what was checked</summary>'
                 f'<ul class="detail">{items}</ul></details>')
        out.append(row([("finding", claim), ("estimate", h(estimate(f))), ("one run shows it in", h(one_run(f))),
                        ("verdict", badge(f["verdict"])), ("test", test_ref(f["test"])),
                        ("statistic", f"n:{num(f['statistic'])}"), ("p", f"n:{pval(f['p_value'])}"),
                        ("stopped at", h(stopped(f)))], f' id="{name}-{f["id"]}"'))
    out.append("</table></div>")
    out.append('<ol class="tests">' + "".join(f'<li id="{name}-test-{n}" value="{n}">T{n}: {h(test)}</li>'
                                              for test, n in tests.items()) + "</ol>")
    return [*out, "</details>"]


# ---------------------------------------------------------------- Markdown

def md(text: object) -> str:
    """Table-safe Markdown text; the docstrings' ``code`` becomes `code`."""
    return re.sub(r"``(.+?)``", r"`\1`", str(text)).replace("|", "\\|").replace("\n", " ")


def markdown_page(families: list[dict], run: dict | None = None) -> str:
    """Summary first (counts per family), then each family's findings under its heading, its book numbers
    and figures; the method paragraphs last. Setups and per-finding details are on the HTML page."""
    total = counts([f for family in families for f in family["findings"]])
    held, failed, unsure = tallies(total)
    out = ["# trainlab: the findings of *Better Deep Learning*, rerun over seeds", "",
           "<!-- Written by `python -m stages.report` (the `report` stage of dvc.yaml); do not edit. -->", ""]
    if run:
        out += [run_text(run), ""]
    out += [f"**{total['findings']} findings** checked over {families_text(families)}: **{held}**, {failed}, "
            f"{unsure}. The full page, with each family's setup and what each finding checked, opens from disk: "
            "[index.html](index.html). How the verdicts are reached: [below](#how-the-verdicts-are-reached).", ""]
    shown = [v for v in VERDICTS if total[key(v)]]
    out += ["| family | " + " | ".join(f"{MARK.get(v, '')} {v}" for v in shown) + " | seeds spent |",
            "| --- | " + " | ".join("---:" for _ in shown) + " | ---: |"]
    for family in families:
        tally = family_tally(family)
        spent = sum((family.get("config_seeds") or {}).values()) or len(family["seeds"])
        out.append(f"| [{family['family']}](#{family['family']}) | "
                   + " | ".join(str(tally[v] or "") for v in shown) + f" | {spent} |")
    for family in families:
        out += ["", *markdown_family(family)]
    out += ["", "## How the verdicts are reached", ""]
    if families:
        out += [f"{families[0]['rule']} Numbers are over seeds: "
                + NUMBERS.replace("<code>", "`").replace("</code>", "`"), ""]
        if design_text(families):
            out += [design_text(families).replace("<i>", "*").replace("</i>", "*").replace("<code>", "`")
                    .replace("</code>", "`"), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def markdown_family(family: dict) -> list[str]:
    name = family["family"]
    out = [f"## {name}", "", f"**{md(family['title'])}** Rerun over {seeds(family)}. "
           f"[Setup and details](index.html#{name}).", ""]
    if family["findings"]:
        tests = tests_of(family)
        out += ["| finding | estimate [95 % interval] | one run shows it in | verdict | p | test |",
                "| --- | --- | --- | --- | ---: | --- |"]
        for f in family["findings"]:
            out.append(f"| {md(f['claim'])} | {md(estimate(f))} | {md(one_run(f))} | "
                       f"{MARK.get(f['verdict'], '')} {f['verdict']} | {pval(f['p_value'])} | "
                       f"{md(test_label(f['test']))} (T{tests[f['test']]}) |")
        out += ["", "Tests: " + "; ".join(f"T{n} {md(test)}" for test, n in tests.items()) + "."]
    else:
        out.append("No findings declared for this family yet.")
    if family["book"]:
        out += ["", "| book vs ours: configuration | metric | book | ours: mean ± std | 95 % interval | n "
                "| book inside |", "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for line in family["book"]:
            mean, interval = ours(line)
            out.append(f"| {md(line['config'])} | {md(line['metric'])} | {book_number(line)} | {mean} | {interval} | "
                       f"{line['n']} | {'yes' if line['book_inside_ci95'] else 'no'} |")
    if family["figures"]:  # on one line: a git host shows them side by side
        out += ["", " ".join(f"![{name}: {Path(path).stem}]({figure_path(path)})" for path in family["figures"])]
    return out


def write_text(path: Path, render: Callable[[], str]) -> None:
    text = render()
    write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
