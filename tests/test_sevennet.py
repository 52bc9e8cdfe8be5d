"""SevenNet-0 (real weights from its wheel) in its own environment, through the runner: as a
relaxer and as a stability ensemble member beside CHGNet, with CHGNet embeddings for the Frechet
distance, in a real campaign (``make test-sevennet`` builds the environment)."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest
from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedEntry

from conftest import REPO, Campaign, rock_salt, sevennet_python
from crystal_campaign import io, relax
from crystal_campaign.schema import section_defaults

pytestmark = pytest.mark.sevennet

SEVENNET = {
    **section_defaults("relax"),
    "backend": "sevennet",
    "device": "cpu",
    "threads": 1,
    "max_steps": 200,
}


def direct_energies(structures: list[Structure], tmp_path) -> list[float]:
    """SevenNet-0's energies from its own calculator, in its environment (tests/sevennet_energies.py)."""
    request, answer = tmp_path / "structures.json", tmp_path / "energies.json"
    request.write_text(
        json.dumps(
            [
                {
                    "numbers": list(s.atomic_numbers),
                    "positions": s.cart_coords.tolist(),
                    "cell": s.lattice.matrix.tolist(),
                }
                for s in structures
            ]
        )
    )
    subprocess.run(
        [sevennet_python(), str(REPO / "tests" / "sevennet_energies.py"), str(request), str(answer)],
        check=True,
    )
    return json.loads(answer.read_text())


@pytest.fixture(autouse=True)
def sevennet_env(monkeypatch):
    monkeypatch.setenv("SEVENNET_PYTHON", sevennet_python())


def test_single_points_are_sevennet_energies_and_one_bad_structure_fails_alone(tmp_path):
    structures = [rock_salt(), rock_salt(5.0, ("Og", "Cl")), rock_salt(5.9)]  # SevenNet-0 knows 89 elements
    relaxer = relax.get_relaxer(SEVENNET)
    results = relaxer.single_points(structures)
    assert [r.status for r in results] == ["single_point", "failed", "single_point"]
    assert results[1].reason.startswith("single point error:")
    expected = direct_energies([structures[0], structures[2]], tmp_path)
    assert [results[0].energy, results[2].energy] == pytest.approx(expected, abs=1e-6)
    settings = relaxer.settings()
    assert settings["checkpoint"] == "checkpoint_sevennet_0.pth" and len(settings["checkpoint_sha256"]) == 64


def test_relaxation_finds_the_minimum_and_records_the_result(tmp_path):
    strained = rock_salt(5.9)
    (result,) = relax.get_relaxer(SEVENNET).relax([strained])
    assert result.status == "converged" and result.converged and result.max_force <= SEVENNET["fmax"]
    assert 0 < result.n_steps <= SEVENNET["max_steps"] and result.volume_ratio < 1
    (direct,) = direct_energies([result.structure], tmp_path)
    assert result.energy == pytest.approx(direct, abs=1e-5)
    assert result.energy < direct_energies([strained], tmp_path)[0]
    assert not math.isnan(result.rmsd)


def test_a_model_that_cannot_load_is_one_line():
    relaxer = relax.get_relaxer({**SEVENNET, "model": "no-such-sevennet"})
    with pytest.raises(
        RuntimeError, match=r"^SevenNet runner \(.*\) failed: SevenNet model 'no-such-sevennet'"
    ):
        relaxer.single_points([rock_salt()])


CONFIG = {
    "campaign": "ensemble",
    "generators": [
        {
            "name": "rss",
            "backend": "random",
            "n_batches": 2,
            "batch_size": 4,
            "chemical_systems": ["Na-Cl"],
            "min_atoms": 2,
            "max_atoms": 6,
        },
        {"name": "known", "backend": "import", "paths": [str(REPO / "config" / "examples" / "imported")]},
    ],
    "relax": {"backend": "chgnet", "max_steps": 30},
    "reference": {"sources": ["embedded"]},
    "jobs": {"batches_per_job": 2},
    "metrics": {"embedding": {"model": "chgnet"}},
    "stability": {
        "preset": "lemat_genbench",
        "ensemble": [
            {"backend": "sevennet"},
            {"backend": "chgnet", "name": "chgnet_relaxed", "mode": "relax"},
        ],
    },
}


