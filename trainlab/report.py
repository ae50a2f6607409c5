"""Every family's findings on one page, and their verdicts as metrics (the ``report`` stage).

From ``reports/findings/<family>.json`` (written by ``evaluate@<family>``):

- ``reports/metrics/findings.json``: over every family, how many findings have each outcome
  (the headline ``dvc metrics diff`` shows; which finding changed is in ``make diff``);
- ``reports/index.html``: the report page (static, no scripts: it opens from disk);
- ``reports/README.md``: the same page in Markdown, which a git host renders.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from trainlab.io import write_with

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
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1180px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0 1.4em; font-size: 13.5px; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 600; white-space: nowrap; padding: 0.1em 0.5em; border-radius: 0.6em; }
.holds { background: #dcf5dc; color: #185c18; }
.does-not-hold { background: #fadcdc; color: #8a1616; }
.inconclusive, .undecided-at-the-cap { background: #ececec; color: #555; }
.seed-dependent { background: #f3e6fa; color: #5a2a7a; }
.equivalent { background: #dcecf5; color: #16508a; }
.not-judged { background: #fff4d6; color: #7a5a00; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; }
.detail { font-size: 12.5px; color: #444; margin: 0.2em 0 0; padding-left: 1.2em; }
code { background: #f5f5f5; padding: 0 0.2em; }
nav { display: flex; flex-wrap: wrap; gap: 0.2em 0.9em; margin: 0.5em 0; }
details.family > summary { cursor: pointer; margin: 1.2em 0 0.4em; }
details.family > summary h2 { display: inline; margin: 0; }
.tally { color: #555; font-size: 14px; margin-left: 0.6em; }
details > summary { cursor: pointer; }
"""


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


def html_page(families: list[dict]) -> str:
    total = counts([f for family in families for f in family["findings"]])
    held, failed, unsure = tallies(total)
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<title>trainlab: the book\'s findings, rerun over seeds</title>', f"<style>{CSS}</style></head><body>",
           "<h1>trainlab: the findings of <i>Better Deep Learning</i>, rerun over seeds</h1>",
           f"<p><b>{total['findings']} findings</b> checked over {families_text(families)}: "
           f"<b>{held}</b>, {failed}, {unsure}.</p>"]
    out.append("<nav>" + "".join(f'<a href="#{f["family"]}">{h(f["family"])}</a>' for f in families) + "</nav>")
    # at a glance: one row per family, its verdicts counted and the seeds it spent
    shown = [v for v in VERDICTS if total[key(v)]]
    out.append('<table class="glance"><tr><th>family</th>' + "".join(f"<th>{badge(v)}</th>" for v in shown)
               + "<th>seeds spent (all configurations)</th></tr>")
    for family in families:
        tally = family_tally(family)
        spent = sum((family.get("config_seeds") or {}).values())
        out.append(f'<tr><td><a href="#{family["family"]}">{h(family["family"])}</a></td>'
                   + "".join(f'<td class="n">{tally[v] or ""}</td>' for v in shown)
                   + f'<td class="n">{spent or len(family["seeds"])}</td></tr>')
    out.append("</table>")
    if families:
        if design_text(families):
            out.append(f"<p>{design_text(families)}</p>")
        out.append(f"<details><summary>The verdict rule in full</summary><p>{h(families[0]['rule'])} Numbers are "
                   "over seeds: mean ± standard deviation, a 95 % t-interval, and n (seeds that did not diverge). "
                   "The book's numbers are single runs unless a spread is given. <code>val_</code> metrics are on "
                   "the book's test split.</p></details>")
    out.append("<details id=\"summary\"><summary>All findings, one line each</summary><table><tr><th>family</th>"
               "<th>finding</th><th>estimate [95 % interval]</th><th>one run shows it in</th><th>verdict</th>"
               "<th>p</th></tr>")
    for family in families:
        for f in family["findings"]:
            anchor = f"{family['family']}-{f['id']}"
            out.append(f'<tr><td><a href="#{family["family"]}">{h(family["family"])}</a></td>'
                       f'<td><a href="#{anchor}">{h(f["claim"])}</a></td><td>{h(estimate(f))}</td>'
                       f'<td>{h(one_run(f))}</td><td>{badge(f["verdict"])}</td>'
                       f'<td class="n">{pval(f["p_value"])}</td></tr>')
    out.append("</table></details>")
    for family in families:
        out.extend(html_family(family))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


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
        out.append("<h3>Book vs ours</h3><table><tr><th>configuration</th><th>metric</th><th>book</th>"
                   "<th>ours: mean ± std</th><th>95 % interval</th><th>n</th><th>book inside our interval</th></tr>")
        for row in family["book"]:
            mean, interval = ours(row)
            out.append(f"<tr><td>{h(row['config'])}</td><td>{h(row['metric'])}</td><td class=\"n\">"
                       f"{book_number(row)}</td><td class=\"n\">{mean}</td><td class=\"n\">{interval}</td>"
                       f"<td class=\"n\">{row['n']}</td><td>{'yes' if row['book_inside_ci95'] else 'no'}</td></tr>")
        out.append("</table>")
    out.append("<h3>Findings</h3>")
    if not family["findings"]:
        out.append("<p>No findings declared for this family yet.</p>")
        return [*out, "</details>"]
    out.append("<table><tr><th>finding</th><th>estimate [95 % interval]</th><th>one run shows it in</th>"
               "<th>verdict</th>"
               "<th>test</th><th>statistic</th><th>p</th><th>stopped at</th></tr>")
    for f in family["findings"]:
        detail = [f"checked: {f['statement']}", *samples(f)]
        if f.get("note"):
            detail.append(f["note"])
        for part in f.get("parts", []):
            detail.append(f"{part['statement']}: {estimate(part)}; one run shows it in {one_run(part)}; "
                          f"{part['verdict']}, "
                          f"{part['test']}, {p_text(part['p_value'])}")
        items = "".join(f"<li>{h(line)}</li>" for line in detail)
        out.append(f'<tr id="{name}-{f["id"]}"><td>{h(f["claim"])}<ul class="detail">{items}</ul></td>'
                   f"<td>{h(estimate(f))}</td><td>{h(one_run(f))}</td>"
                   f"<td>{badge(f['verdict'])}</td><td>{h(f['test'])}</td><td class=\"n\">{num(f['statistic'])}</td>"
                   f"<td class=\"n\">{pval(f['p_value'])}</td><td>{h(stopped(f))}</td></tr>")
    out.append("</table>")
    return [*out, "</details>"]


