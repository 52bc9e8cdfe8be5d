"""Real pymatgen hulls with answers worked out by hand, MP2020 entries, and the candidates table."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.entries.computed_entries import ComputedEntry

from conftest import rock_salt
from crystal_campaign.candidates import candidates_table
from crystal_campaign.stability import Hulls, mp2020_entry, resolve_correction, stability_rows

SETTINGS = {"threshold": 0.1, "metastable_threshold": 0.2}


def per_atom(formula: str, energy_per_atom: float, entry_id: str) -> ComputedEntry:
    composition = Composition(formula)
    return ComputedEntry(composition, energy_per_atom * composition.num_atoms, entry_id=entry_id)


@pytest.fixture
def na_cl_hull() -> Hulls:
    # Na and Cl at -1 and -2 eV/atom; NaCl 1 eV/atom below the tie-line (-2.5 eV/atom).
    return Hulls([per_atom("Na", -1.0, "na"), per_atom("Cl2", -2.0, "cl"), per_atom("NaCl", -2.5, "nacl")])


def test_e_above_hull_and_decomposition_on_a_known_binary_hull(na_cl_hull):
    # NaCl2 (x_Cl = 2/3) lies between NaCl (-2.5) and Cl (-2.0): hull at -2.5 + (1/6)/(1/2) * 0.5 = -2.3333.
    e_hull, products, reason = na_cl_hull.e_above_hull(per_atom("NaCl2", -2.3, "x"))
    assert reason is None and e_hull == pytest.approx(2.3333333 - 2.3, abs=1e-6)
    assert products == "NaCl (nacl) 0.667 + Cl2 (cl) 0.333"
    # Below the hull: negative E_hull (allow_negative=True), decomposing into the same products.
    e_hull, products, _ = na_cl_hull.e_above_hull(per_atom("NaCl2", -2.4, "y"))
    assert e_hull == pytest.approx(-0.0666667, abs=1e-6) and products.startswith("NaCl (nacl)")
    # A known phase itself sits on the hull.
    assert na_cl_hull.e_above_hull(per_atom("NaCl", -2.5, "z"))[0] == pytest.approx(0.0, abs=1e-9)


def test_missing_end_member_or_unavailable_system_is_a_reason_not_a_number(na_cl_hull):
    e_hull, products, reason = na_cl_hull.e_above_hull(per_atom("NaTiCl3", -3.0, "t"))
    assert math.isnan(e_hull) and products is None and reason == "no reference end-member for Ti"
    hulls = Hulls([per_atom("Na", -1.0, "na"), per_atom("Cl2", -2.0, "cl")], missing={"Cl-Na": "HTTP 500"})
    e_hull, _, reason = hulls.e_above_hull(per_atom("NaCl", -2.0, "n"))
    assert math.isnan(e_hull) and reason == "reference entries unavailable for Cl-Na: HTTP 500"


def test_rows_flag_stable_metastable_and_give_reasons_for_structures_without_energy(na_cl_hull):
    nacl = rock_salt()  # 8 atoms
    records = [
        {"id": "on", "structure": nacl, "status": "converged", "energy": -2.5 * 8},
        {"id": "meta", "structure": nacl, "status": "unconverged", "energy": -2.35 * 8},
        {"id": "high", "structure": nacl, "status": "converged", "energy": -2.0 * 8},
        {"id": "failed", "structure": None, "status": "failed", "reason": "exploded", "energy": float("nan")},
        {
            "id": "disordered",
            "structure": nacl,
            "status": "skipped",
            "reason": "disordered",
            "energy": float("nan"),
        },
    ]
    table = stability_rows(records, na_cl_hull, SETTINGS, correction=None).set_index("id")
    assert table["e_above_hull"].round(6).tolist()[:3] == [0.0, 0.15, 0.5]
    assert table["stable"].tolist() == [True, False, False, False, False]
    assert table["metastable"].tolist() == [True, True, False, False, False]
    assert table.loc["failed", "e_above_hull_reason"] == "not evaluated: exploded"
    assert table.loc["disordered", "e_above_hull_reason"] == "no energy: relaxation skipped (disordered)"
    # The point each structure is on its diagram, worked out by hand: the Na-Cl tie-line is at
    # -1.5 eV/atom at NaCl's composition.
    assert table["hull_energy_per_atom"].round(6).tolist()[:3] == [-2.5, -2.35, -2.0]
    assert table["formation_energy_per_atom"].round(6).tolist()[:3] == [-1.0, -0.85, -0.5]
    no_point = table.loc[["failed", "disordered"], ["hull_energy_per_atom", "formation_energy_per_atom"]]
    assert no_point.isna().all(axis=None)


def test_mp2020_entry_gets_gga_plus_u_and_anion_corrections_only_when_asked():
    fe2o3 = Structure(
        Lattice.hexagonal(5.0, 13.7),
        ["Fe", "Fe", "O", "O", "O"],
        [[0, 0, 0.35], [0, 0, 0.65], [0.3, 0, 0.25], [0, 0.3, 0.25], [0.7, 0.7, 0.25]],
    )
    corrected = mp2020_entry(fe2o3, -35.0, "mp2020", "fe2o3")
    assert corrected.parameters["run_type"] == "GGA+U" and corrected.parameters["hubbards"] == {"Fe": 5.3}
    adjustments = {a.name for a in corrected.energy_adjustments}
    assert any("oxide" in name for name in adjustments) and any("Fe" in name for name in adjustments)
    assert corrected.energy < -35.0
    uncorrected = mp2020_entry(fe2o3, -35.0, "none", "fe2o3")
    assert uncorrected.energy == -35.0 and uncorrected.correction == 0
    nacl = mp2020_entry(rock_salt(), -27.0, "mp2020", "nacl")
    assert nacl.parameters["run_type"] == "GGA" and nacl.parameters["hubbards"] == {}


def test_energy_correction_auto_follows_the_relaxer_training_data():
    assert resolve_correction({"energy_correction": "auto"}, {"backend": "chgnet"}) == "none"
    assert resolve_correction({"energy_correction": "auto"}, {"backend": "mace"}) == "mp2020"
    assert resolve_correction({"energy_correction": "mp2020"}, {"backend": "chgnet"}) == "mp2020"


def test_candidates_are_metastable_sun_ranked_by_e_above_hull():
    structures = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "generator": ["g"] * 4,
            "formula": ["NaCl"] * 4,
            "space_group": ["Fm-3m"] * 4,
            "space_group_number": [225] * 4,
            "e_above_hull": [0.15, -0.02, 0.05, 0.5],
            "decomposition": ["NaCl (r) 1.000"] * 4,
            "sun": [False, True, True, False],
            "msun": [True, True, True, False],
            "status": ["converged", "converged", "unconverged", "converged"],
            "converged": [True, True, False, True],
            "n_steps": [12, 30, 100, 8],
            "max_force": [0.05, 0.08, 0.4, 0.02],
            "n_sites": [8] * 4,
            "energy_per_atom": [-3.0] * 4,
            "class_all": ["a", "b", "c", "d"],
        }
    )
    index = candidates_table(structures)
    assert index["id"].tolist() == ["b", "c", "a"]
    assert index["rank"].tolist() == [1, 2, 3] and index["cif"].tolist()[0] == "cif/0001_b.cif"
