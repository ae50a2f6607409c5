"""Transfer's figure (``model``): the final test accuracy per configuration, the mean test-accuracy curves, and
the spread between the source models."""

from __future__ import annotations

import pandas as pd

from trainlab.families.transfer import labels, source_index, sources_of, standalone
from trainlab.figures.common import curve_band, seed_count


def figures(history: pd.DataFrame, cfg: dict) -> dict:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    trained = set(history["config"].unique())
    named = {config: label for config, label in labels(cfg).items() if str(config) in trained}
    final_rows = history[(history["metric"] == "val_accuracy")
                         & (history["epoch"] == history.groupby("config")["epoch"].transform("max"))]
    sources = sources_of(cfg)
    fig, (left, right, between) = plt.subplots(1, 3, figsize=(16, 4.2))
    left.boxplot([final_rows.loc[final_rows["config"] == str(c), "value"].to_numpy() for c in named])
    left.set_xticks(range(1, len(named) + 1), list(named.values()))
    left.set_ylabel("test accuracy (problem 2)")
    left.grid(alpha=0.3, axis="y")
    for config, label in named.items():
        band = curve_band(history, config, "val_accuracy")
        line, = right.plot(band.index, band["mean"], label=label.replace("\n", " "), linewidth=1.2)
        right.fill_between(band.index, band["mean"] - band["std"], band["mean"] + band["std"],
                           color=line.get_color(), alpha=0.15, linewidth=0)
    right.set_xlabel("epoch")
    right.set_ylabel("test accuracy")
    right.grid(alpha=0.3)
    right.legend(fontsize="small")
    # the spread between sources: each source model's mean over the repeats that started from it
    final_rows = final_rows.assign(source=[source_index(s, len(sources)) for s in final_rows["seed"]])
    spreads = []
    for offset, (config, label) in enumerate(named.items()):
        if config == standalone():
            continue
        means = final_rows[final_rows["config"] == str(config)].groupby("source")["value"].agg(["mean", "std"])
        between.errorbar(means.index + 1 + 0.08 * (offset - 1), means["mean"], yerr=means["std"].fillna(0.0),
                         fmt="o", capsize=3, label=label.replace("\n", " "))
        spreads.append(f"{label.splitlines()[-1]} {means['mean'].std(ddof=1):.3f}" if len(means) > 1 else "")
    if standalone() in named:
        reference = final_rows.loc[final_rows["config"] == str(standalone()), "value"].mean()
        between.axhline(reference, color="grey", linestyle="--", linewidth=1, label="standalone (mean)")
    between.xaxis.set_major_locator(MaxNLocator(integer=True))
    between.set_xlabel(f"source model (1 = the book's; repeat s starts from source (s - 1) mod {len(sources)} + 1)",
                       fontsize="small")
    between.set_ylabel("test accuracy over its repeats (mean ± std)")
    between.grid(alpha=0.3, axis="y")
    between.legend(fontsize="x-small")
    between.set_title("between sources, SD of the source means:\n" + (", ".join(filter(None, spreads)) or
                                                                       "one source"), fontsize="small")
    seeds = seed_count(history)
    where = f"data/models/{cfg['source']}.keras" + (f" and data/models/{cfg['source']}/" if len(sources) > 1 else "")
    fig.suptitle(f"Problem 2 (blobs-3) from scratch vs from {len(sources)} problem-1 model(s) ({where})"
                 f"\n{seeds} repeats each; box: final test accuracy; middle: mean curve, band ±1 std")
    fig.tight_layout()
    return {"model": fig}
