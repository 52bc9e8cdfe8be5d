from __future__ import annotations

import numpy as np
import pytest

from crystal_campaign.screening import to_structure

CUBIC = np.eye(3) * 5.0


def test_usable_output_becomes_a_structure_with_wrapped_coordinates():
    structure, reason = to_structure([11, 17], CUBIC, [[0, 0, 0], [0.5, 0.5, 1.5]])
    assert reason is None
    assert structure.formula == "Na1 Cl1"
    assert structure.frac_coords[1].tolist() == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("numbers", "lattice", "coords", "expected"),
    [
        ([], CUBIC, np.zeros((0, 3)), "empty structure"),
        ([11, 0], CUBIC, [[0, 0, 0], [0.5, 0.5, 0.5]], "invalid species: atomic numbers [0]"),
        ([11, 17], CUBIC, [[0, 0, 0], [np.nan, 0.5, 0.5]], "non-finite or malformed coordinates"),
        ([11, 17], CUBIC * np.inf, [[0, 0, 0], [0.5, 0.5, 0.5]], "non-finite or malformed lattice"),
        (
            [11, 17],
            np.eye(3) * 3000.0,
            [[0, 0, 0], [0.5, 0.5, 0.5]],
            "cell too large: lattice vector of 3000",
        ),
        ([11, 17], np.diag([5.0, 5.0, 1e-6]), [[0, 0, 0], [0.5, 0.5, 0.5]], "degenerate cell"),
    ],
)
def test_junk_becomes_a_reason_not_an_exception(numbers, lattice, coords, expected):
    structure, reason = to_structure(numbers, lattice, coords)
    assert structure is None
    assert reason.startswith(expected)


def test_a_species_past_the_models_last_element_is_its_mask_token():
    # MatterGen's mask class comes out as Z = 101 (Md): a real element, but not one it models
    structure, reason = to_structure([11, 101], CUBIC, [[0, 0, 0], [0.5] * 3], max_atomic_number=100)
    assert structure is None
    assert reason == "invalid species: atomic numbers [101] (mask or padding token)"
    assert to_structure([11, 101], CUBIC, [[0, 0, 0], [0.5] * 3])[1] is None


def test_every_source_gets_the_same_screen_on_pymatgen_structures():
    from pymatgen.core import DummySpecies, Lattice, Structure

    from crystal_campaign.screening import structure_junk_reason

    rock_salt = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert structure_junk_reason(rock_salt) is None
    unknown = Structure(Lattice.cubic(4), ["Na", DummySpecies("Xx")], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert structure_junk_reason(unknown) == "unknown element(s) Xx: not in the periodic table"
    partial = Structure(Lattice.cubic(4), [{"Na": 0.5, DummySpecies("Xx"): 0.5}], [[0, 0, 0]])
    assert structure_junk_reason(partial) == "unknown element(s) Xx: not in the periodic table"
    huge = Structure(Lattice.cubic(2000), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert structure_junk_reason(huge) == "cell too large: lattice vector of 2000 Å > 100 Å"
    squashed = Structure(Lattice.orthorhombic(4, 4, 1e-3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert structure_junk_reason(squashed).startswith("degenerate cell")
