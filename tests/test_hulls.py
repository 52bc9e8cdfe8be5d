"""Phase-diagram views per chemical system on real pymatgen diagrams with answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.phase_diagram import PhaseDiagram, triangular_coord
from pymatgen.core import Composition
from test_stability import per_atom

from crystal_campaign import hulls, io

BASIS = hulls.Basis("self_consistent", "energy basis: self_consistent (test); reference snapshot abc")


@pytest.fixture
def na_cl() -> PhaseDiagram:
    # Na -1, Cl -2 eV/atom; NaCl on the hull at -2.5 (formation -1.0); NaCl2 above it.
    return PhaseDiagram(
        [
            per_atom("Na", -1.0, "ref-na"),
            per_atom("Cl2", -2.0, "ref-cl"),
            per_atom("NaCl", -2.5, "ref-nacl"),
            per_atom("NaCl2", -2.0, "ref-nacl2"),
        ]
    )


def generated_rows(rows: list[tuple]) -> pd.DataFrame:
    """Per-structure rows as the metrics table has them: (id, generator, formula, e_hull,
    formation energy, sun, msun)."""
    table = pd.DataFrame(
        rows,
        columns=["id", "generator", "formula", "e_above_hull", "formation_energy_per_atom", "sun", "msun"],
    )
    table["chemsys"] = [Composition(f).chemical_system for f in table["formula"]]
    table["evaluated"] = True
    return table


@pytest.fixture
def generated() -> pd.DataFrame:
    return generated_rows(
        [
            ("a", "rss", "NaCl", 0.05, -0.95, True, True),
            ("b", "rss", "NaCl", 0.0, -1.0, False, False),  # on the hull but not novel: not S.U.N.
            ("c", "mg", "Na3Cl", -0.02, -0.77, True, True),  # below the hull, a composition no reference has
            ("d", "mg", "NaCl2", 0.15, -0.52, False, True),
            ("e", "rss", "NaCl", math.nan, math.nan, False, False),  # no energy
        ]
    )


def test_systems_shown_are_the_targets_then_the_most_populated_binaries_and_ternaries():
    table = generated_rows(
        [
            (f"s{i}", "g", formula, 0.0, -1.0, False, False)
            for i, formula in enumerate(
                ["NaCl"] * 3 + ["MgO"] * 2 + ["MgTiO3"] * 2 + ["LiF"] + ["Na"] * 5 + ["LiMgTiO4"] * 4
            )
        ]
    )
    table["target_chemsys"] = None
    assert hulls.shown_systems(table, 2) == ["Cl-Na", "Mg-O"]  # ties (Mg-O, Mg-O-Ti) by name
    assert hulls.shown_systems(table, 10) == ["Cl-Na", "Mg-O", "Mg-O-Ti", "F-Li"]  # no unary, no quaternary
    table.loc[0, "target_chemsys"] = "Li-F"  # a conditioning target is shown whatever its count
    assert hulls.shown_systems(table, 1) == ["F-Li", "Cl-Na"]
    table["evaluated"] = False
    assert hulls.shown_systems(table, 10) == []


def test_system_table_lists_reference_phases_best_structures_and_new_compositions(na_cl, generated):
    rows = pd.DataFrame(hulls.system_rows("Cl-Na", na_cl, generated)).set_index("formula")
    assert list(rows.index) == ["Cl2", "Na", "Na3Cl", "NaCl", "NaCl2"]
    assert rows.loc["NaCl", "reference_phases"] == "ref-nacl (+0.000)"
    assert rows.loc["NaCl2", "reference_phases"] == "ref-nacl2 (+0.333)"
    assert rows["reference_on_hull"].to_dict() == {
        "Cl2": True,
        "Na": True,
        "Na3Cl": False,
        "NaCl": True,
        "NaCl2": False,
    }
    assert rows.loc["NaCl", ["n_generated", "n_on_or_below_hull", "n_sun"]].tolist() == [3, 1, 1]
    assert rows.loc["NaCl", ["best_id", "best_generator", "best_e_above_hull"]].tolist() == ["b", "rss", 0.0]
    assert rows.loc["NaCl", "on_or_below_hull"] == "b"
    assert rows.loc["Na3Cl", ["n_on_or_below_hull", "best_id", "new_composition"]].tolist() == [1, "c", True]
    assert rows["new_composition"].sum() == 1  # reference-only compositions are not new
    assert rows.loc["Na", "n_generated"] == 0 and pd.isna(rows.loc["Na", "best_id"])
    assert rows["hull_reason"].isna().all()

    without = pd.DataFrame(hulls.system_rows("Cl-Na", "no reference end-member for Cl", generated))
    assert set(without["formula"]) == {"NaCl", "Na3Cl", "NaCl2"}
    assert (without["hull_reason"] == "no reference end-member for Cl").all()
    assert not without["reference_on_hull"].any() and without["new_composition"].all()


def scatter_points(axes) -> dict[str, np.ndarray]:
    """Legend label -> the (x, y) points of each scatter on ``axes``."""
    return {
        c.get_label(): np.asarray(c.get_offsets())
        for c in axes.collections
        if not c.get_label().startswith("_")
    }


def test_binary_figure_draws_the_hull_reference_phases_and_generated_points(na_cl, generated):
    colors = hulls.point_colors(generated)
    figure = hulls.binary_figure("Cl-Na", na_cl, generated, colors, BASIS)
    axes = figure.axes[0]
    hull_line = next(line for line in axes.get_lines() if line.get_label() == "reference hull")
    np.testing.assert_allclose(hull_line.get_xdata(), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(hull_line.get_ydata(), [0.0, -1.0, 0.0])
    points = scatter_points(axes)
    np.testing.assert_allclose(points["reference phase above hull"], [[1 / 3, -1 / 3]])
    np.testing.assert_allclose(points["rss: S.U.N. (1)"], [[0.5, -0.95]])
    np.testing.assert_allclose(points["mg: S.U.N. (1)"], [[0.75, -0.77]])
    np.testing.assert_allclose(points["mg: metastable S.U.N. (1)"], [[1 / 3, -0.52]])
    np.testing.assert_allclose(points["rss: other (1)"], [[0.5, -1.0]])  # the one without energy is counted
    assert axes.get_title() == "Cl-Na: 5 generated structures"
    assert axes.get_xlabel() == "atomic fraction of Na (0: Cl)"
    assert figure.texts[-1].get_text() == f"1 without an energy\n{BASIS.caption}"


def test_binary_figure_clips_far_off_hull_structures_to_the_top_edge(na_cl):
    far = generated_rows([("x", "rss", "NaCl", 3.0, 2.0, False, False)])
    figure = hulls.binary_figure("Cl-Na", na_cl, far, hulls.point_colors(far), BASIS)
    np.testing.assert_allclose(scatter_points(figure.axes[0])["rss: other (1)"], [[0.5, 1.0]])
    assert figure.texts[-1].get_text().startswith("1 drawn at the top edge (> 1.00 eV/atom)")


def test_ternary_figure_overlays_generated_compositions_on_pymatgens_diagram():
    diagram = PhaseDiagram(
        [
            per_atom("Mg", -1.5, "mg"),
            per_atom("O2", -4.9, "o"),
            per_atom("Ti", -7.8, "ti"),
            per_atom("MgO", -6.0, "mgo"),
            per_atom("TiO2", -8.9, "tio2"),
        ]
    )
    generated = generated_rows(
        [("t", "rss", "MgTiO3", 0.3, -2.0, False, True), ("m", "rss", "MgO", 0.0, -2.8, True, True)]
    )
    figure = hulls.ternary_figure("Mg-O-Ti", diagram, generated, hulls.point_colors(generated), BASIS)
    axes = figure.axes[0]
    points = scatter_points(axes)
    expected = triangular_coord(np.array([diagram.pd_coords(Composition("MgTiO3"))]))
    np.testing.assert_allclose(points["rss: metastable S.U.N. (1)"], np.asarray(expected).T)
    assert set(points) == {"rss: S.U.N. (1)", "rss: metastable S.U.N. (1)"}
    labels = {text.get_text() for text in axes.texts}
    assert {"MgO", "TiO$_{2}$"} <= labels  # pymatgen's own labels of stable phases
    assert figure.texts[-1].get_text() == BASIS.caption


def test_hulls_job_writes_a_figure_per_system_with_a_diagram_and_says_why_not_otherwise(tmp_path, generated):
    energies = tmp_path / "energies.jsonl.gz"
    references = [("na", "Na", -1.0), ("cl", "Cl2", -4.0), ("nacl", "NaCl", -5.0), ("mg", "Mg", -1.5)]
    io.write_records(
        energies,
        [
            {"id": i, "formula": f, "status": "converged", "energy": e, "reason": None}
            for i, f, e in references
        ],
    )
    table = pd.concat([generated, generated_rows([("z", "rss", "MgO", 0.1, -1.0, False, False)])])
    structures = tmp_path / "structures.parquet"
    settings = {"stability": {"energy_basis": "self_consistent"}, "reference": {"sha256": "f" * 64}}
    io.write_table(structures, table.assign(target_chemsys=None), settings)
    outputs = {
        "figures": str(tmp_path / "plots" / "hulls"),
        "table": str(tmp_path / "hulls" / "systems.parquet"),
        "page": str(tmp_path / "plots" / "hulls.html"),
    }
    hulls.run_hulls_job(
        str(structures), "unused", str(energies), outputs, {"dpi": 40, "hull_systems": 5}, "c"
    )

    assert [p.name for p in (tmp_path / "plots" / "hulls").iterdir()] == ["Cl-Na.png"]
    written, recorded = io.read_table(outputs["table"])
    assert recorded["systems"] == ["Cl-Na", "Mg-O"]
    assert set(written.loc[written["system"] == "Mg-O", "hull_reason"]) == {"no reference end-member for O"}
    page = (tmp_path / "plots" / "hulls.html").read_text()
    assert "Mg-O: no figure, no reference end-member for O" in page
    assert "reference snapshot ffffffffffff" in page