# ---------------------------------------------------------------- Markdown

def md(text: object) -> str:
    """Table-safe Markdown text; the docstrings' ``code`` becomes `code`."""
    return re.sub(r"``(.+?)``", r"`\1`", str(text)).replace("|", "\\|").replace("\n", " ")


def markdown_page(families: list[dict]) -> str:
    total = counts([f for family in families for f in family["findings"]])
    held, failed, unsure = tallies(total)
    out = ["# trainlab: the findings of *Better Deep Learning*, rerun over seeds", "",
           "<!-- Written by `python -m stages.report` (the `report` stage of dvc.yaml); do not edit. -->", "",
           f"**{total['findings']} findings** checked over {families_text(families)}: **{held}**, {failed}, {unsure}. "
           "The same page with its figures opens from disk: [index.html](index.html).", ""]
    if families:
        out += [f"{families[0]['rule']} Numbers are over seeds: mean ± standard deviation, a 95 % t-interval, "
                "and n (seeds that did not diverge). The book's numbers are single runs unless a spread is given. "
                "`val_` metrics are on the book's test split.", ""]
        if design_text(families):
            out += [design_text(families).replace("<i>", "*").replace("</i>", "*").replace("<code>", "`")
                    .replace("</code>", "`"), ""]
    out += ["| family | finding | estimate [95 % interval] | one run shows it in | verdict | p |",
            "| --- | --- | --- | --- | --- | ---: |"]
    for family in families:
        for f in family["findings"]:
            out.append(f"| [{family['family']}](#{family['family']}) | {md(f['claim'])} | {md(estimate(f))} | "
                       f"{md(one_run(f))} | {MARK.get(f['verdict'], '')} {f['verdict']} | {pval(f['p_value'])} |")
    for family in families:
        out += ["", *markdown_family(family)]
    return "\n".join(out) + "\n"


def markdown_family(family: dict) -> list[str]:
    name = family["family"]
    out = [f"## {name}", "", f"**{md(family['title'])}**", ""]
    for paragraph in family["setup"]:  # a "- " line starts a list item; Markdown needs it on its own line
        out += [re.sub(r"``(.+?)``", r"`\1`", paragraph).replace("\n- ", "\n\n- ", 1), ""]
    out += [f"Rerun over {seeds(family)}.", ""]
    out += [f"![{name}: {Path(path).stem}]({figure_path(path)})" for path in family["figures"]]
    if family["book"]:
        out += ["", "### Book vs ours", "", "| configuration | metric | book | ours: mean ± std | 95 % interval | n "
                "| book inside our interval |", "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for row in family["book"]:
            mean, interval = ours(row)
            out.append(f"| {md(row['config'])} | {md(row['metric'])} | {book_number(row)} | {mean} | {interval} | "
                       f"{row['n']} | {'yes' if row['book_inside_ci95'] else 'no'} |")
    out += ["", "### Findings", ""]
    if not family["findings"]:
        return [*out, "No findings declared for this family yet."]
    out += ["| finding | estimate [95 % interval] | one run shows it in | verdict | test | statistic | p "
            "| stopped at |",
            "| --- | --- | --- | --- | --- | ---: | ---: | --- |"]
    for f in family["findings"]:
        out.append(f"| {md(f['claim'])} | {md(estimate(f))} | {md(one_run(f))} | "
                   f"{MARK.get(f['verdict'], '')} {f['verdict']} | {md(f['test'])} | "
                   f"{num(f['statistic'])} | {pval(f['p_value'])} | {md(stopped(f))} |")
    out += ["", "<details><summary>What was checked, per finding</summary>", ""]
    for f in family["findings"]:
        out.append(f"- **{md(f['claim'])}** — {f['statement']}")
        out += [f"  - {line}" for line in samples(f)]
        if f.get("note"):
            out.append(f"  - {f['note']}")
        for part in f.get("parts", []):
            out.append(f"  - {part['statement']}: {estimate(part)}; one run shows it in {one_run(part)}; "
                       f"{part['verdict']}, "
                       f"{part['test']}, {p_text(part['p_value'])}")
    return [*out, "", "</details>"]


def write_text(path: Path, render: Callable[[], str]) -> None:
    text = render()
    write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
