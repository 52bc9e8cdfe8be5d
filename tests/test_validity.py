from __future__ import annotations

import math

import pytest
from pymatgen.core import Composition, Lattice, Structure

from conftest import rock_salt
from crystal_campaign.validity import (
    compositional_validity,
    min_interatomic_distance,
    structural_validity,
    validity_row,
)

SETTINGS = {"min_distance": 0.5, "min_volume": 0.1, "oxidation_states": "smact14"}


def test_structural_validity_uses_minimum_image_distances():
    nacl = rock_salt()
    assert min_interatomic_distance(nacl) == pytest.approx(5.64 / 2)
    assert structural_validity(nacl, 0.5, 0.1) == (True, None)
    squeezed = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.0, 0.0, 0.1]])
    ok, reason = structural_validity(squeezed, 0.5, 0.1)
    assert not ok and "interatomic distance 0.4" in reason
    # Across the periodic boundary, not only inside the cell.
    wrapped = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0.01, 0, 0], [0.96, 0, 0]])
    assert min_interatomic_distance(wrapped) == pytest.approx(0.2)
    assert min_interatomic_distance(Structure(Lattice.cubic(3), ["Na"], [[0, 0, 0]])) == math.inf
    tiny = Structure(Lattice.cubic(0.4), ["Na"], [[0, 0, 0]])
    assert structural_validity(tiny, 0.5, 0.1)[0] is False


@pytest.mark.parametrize(
    ("formula", "valid"),
    [
        ("NaCl", True),
        ("Na2Cl2", True),
        ("TiO2", True),
        ("Ti2O3", True),
        ("MgO", True),
        ("Na2Cl", False),
        ("NaCl3", False),
        ("Fe", True),
        ("AlNi3", True),
        ("Mg0.5Ti0.5O", True),
    ],
)
def test_compositional_validity_follows_smact_definition(formula, valid):
    assert compositional_validity(Composition(formula))[0] is valid


def test_unknown_elements_are_a_reason_not_a_crash():
    ok, reason = compositional_validity(Composition("Og2O"))
    assert ok is False
    assert "not checkable by SMACT" in reason


def test_validity_row_combines_reasons():
    bad = Structure(Lattice.cubic(4.0), ["Na", "Na", "Cl"], [[0, 0, 0], [0.05, 0, 0], [0.5, 0.5, 0.5]])
    row = validity_row(bad, SETTINGS)
    assert row["struct_valid"] is False and row["comp_valid"] is False and row["valid"] is False
    assert "interatomic distance" in row["validity_reason"] and "charge" in row["validity_reason"]
    assert validity_row(None, SETTINGS)["validity_reason"] == "not evaluated"
