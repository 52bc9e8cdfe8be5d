"""Phase diagrams per chemical system: where the generated structures sit against the reference hull.

The diagrams are the stability step's own (``stability.reference_hulls``: same reference entries,
same energy basis), and each generated structure is the point that step placed on it
(``hull_energy_per_atom``, ``formation_energy_per_atom`` and ``e_above_hull`` of the per-structure
table). Binary systems are drawn as formation energy per atom against composition with the hull;
ternary ones as pymatgen's phase-diagram plot (``PDPlotter``) with the generated compositions
overlaid. The systems shown are the binary and ternary ones a generator was conditioned on, and
the ``plots.hull_systems`` largest others by number of evaluated structures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from pymatgen.analysis.phase_diagram import PDPlotter, PhaseDiagram, triangular_coord
from pymatgen.core import Composition

from crystal_campaign import io, plots, stability, tables

# E_hull (eV/atom) at or below this counts as on the hull: pymatgen's hull energies carry float noise.
ON_HULL = 1e-6
# Formation energies more than this (eV/atom) above the highest hull point are drawn at the top edge,
# so a few far-off structures don't flatten the region around the hull.
ABOVE_HULL_SHOWN = 1.0
# How each generated structure is marked: (flag column, marker, legend text); the first that holds.
STATUS_MARKERS = (("sun", "*", "S.U.N."), ("msun", "D", "metastable S.U.N."), (None, "o", "other"))
SYSTEM_COLUMNS = [
    "system",
    "formula",
    "reference_phases",
    "reference_on_hull",
    "n_generated",
    "n_on_or_below_hull",
    "on_or_below_hull",
    "n_sun",
    "best_id",
    "best_generator",
    "best_e_above_hull",
    "new_composition",
    "hull_reason",
]
# The ids listed per composition in on_or_below_hull (the count is always complete).
MAX_LISTED = 10


def normalized_system(chemsys: str) -> str:
    return "-".join(sorted(chemsys.split("-")))


def shown_systems(structures: pd.DataFrame, n_largest: int) -> list[str]:
    """Binary and ternary systems: every conditioning target, then the ``n_largest`` others with
    the most evaluated structures (ties in name order)."""
    evaluated = plots.evaluated(structures)
    if evaluated.empty:
        return []
    counts = evaluated["chemsys"].dropna().value_counts()
    counts = counts[[name.count("-") in (1, 2) for name in counts.index]]
    ranked = sorted(counts.index, key=lambda name: (-counts[name], name))
    targets = evaluated.get("target_chemsys", pd.Series(dtype=object)).dropna().map(normalized_system)
    chosen = sorted(
        {t for t in targets if t.count("-") in (1, 2)}, key=lambda name: (-counts.get(name, 0), name)
    )
    return chosen + [name for name in ranked if name not in chosen][:n_largest]


def members(structures: pd.DataFrame, system: str) -> pd.DataFrame:
    """Evaluated structures whose elements all belong to ``system`` (its subsystems included)."""
    evaluated = plots.evaluated(structures)
    elements = set(system.split("-"))
    # Per distinct chemical system, not per row: the table may hold a million structures.
    inside = [c for c in evaluated["chemsys"].dropna().unique() if set(c.split("-")) <= elements]
    return evaluated[evaluated["chemsys"].isin(inside)]


def flag(structures: pd.DataFrame, column: str) -> np.ndarray:
    if column not in structures:
        return np.zeros(len(structures), dtype=bool)
    return structures[column].fillna(False).astype(bool).to_numpy()


def status_groups(generated: pd.DataFrame):
    """(generator, marker, label, rows) for each generator and S.U.N. status present."""
    taken = np.zeros(len(generated), dtype=bool)
    statuses = []
    for column, marker, label in STATUS_MARKERS:
        mine = ~taken & (flag(generated, column) if column else True)
        taken |= mine
        statuses.append((marker, label, mine))
    for name in generated["generator"].unique():
        of_generator = (generated["generator"] == name).to_numpy()
        for marker, label, mine in statuses:
            rows = generated[of_generator & mine]
            if len(rows):
                yield name, marker, label, rows


def numeric(structures: pd.DataFrame, column: str) -> np.ndarray:
    if column not in structures:
        return np.full(len(structures), math.nan)
    return pd.to_numeric(structures[column], errors="coerce").to_numpy(dtype=float)


@dataclass(frozen=True)
class Basis:
    """What the figures and tables are drawn against, as one caption line."""

    energy_basis: str
    caption: str

    @classmethod
    def of(cls, settings: dict) -> Basis:
        """From the per-structure table's recorded settings (stability and reference sections)."""
        used, reference = settings.get("stability", {}), settings.get("reference", {})
        basis = used.get("energy_basis", "not computed")
        if basis == "self_consistent":
            relaxer = used.get("reference_energies", {}).get("relaxer", {})
            energies = (
                f"reference structures relaxed with {relaxer.get('backend', '?')} {relaxer.get('model', '')}"
            )
        elif basis == "mp":
            versions = ", ".join(str(source.get("database_version")) for source in reference.get("mp", []))
            energies = (
                f"Materials Project GGA/GGA+U entries, database {versions or '?'}, "
                f"correction {used.get('energy_correction', '?')}"
            )
        else:
            energies = "no stability step"
        sizes = ", ".join(f"{n} {source}" for source, n in reference.get("n_structures", {}).items())
        snapshot = f"reference snapshot {str(reference.get('sha256', '?'))[:12]} ({sizes or 'empty'})"
        return cls(basis, f"energy basis: {basis} ({energies.strip()}); {snapshot}")


