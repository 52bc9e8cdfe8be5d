"""Report figures and the summary table as HTML, from metrics/summary.csv and structures.parquet.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state, Agg canvas for PNG), so
jobs on headless nodes need no display. Every figure handles missing data by saying so in the
figure: no evaluated structures, a generator without batches, or stability columns that no step
computed ("not computed").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from crystal_campaign import io, tables

RATES = {
    "frac_valid": "valid",
    "frac_unique": "unique",
    "frac_novel": "novel",
    "frac_unique_novel": "unique & novel",
    "frac_stable": "stable",
    "frac_sun": "S.U.N.",
    "frac_msun": "metastable S.U.N.",
}
STABILITY_RATES = ("frac_stable", "frac_sun", "frac_msun")
# Stability summary columns (the stability step defines them); the table lists them even when absent.
STABILITY_SUMMARY = ("n_stable", "frac_stable", "n_metastable", "n_sun", "frac_sun", "n_msun", "frac_msun")
NOT_COMPUTED = "not computed"
RELAXED = ("converged", "unconverged")
# E_hull beyond this (eV/atom) is drawn in the last bin: far-off-hull outliers would hide the
# region around the thresholds that matters.
E_HULL_CLIP = 1.0


def generator_order(summary: pd.DataFrame) -> list[str]:
    """Generators in config order, as the summary lists them, without the ``all`` row."""
    return [name for name in summary["generator"] if name != "all"]


def generator_colors(names: Sequence[str]) -> dict[str, str]:
    colors = {name: f"C{i % 10}" for i, name in enumerate(n for n in names if n != "all")}
    return {**colors, "all": "0.35"}


def new_figure(width: float = 8.0, height: float = 4.5) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def say(axes: Axes, text: str) -> None:
    """Write ``text`` in the middle of an axes that has nothing to plot."""
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


def evaluated(structures: pd.DataFrame) -> pd.DataFrame:
    return structures[structures["evaluated"].astype(bool)] if len(structures) else structures


def stability_computed(summary: pd.DataFrame) -> bool:
    return all(column in summary for column in STABILITY_RATES)


def rates_figure(summary: pd.DataFrame) -> Figure:
    """Validity, uniqueness, novelty (and stability, S.U.N.) fractions, one bar per generator."""
    figure, axes = new_figure(9.0, 4.5)
    rates = [column for column in RATES if column in summary]
    names = [*generator_order(summary), "all"]
    colors = generator_colors(names)
    width = 0.8 / len(names)
    rows = summary.set_index("generator")
    for offset, name in enumerate(names):
        values = rows.loc[name, rates].astype(float).to_numpy()
        positions = np.arange(len(rates)) + (offset - (len(names) - 1) / 2) * width
        bars = axes.bar(positions, np.nan_to_num(values), width, label=name, color=colors[name])
        labels = ["n/a" if math.isnan(v) else f"{100 * v:.0f}" for v in values]
        axes.bar_label(bars, labels, fontsize=7, padding=1)
    axes.set_xticks(np.arange(len(rates)), [RATES[column] for column in rates])
    axes.set_ylim(0, 1.12)
    axes.set_ylabel("fraction (labels in %)")
    title = "Rates per generator"
    if not stability_computed(summary):
        title += f" (stability, S.U.N.: {NOT_COMPUTED})"
    axes.set_title(title)
    figure.legend(fontsize=8, loc="outside right upper")
    return figure


def threshold(summary: pd.DataFrame, column: str) -> float:
    values = summary[column].dropna() if column in summary else pd.Series(dtype=float)
    return float(values.iloc[0]) if len(values) else math.nan


def e_hull_figure(structures: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Histogram of the energy above hull per generator, with the stability thresholds."""
    figure, axes = new_figure()
    axes.set_title("Energy above hull")
    if "e_above_hull" not in structures:
        say(axes, f"E_hull {NOT_COMPUTED}: no stability step ran for this campaign")
        return figure
    table = evaluated(structures)
    values = pd.to_numeric(table["e_above_hull"], errors="coerce")
    known = table[np.isfinite(values)]
    if known.empty:
        reasons = table.get("e_above_hull_reason", pd.Series(dtype=str)).dropna().value_counts()
        lines = [f"{count} x {reason}" for reason, count in reasons.head(3).items()]
        say(axes, "\n".join(["no E_hull value", *lines]))
        return figure
    clipped = np.minimum(values[known.index], E_HULL_CLIP)
    bins = np.linspace(min(clipped.min(), 0.0), E_HULL_CLIP, 41)
    step_histograms(
        axes, clipped, known["generator"], summary, bins, lambda name, mine: f"{name} ({len(mine)})"
    )
    for column, style in (("stability_threshold", "--"), ("metastable_threshold", ":")):
        value = threshold(summary, column)
        if math.isfinite(value):
            axes.axvline(value, color="k", linestyle=style, label=f"{column.replace('_', ' ')} {value:g}")
    n_unknown = len(table) - len(known)
    axes.set_xlabel(f"E_hull (eV/atom; >= {E_HULL_CLIP:g} in the last bin); {n_unknown} without a value")
    axes.set_ylabel("structures")
    axes.legend(fontsize=8)
    return figure


