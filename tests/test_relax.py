from __future__ import annotations

import math

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from pymatgen.core import Lattice, Structure

from conftest import rock_salt
from crystal_campaign.relax import NoRelaxer, get_relaxer, relax_records, rmsd_angstrom
from crystal_campaign.relax.per_structure import relax_one, relax_with_ase

CHGNET = {
    "backend": "chgnet",
    "model": "0.3.0",
    "fmax": 0.1,
    "max_steps": 60,
    "relax_cell": True,
    "device": "auto",
    "threads": 1,
    "max_volume_ratio": 3.0,
}


@pytest.fixture(scope="module")
def chgnet():
    pytest.importorskip("chgnet")
    return get_relaxer(CHGNET)


def rattled_rock_salt(seed: int = 0) -> Structure:
    structure = rock_salt(5.9).get_primitive_structure() * (2, 1, 1)
    for index, shift in enumerate(np.random.default_rng(seed).normal(0, 0.05, (len(structure), 3))):
        structure.translate_sites([index], shift, frac_coords=False)
    return structure


def test_chgnet_relaxes_rattled_rock_salt(chgnet):
    (result,) = chgnet.relax([rattled_rock_salt()])
    assert result.status == "converged" and result.converged
    assert 0 < result.n_steps <= 60
    assert result.max_force <= 0.1 + 1e-9
    assert math.isfinite(result.energy) and result.energy_per_atom == pytest.approx(result.energy / 4)
    assert result.volume_ratio < 1  # 5.9 A is larger than CHGNet's NaCl
    assert 0 < result.rmsd < 0.5
    settings = chgnet.settings()
    assert settings["checkpoint"].startswith("chgnet_0.3.0") and len(settings["checkpoint_sha256"]) == 64


def test_batched_chgnet_takes_the_steps_of_the_per_structure_loop(chgnet):
    structures = [rattled_rock_salt(seed) for seed in range(3)]
    per_structure = get_relaxer({**CHGNET, "engine": "per-structure"}).relax(structures)
    batched = chgnet.relax(structures)
    assert chgnet.last_stats.model_calls == max(r.n_steps for r in batched) + 1
    for alone, together in zip(per_structure, batched, strict=True):
        assert (together.status, together.converged) == (alone.status, alone.converged)
        assert together.energy_per_atom == pytest.approx(alone.energy_per_atom, abs=1e-4)
        assert abs(together.n_steps - alone.n_steps) <= 2


def test_hitting_max_steps_is_unconverged_not_failed(chgnet):
    relaxer = get_relaxer({**CHGNET, "max_steps": 2})
    (result,) = relaxer.relax([rattled_rock_salt(1)])
    assert result.status == "unconverged" and not result.converged and result.n_steps == 2
    assert result.structure is not None


def test_non_finite_energy_is_a_failed_row():
    on_top = Structure(Lattice.cubic(4.0), ["Ar", "Ar"], [[0, 0, 0], [0, 0, 0]])
    result = relax_one(on_top, lambda s: relax_with_ase(s, LennardJones(), 0.05, 50, True, 3.0))
    assert result.status == "failed" and result.structure is None
    assert result.reason == "non-finite energy or forces"


def test_exploding_volume_is_stopped_and_marked():
    squeezed = Structure(Lattice.cubic(2.2), ["Ar"], [[0, 0, 0]])
    lj = LennardJones(sigma=3.4, epsilon=0.01, rc=8.0)
    result = relax_with_ase(squeezed, lj, 0.001, 200, True, 1.5)
    assert result.status == "failed"
    assert result.reason.startswith("exploded: volume changed by a factor")


def test_failed_samples_pass_through_and_disordered_skip(chgnet):
    disordered = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.2), [{"Mg": 0.5, "Ti": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    records = [
        {"structure": None, "reason": "unreadable file"},
        {"structure": disordered, "reason": None},
        {"structure": rattled_rock_salt(), "reason": None},
    ]
    missing, skipped, relaxed = relax_records(chgnet, records)
    assert (missing.status, missing.reason, missing.structure) == ("no_structure", "unreadable file", None)
    assert (skipped.status, skipped.reason, skipped.structure) == ("skipped", "disordered", disordered)
    assert relaxed.status == "converged"
    assert [r.status for r in relax_records(NoRelaxer(), records)] == [
        "no_structure",
        "skipped",
        "not_relaxed",
    ]


def test_rmsd_is_zero_for_identical_and_angstrom_for_displaced():
    structure = rock_salt().get_primitive_structure()
    assert rmsd_angstrom(structure, structure) == pytest.approx(0, abs=1e-8)
    moved = structure.copy()
    moved.translate_sites([0], [0.1, 0, 0], frac_coords=False)
    assert 0.02 < rmsd_angstrom(structure, moved) < 0.1