def point_colors(structures: pd.DataFrame) -> dict[str, str]:
    return plots.generator_colors(list(structures["generator"].dropna().unique()))


def draw_generated(axes: Axes, generated: pd.DataFrame, colors: dict[str, str], xy) -> None:
    """Generated structures at ``xy(rows) -> (x, y)``, coloured by generator, shaped by status."""
    for name, marker, label, rows in status_groups(generated):
        x, y = xy(rows)
        axes.scatter(
            x,
            y,
            marker=marker,
            s=90 if marker == "*" else 36,
            facecolors=colors[name] if marker != "o" else "none",
            edgecolors=colors[name],
            linewidths=1.2,
            label=f"{name}: {label} ({len(rows)})",
            zorder=4,
        )


def binary_figure(
    system: str, diagram: PhaseDiagram, generated: pd.DataFrame, colors: dict[str, str], basis: Basis
) -> Figure:
    """Formation energy per atom against the fraction of the second element, with the hull."""
    first, second = system.split("-")
    figure, axes = plots.new_figure(8.0, 5.5)

    def fraction(formulas: Sequence[str]) -> np.ndarray:
        return np.array([Composition(f).get_atomic_fraction(second) for f in formulas])

    stable = sorted(diagram.stable_entries, key=lambda e: e.composition.get_atomic_fraction(second))
    hull_x = fraction([e.composition.formula for e in stable])
    hull_y = np.array([diagram.get_form_energy_per_atom(e) for e in stable])
    axes.plot(hull_x, hull_y, "k-", linewidth=1.5, zorder=2, label="reference hull")
    axes.scatter(hull_x, hull_y, marker="s", s=40, color="k", zorder=3, label="reference phase on hull")
    for entry, x, y in zip(stable, hull_x, hull_y, strict=True):
        label = entry.composition.reduced_formula
        axes.annotate(label, (x, y), xytext=(0, -12), textcoords="offset points", ha="center", fontsize=8)
    unstable = [e for e in diagram.all_entries if e not in diagram.stable_entries]
    if unstable:
        axes.scatter(
            fraction([e.composition.formula for e in unstable]),
            [diagram.get_form_energy_per_atom(e) for e in unstable],
            marker="s",
            s=30,
            facecolors="none",
            edgecolors="0.5",
            zorder=3,
            label="reference phase above hull",
        )
    energies = numeric(generated, "formation_energy_per_atom")
    placed = generated[np.isfinite(energies)]
    top = max(float(hull_y.max()), 0.0) + ABOVE_HULL_SHOWN
    n_clipped = int((numeric(placed, "formation_energy_per_atom") > top).sum())
    draw_generated(
        axes,
        placed,
        colors,
        lambda rows: (fraction(rows["formula"]), np.minimum(numeric(rows, "formation_energy_per_atom"), top)),
    )
    axes.set_xlim(-0.05, 1.05)
    axes.set_xlabel(f"atomic fraction of {second} (0: {first})")
    axes.set_ylabel("formation energy (eV/atom)")
    notes = [f"{len(generated) - len(placed)} without an energy"] if len(placed) < len(generated) else []
    if n_clipped:
        notes.append(f"{n_clipped} drawn at the top edge (> {top:.2f} eV/atom)")
    axes.set_title(f"{system}: {len(generated)} generated structures")
    figure.legend(fontsize=7, loc="outside right upper")
    footer(figure, [*notes, basis.caption])
    return figure