def step_histograms(
    axes: Axes,
    values: pd.Series,
    generators: pd.Series,
    summary: pd.DataFrame,
    bins: np.ndarray,
    label: Callable[[str, np.ndarray], str] = lambda name, _: name,
    fractions: bool = False,
) -> None:
    """One outline histogram of ``values`` per generator (config order); ``fractions`` weights
    each by 1 / its size, so generators of different sizes compare."""
    colors = generator_colors(generator_order(summary))
    for name in generator_order(summary):
        mine = values[(generators == name).to_numpy()].to_numpy()
        if len(mine):
            weights = np.full(len(mine), 1 / len(mine)) if fractions else None
            axes.hist(
                mine,
                bins,
                weights=weights,
                histtype="step",
                linewidth=1.5,
                color=colors[name],
                label=label(name, mine),
            )


def evaluated_or_say(axes: Axes, structures: pd.DataFrame) -> pd.DataFrame:
    """The evaluated structures; when there are none, the axes says so."""
    table = evaluated(structures)
    if table.empty:
        say(axes, "no evaluated structures")
    return table


def integer_bins(values: np.ndarray) -> np.ndarray:
    """Unit bins centred on integers while the range is small, 40 bins otherwise."""
    low, high = int(values.min()), int(values.max())
    if high - low <= 60:
        return np.arange(low, high + 2) - 0.5
    return np.linspace(low, high, 41)