@pytest.fixture(scope="module")
def ensemble_campaign(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEVENNET_PYTHON", sevennet_python())
        campaign = Campaign(tmp_path_factory.mktemp("ensemble"), CONFIG)
        campaign.snakemake()
        yield campaign


def test_campaign_reports_every_potentials_hull_and_the_frechet_distance(ensemble_campaign):
    results = ensemble_campaign.results
    table, _ = io.read_table(results / "metrics" / "structures.parquet")
    summary = json.loads((results / "metrics" / "summary.json").read_text())
    evaluated = table[table["status"].isin(["converged", "unconverged"])]
    members = ["e_above_hull", "e_above_hull_sevennet", "e_above_hull_chgnet_relaxed"]
    values = evaluated[members].to_numpy(float)
    assert len(evaluated) >= 9 and np.isfinite(values).all()
    assert evaluated["e_above_hull_mean"].to_numpy() == pytest.approx(values.mean(axis=1))
    assert evaluated["e_above_hull_spread"].to_numpy() == pytest.approx(
        values.max(axis=1) - values.min(axis=1)
    )
    assert (evaluated["stable_all"] == (values <= 0.0).all(axis=1)).all()  # lemat_genbench: stable at <= 0
    # relaxed again with the campaign's own potential: a converged structure moves only within fmax
    converged = evaluated[evaluated["status"] == "converged"]
    assert converged["e_above_hull_chgnet_relaxed"].to_numpy() == pytest.approx(
        converged["e_above_hull"].to_numpy(), abs=5e-3
    )
    skipped = table[table["status"] == "skipped"]  # the disordered import
    assert len(skipped) == 1 and skipped[[*members, "e_above_hull_mean"]].isna().all().all()
    assert not skipped["stable_all"].any()

    rows = {row["generator"]: row for row in summary["summary"]}
    assert rows["all"]["n_stable_all"] == int(table["stable_all"].sum())
    assert rows["all"]["n_sun_all"] == int((table["stable_all"] & table["unique_all"] & table["novel"]).sum())
    assert all(math.isfinite(rows[name]["frechet_distance"]) for name in ("rss", "known", "all"))
    definitions = summary["definitions"]
    for column in (
        "n_stable_all",
        "n_sun_all",
        "frac_stable_all",
        "mean_e_above_hull_spread",
        "frechet_distance",
    ):
        assert column in definitions
    settings = summary["settings"]
    assert settings["ensemble"]["sevennet"]["checkpoint"] == "checkpoint_sevennet_0.pth"
    assert (
        settings["embedding"]["model"] == "chgnet" and len(settings["embedding"]["checkpoint_sha256"]) == 64
    )
    assert "frechet_distance" in (results / "plots" / "summary.html").read_text()


def test_the_sevennet_hull_is_sevennets_single_points_of_the_reference(ensemble_campaign, tmp_path):
    results = ensemble_campaign.results
    reference = [r["structure"] for r in io.read_records(results / "reference" / "reference.jsonl.gz")]
    relaxed = [
        r
        for path in sorted((results / "relaxed").glob("*/*.jsonl.gz"))
        for r in io.read_records(path)
        if r["status"] in ("converged", "unconverged")
    ]
    energies = direct_energies(reference + [r["structure"] for r in relaxed], tmp_path)
    diagram_entries = [ComputedEntry(s.composition, e) for s, e in zip(reference, energies, strict=False)]
    table, _ = io.read_table(results / "metrics" / "structures.parquet")
    found = table.set_index("id")["e_above_hull_sevennet"]
    for record, energy in zip(relaxed, energies[len(reference) :], strict=True):
        structure = record["structure"]
        inside = [
            e for e in diagram_entries if set(e.composition.elements) <= set(structure.composition.elements)
        ]
        entry = ComputedEntry(structure.composition, energy)
        expected = PhaseDiagram(inside).get_decomp_and_e_above_hull(entry, allow_negative=True)[1]
        assert found[record["id"]] == pytest.approx(expected, abs=1e-5)


def test_adding_a_member_runs_only_its_jobs(ensemble_campaign):
    config = json.loads(json.dumps(CONFIG))
    config["stability"]["ensemble"].append({"backend": "chgnet", "name": "r2scan", "model": "r2scan"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEVENNET_PYTHON", sevennet_python())
        planned = ensemble_campaign.planned_jobs_for(config)
    assert planned == {
        "ensemble_reference_energies": 1,
        "ensemble_stability": 2,
        "metrics": 1,
        "candidates": 1,
        "dft_inputs": 1,
        "plots": 1,
        "hulls": 1,
        "all": 1,
    }