def footer(figure: Figure, lines: Sequence[str]) -> None:
    """Notes and the energy basis under the plot (saved with a tight bounding box, so never cut)."""
    figure.text(0.0, -0.01, "\n".join(lines), fontsize=7, ha="left", va="top", transform=figure.transFigure)


def ternary_figure(
    system: str, diagram: PhaseDiagram, generated: pd.DataFrame, colors: dict[str, str], basis: Basis
) -> Figure:
    """pymatgen's ternary phase-diagram plot (reference phases; unstable ones within 0.2 eV/atom)
    with the generated compositions overlaid at their Gibbs-triangle coordinates."""
    import matplotlib.pyplot as plt  # PDPlotter's matplotlib backend draws through pyplot

    axes = PDPlotter(diagram, show_unstable=0.2, backend="matplotlib").get_plot(label_unstable=False)
    figure = axes.get_figure()

    def triangle(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        coords = np.array([diagram.pd_coords(Composition(f)) for f in rows["formula"]])
        x, y = triangular_coord(coords)
        return x, y

    draw_generated(axes, generated, colors, triangle)
    axes.set_title(f"{system}: {len(generated)} generated structures", fontsize=16, pad=24)
    axes.legend(fontsize=9, loc="upper right")
    footer(figure, [basis.caption])
    plt.close(figure)  # keep it off pyplot's list; the Figure itself stays usable for savefig
    return figure


def hull_figure(system: str, diagram: PhaseDiagram, generated: pd.DataFrame, colors, basis: Basis) -> Figure:
    draw = binary_figure if system.count("-") == 1 else ternary_figure
    return draw(system, diagram, generated, colors, basis)


def system_rows(system: str, diagram: PhaseDiagram | str, generated: pd.DataFrame) -> list[dict]:
    """One row per composition of ``system`` that a reference phase or a generated structure has."""
    reason = diagram if isinstance(diagram, str) else None
    references: dict[str, list[str]] = {}
    on_hull: set[str] = set()
    if reason is None:
        for entry in diagram.all_entries:
            formula = entry.composition.reduced_formula
            e_hull = diagram.get_e_above_hull(entry)
            references.setdefault(formula, []).append(f"{entry.entry_id or 'ref'} ({e_hull:+.3f})")
            if e_hull <= ON_HULL:
                on_hull.add(formula)
    e_hull = numeric(generated, "e_above_hull")
    rows = []
    for formula in sorted(set(references) | set(generated["formula"])):
        mine = (generated["formula"] == formula).to_numpy()
        energies = np.where(mine & np.isfinite(e_hull), e_hull, np.inf)
        below = generated[mine & (e_hull <= ON_HULL)]
        best = int(np.argmin(energies)) if np.isfinite(energies).any() else None
        rows.append(
            {
                "system": system,
                "formula": formula,
                "reference_phases": "; ".join(references.get(formula, [])),
                "reference_on_hull": formula in on_hull,
                "n_generated": int(mine.sum()),
                "n_on_or_below_hull": len(below),
                "on_or_below_hull": ", ".join(below["id"].head(MAX_LISTED))
                + (", ..." if len(below) > MAX_LISTED else ""),
                "n_sun": int(flag(generated[mine], "sun").sum()),
                "best_id": None if best is None else generated["id"].iloc[best],
                "best_generator": None if best is None else generated["generator"].iloc[best],
                "best_e_above_hull": math.nan if best is None else float(energies[best]),
                "new_composition": formula not in references and bool(mine.any()),
                "hull_reason": reason,
            }
        )
    return rows


def systems_html(table: pd.DataFrame, basis: Basis, campaign: str, notes: Sequence[str]) -> str:
    header = [
        "system",
        "composition",
        "reference phases (id, E_hull eV/atom)",
        "generated",
        "on/below hull",
        "S.U.N.",
        "best generated (id, generator)",
        "best E_hull (eV/atom)",
        "new composition",
    ]
    rows = [
        [
            row["system"],
            row["formula"],
            row["reference_phases"] or ("none" if pd.isna(row["hull_reason"]) else row["hull_reason"]),
            tables.cell(row["n_generated"]),
            tables.cell(row["n_on_or_below_hull"]),
            tables.cell(row["n_sun"]),
            "" if pd.isna(row["best_id"]) else f"{row['best_id']} ({row['best_generator']})",
            tables.cell(row["best_e_above_hull"]),
            "yes" if row["new_composition"] else "",
        ]
        for _, row in table.iterrows()
    ]
    return tables.page(f"Campaign {campaign}: chemical systems", header, rows, [basis.caption, *notes])


def run_hulls_job(
    structures_path: str,
    reference_path: str,
    energies_path: str | None,
    outputs: dict,
    settings: dict,
    campaign: str,
) -> None:
    """Figures in ``outputs["figures"]`` (a folder, replaced as a whole), the per-system table
    (``outputs["table"]``, parquet with the settings) and its report page (``outputs["page"]``)."""
    structures, structure_settings = io.read_table(structures_path)
    basis = Basis.of(structure_settings)
    systems = shown_systems(structures, settings["hull_systems"]) if "e_above_hull" in structures else []
    hulls, _ = (
        stability.reference_hulls(basis.energy_basis, reference_path, energies_path, systems)
        if systems
        else (None, [])
    )
    colors = point_colors(structures)
    rows, notes = [], []
    with io.replaced_folder(outputs["figures"]) as staging:
        for system in systems:
            diagram = hulls.diagram(system)
            generated = members(structures, system)
            rows += system_rows(system, diagram, generated)
            if isinstance(diagram, str):
                notes.append(f"{system}: no figure, {diagram}")
                continue
            figure = hull_figure(system, diagram, generated, colors, basis)
            figure.savefig(staging / f"{system}.png", dpi=settings["dpi"], bbox_inches="tight")
    if not systems:
        computed = "e_above_hull" in structures
        notes.append(
            "no binary or ternary system with evaluated structures" if computed else plots.NOT_COMPUTED
        )
    table = pd.DataFrame(rows, columns=SYSTEM_COLUMNS)
    recorded = {
        "plots": settings,
        "stability": structure_settings.get("stability", {}),
        "reference": structure_settings.get("reference", {}),
        "systems": systems,
    }
    io.write_table(outputs["table"], table, recorded)
    with io.atomic_path(outputs["page"]) as tmp:
        tmp.write_text(systems_html(table, basis, campaign, notes))