def atoms_per_cell_figure(structures: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Distribution of the number of sites per evaluated structure, per generator."""
    figure, axes = new_figure()
    axes.set_title("Atoms per cell (evaluated structures)")
    table = evaluated_or_say(axes, structures)
    if table.empty:
        return figure
    bins = integer_bins(table["n_sites"].to_numpy())
    step_histograms(axes, table["n_sites"], table["generator"], summary, bins, fractions=True)
    axes.set_xlabel("sites in the cell")
    axes.set_ylabel("fraction of the generator's structures")
    axes.legend(fontsize=8)
    return figure


def grouped_fractions(
    axes: Axes, fractions: pd.DataFrame, colors: dict[str, str], horizontal: bool = False
) -> None:
    """Bars of ``fractions`` (rows: categories, columns: generators), one group per category."""
    width = 0.8 / max(len(fractions.columns), 1)
    positions = np.arange(len(fractions))
    for offset, name in enumerate(fractions.columns):
        shifted = positions + (offset - (len(fractions.columns) - 1) / 2) * width
        draw = axes.barh if horizontal else axes.bar
        draw(shifted, fractions[name].to_numpy(), width, label=name, color=colors[name])
    if horizontal:
        axes.set_yticks(positions, fractions.index)
        axes.invert_yaxis()
        axes.set_xlabel("fraction of the generator's evaluated structures")
    else:
        axes.set_xticks(positions, fractions.index)
        axes.set_ylabel("fraction of the generator's evaluated structures")
    axes.legend(fontsize=8)


def category_fractions(
    categories: pd.DataFrame, generators: Sequence[str], max_categories: int, other: bool
) -> pd.DataFrame:
    """Fraction of each generator's structures per category (columns ``generator``, ``category``,
    ``structure``), the most frequent categories first; with ``other`` the rest summed as 'other'
    (only meaningful when each structure has one category)."""
    counts = pd.crosstab(categories["category"], categories["generator"])
    counts = counts.reindex(columns=[g for g in generators if g in counts.columns])
    order = counts.sum(axis=1).sort_values(ascending=False, kind="stable").index
    top = counts.loc[order[:max_categories]].copy()
    if other and len(order) > max_categories:
        top.loc["other"] = counts.loc[order[max_categories:]].sum()
    return top / categories.groupby("generator")["structure"].nunique().reindex(top.columns)


def space_groups_figure(structures: pd.DataFrame, summary: pd.DataFrame, max_categories: int) -> Figure:
    """Most frequent space groups (symbol and number) of evaluated structures, per generator."""
    figure, axes = new_figure()
    axes.set_title("Space groups (evaluated structures)")
    table = evaluated_or_say(axes, structures)
    if table.empty:
        return figure
    labels = [
        f"{symbol} ({number})" if number else "undetermined"
        for symbol, number in zip(table["space_group"], table["space_group_number"], strict=True)
    ]
    categories = pd.DataFrame({"generator": table["generator"], "category": labels, "structure": table["id"]})
    fractions = category_fractions(categories, generator_order(summary), max_categories, other=True)
    figure.set_size_inches(8.0, 1.5 + 0.1 * len(fractions) * (1 + len(fractions.columns)))
    grouped_fractions(axes, fractions, generator_colors(generator_order(summary)), horizontal=True)
    return figure


def elements_figure(structures: pd.DataFrame, summary: pd.DataFrame, max_categories: int) -> Figure:
    """How often each element occurs in evaluated structures, per generator."""
    figure, axes = new_figure(max(8.0, 0.45 * max_categories), 4.5)
    axes.set_title("Element frequencies (evaluated structures containing the element)")
    table = evaluated_or_say(axes, structures)
    if table.empty:
        return figure
    categories = (
        pd.DataFrame(
            {
                "generator": table["generator"],
                "category": table["chemsys"].str.split("-"),
                "structure": table["id"],
            }
        )
        .explode("category")
        .reset_index(drop=True)
    )
    fractions = category_fractions(categories, generator_order(summary), max_categories, other=False)
    grouped_fractions(axes, fractions, generator_colors(generator_order(summary)))
    return figure


def relaxation_steps_figure(structures: pd.DataFrame, summary: pd.DataFrame, max_steps: int | None) -> Figure:
    """Optimizer steps of finished relaxations per generator; the step cap marks unconverged ones."""
    figure, axes = new_figure()
    axes.set_title("Relaxation steps")
    relaxed = structures[structures["status"].isin(RELAXED)] if len(structures) else structures
    if relaxed.empty:
        say(axes, "no relaxations (none requested, or relax backend: none)")
        return figure
    bins = integer_bins(np.append(relaxed["n_steps"].to_numpy(), [0, max_steps or 0]))
    converged = relaxed[relaxed["status"] == "converged"]["generator"].value_counts()

    def label(name: str, steps: np.ndarray) -> str:
        return f"{name} ({converged.get(name, 0)} of {len(steps)} converged)"

    step_histograms(axes, relaxed["n_steps"], relaxed["generator"], summary, bins, label)
    if max_steps:
        axes.axvline(max_steps, color="k", linestyle="--", label=f"max_steps {max_steps}")
    axes.set_xlabel("optimizer steps")
    axes.set_ylabel("structures")
    axes.legend(fontsize=8)
    return figure


def summary_html(summary: pd.DataFrame, definitions: dict[str, str], campaign: str) -> str:
    """The summary as a standalone HTML page: one row per metric (with its definition), one column
    per generator; stability rows say "not computed" when no step computed them; then the settings."""
    numeric = list(summary.select_dtypes("number").columns)
    settings = [column for column in summary.columns if column not in numeric and column != "generator"]
    rows = summary.set_index("generator")
    table = {column: [tables.cell(value) for value in rows[column]] for column in numeric}
    table.update({c: [NOT_COMPUTED] * len(rows) for c in STABILITY_SUMMARY if c not in table})
    stamps = [f"{column}: {'; '.join(summary[column].dropna().astype(str).unique())}" for column in settings]
    return tables.page(
        f"Campaign {campaign}: summary",
        ["metric", *rows.index, "definition"],
        [[column, *values, definitions.get(column, "")] for column, values in table.items()],
        stamps,
    )


def max_relax_steps(settings: dict) -> int | None:
    """The step cap of the relaxers that produced the table (the largest, if several)."""
    caps = [relaxer["max_steps"] for relaxer in settings.get("relax", []) if "max_steps" in relaxer]
    return max(caps) if caps else None


def figures(
    structures: pd.DataFrame, summary: pd.DataFrame, structure_settings: dict, settings: dict
) -> dict[str, Figure]:
    top = settings["max_categories"]
    return {
        "rates": rates_figure(summary),
        "e_hull": e_hull_figure(structures, summary),
        "atoms_per_cell": atoms_per_cell_figure(structures, summary),
        "space_groups": space_groups_figure(structures, summary, top),
        "elements": elements_figure(structures, summary, top),
        "relaxation_steps": relaxation_steps_figure(structures, summary, max_relax_steps(structure_settings)),
    }


def run_plots_job(
    structures_path: str,
    summary_path: str,
    summary_json_path: str,
    outputs: dict,
    settings: dict,
    campaign: str,
) -> None:
    structures, structure_settings = io.read_table(structures_path)
    summary = pd.read_csv(summary_path)
    definitions = io.read_json(summary_json_path)["definitions"]
    for name, figure in figures(structures, summary, structure_settings, settings).items():
        with io.atomic_path(outputs[name]) as tmp:
            figure.savefig(tmp, format=Path(outputs[name]).suffix[1:], dpi=settings["dpi"])
    with io.atomic_path(outputs["summary"]) as tmp:
        tmp.write_text(summary_html(summary, definitions, campaign))
