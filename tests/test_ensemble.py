"""Ensemble stability: more potentials' E_hull beside the campaign's, with real CHGNet."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.core import Lattice, Structure
from pymatgen.entries.computed_entries import ComputedEntry

from conftest import REPO, rock_salt, write_chunk
from crystal_campaign import ensemble, io, metrics, relax, stability
from crystal_campaign.config import ConfigError, validate_config
from crystal_campaign.schema import section_defaults

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
CHGNET = {**section_defaults("relax"), "backend": "chgnet", "device": "cpu", "threads": 1}


def test_mean_spread_and_stable_all_need_every_potential():
    table = pd.DataFrame({"id": ["a", "b", "c", "d"], "e_above_hull": [0.0, 0.05, 0.3, np.nan]})
    members = {
        "second": pd.DataFrame({"id": ["d", "c", "b", "a"], "e_above_hull": [0.0, 0.2, 0.15, -0.02]}),
        "third": pd.DataFrame({"id": ["a", "b", "c", "d"], "e_above_hull": [0.04, 0.08, np.nan, 0.0]}),
    }
    joined = ensemble.add_ensemble(table, members, threshold=0.1).set_index("id")
    assert joined.loc["a", "e_above_hull_second"] == -0.02 and joined.loc["b", "e_above_hull_third"] == 0.08
    assert joined.loc["a", "e_above_hull_mean"] == pytest.approx((0.0 - 0.02 + 0.04) / 3)
    assert joined.loc["b", "e_above_hull_spread"] == pytest.approx(0.15 - 0.05)
    # b is stable under the campaign's potential and the third, not the second
    assert joined["stable_all"].to_dict() == {"a": True, "b": False, "c": False, "d": False}
    assert joined.loc[["c", "d"], ["e_above_hull_mean", "e_above_hull_spread"]].isna().all().all()


def test_summary_counts_stable_all_and_its_sun():
    table = pd.DataFrame(
        {
            "evaluated": [True, True, True, False],
            "unique_all": [True, False, True, False],
            "novel": [True, True, False, False],
            "novelty_unknown": False,
            "stable": [True, True, True, False],
            "metastable": True,
            "stable_all": [True, True, False, False],
            "e_above_hull_spread": [0.01, 0.03, 0.05, np.nan],
        }
    )
    thresholds = {"stability_threshold": 0.1, "metastable_threshold": 0.2}
    row = metrics.stability_counts(table, 4, "all", thresholds)
    assert (row["n_stable_all"], row["n_sun_all"], row["frac_stable_all"]) == (2, 1, 0.5)
    assert row["mean_e_above_hull_spread"] == pytest.approx(0.03)
    assert "n_stable_all" not in metrics.stability_counts(
        table.drop(columns="stable_all"), 4, "all", thresholds
    )


def with_ensemble(*members: dict) -> dict:
    config = copy.deepcopy(DEFAULT)
    config["stability"]["ensemble"] = list(members)
    return config


def config_problems(config: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    return error.value.problems


def test_members_are_named_by_backend_unless_named_and_take_defaults():
    config = validate_config(
        with_ensemble({"backend": "chgnet"}, {"backend": "chgnet", "name": "r2", "model": "r2scan"})
    )
    found = ensemble.members(config["stability"])
    assert list(found) == ["chgnet", "r2"]
    assert found["chgnet"] == {
        "backend": "chgnet",
        "model": None,
        "model_path": None,
        "mode": "single_point",
        "name": "chgnet",
    }
    assert found["r2"]["model"] == "r2scan"


def test_member_config_errors_are_one_line_each(monkeypatch, tmp_path):
    missing = tmp_path / "no-python"
    monkeypatch.setenv("SEVENNET_PYTHON", str(missing))
    assert config_problems(
        with_ensemble({"backend": "chgnet"}, {"backend": "chgnet"}, {"backend": "sevennet"})
    ) == [
        "stability.ensemble[0].name: 'chgnet' names two members; allowed: unique names (give name:)",
        "stability.ensemble[1].name: 'chgnet' names two members; allowed: unique names (give name:)",
        f"stability.ensemble[2].backend: sevennet needs its own environment, none at {missing}; "
        "allowed: build it (bash envs/build-sevennet-env.sh) or set SEVENNET_PYTHON",
    ]
    assert config_problems(with_ensemble({"backend": "none"})) == [
        "stability.ensemble[0].backend: 'none' is not allowed; allowed: chgnet, mace, sevennet"
    ]
    assert config_problems(with_ensemble({"backend": "chgnet", "mode": "md"})) == [
        "stability.ensemble[0].mode: 'md' is not allowed; allowed: single_point, relax"
    ]
    (line,) = config_problems(with_ensemble({"backend": "mace", "model": "huge"}))
    assert line.startswith("stability.ensemble[0].model: 'huge'")


def test_single_points_are_the_potential_energies_and_one_bad_structure_fails_alone():
    from chgnet.model.dynamics import CHGNetCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    strained = rock_salt(5.9)
    beyond_the_model = rock_salt(5.0, ("Og", "Cl"))
    results = relax.get_relaxer(CHGNET).single_points([rock_salt(), beyond_the_model, strained])
    assert [r.status for r in results] == ["single_point", "failed", "single_point"]
    assert results[1].reason.startswith("single point error:")
    calculator = CHGNetCalculator(use_device="cpu")
    for result, structure in ((results[0], rock_salt()), (results[2], strained)):
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = calculator
        assert result.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-5)
        assert result.structure == structure and result.n_steps == 0


def test_a_member_hull_is_its_own_single_points_of_the_reference(tmp_path):
    """The member's E_hull equals pymatgen's, from CHGNet energies computed here directly."""
    from chgnet.model.dynamics import CHGNetCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    na = Structure(Lattice.cubic(4.23), ["Na", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cl = Structure(
        Lattice.tetragonal(4.5, 8.0),
        ["Cl"] * 4,
        [[0, 0, 0.1], [0, 0, 0.35], [0.5, 0.5, 0.6], [0.5, 0.5, 0.85]],
    )
    reference = tmp_path / "reference.jsonl.gz"
    io.write_records(
        reference,
        [
            io.structure_record(f"ref{i}", i, s, None, source="test")
            for i, s in enumerate([na, cl, rock_salt()])
        ],
    )
    candidates = [rock_salt(5.5), rock_salt(5.8, ("Na", "Cl")), None]
    records = [
        io.structure_record(
            f"c{i}",
            i,
            s,
            None if s else "failed",
            generator="g",
            batch=0,
            status="converged" if s else "no_structure",
            energy=-1.0,
        )
        for i, s in enumerate(candidates)
    ]
    manifest = write_chunk(tmp_path / "relaxed", "g", {0: records})
    energies = tmp_path / "energies.jsonl.gz"
    member = ensemble.members({"ensemble": [{"backend": "chgnet"}]})["chgnet"]
    settings = {**section_defaults("stability"), "threshold": 0.1}
    stability.run_ensemble_reference_job(str(reference), str(energies), member, CHGNET)
    output = tmp_path / "member.parquet"
    stability.run_ensemble_job(manifest, str(reference), str(energies), str(output), settings, member, CHGNET)
    table, recorded = io.read_table(output)

    calculator = CHGNetCalculator(use_device="cpu")

    def entry(structure: Structure, name: str) -> ComputedEntry:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = calculator
        return ComputedEntry(structure.composition, atoms.get_potential_energy(), entry_id=name)

    diagram = PhaseDiagram([entry(s, f"ref{i}") for i, s in enumerate([na, cl, rock_salt()])])
    for row, structure in zip(table.itertuples(), candidates, strict=True):
        if structure is None:
            assert math.isnan(row.e_above_hull) and row.e_above_hull_reason.startswith("not evaluated")
            continue
        expected = diagram.get_decomp_and_e_above_hull(entry(structure, row.id), allow_negative=True)[1]
        assert row.e_above_hull == pytest.approx(expected, abs=1e-5)
        assert row.status == "single_point"
    assert recorded["member"]["name"] == "chgnet" and recorded["energy_basis"] == "self_consistent"
    assert recorded["reference_energies"]["mode"] == "single_point"
    assert (
        recorded["relaxer"]["checkpoint_sha256"]
        == recorded["reference_energies"]["relaxer"]["checkpoint_sha256"]
    )
