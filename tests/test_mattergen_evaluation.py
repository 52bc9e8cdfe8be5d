"""MatterGen's own ``evaluate`` as the oracle of the summary (``make test-mattergen`` builds its
environment): a campaign of random structures, imported known crystals, transformed duplicates,
an alloy ordering that matches only under ``disordered`` and a pair its ``disordered`` fit is
asymmetric on, against a reference of test structures; every fraction of every summary row must
equal what MatterGen computes on the same evaluated structures, for both matchers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from conftest import REPO, Campaign, alloy, mattergen_python, rock_salt, rotated, strained_alloy_pair
from crystal_campaign import io
from crystal_campaign.known_crystals import known_crystals

pytestmark = pytest.mark.mattergen

# This project's summary column -> the metric of MatterGen's evaluate that it claims to equal.
ANCHOR = {
    "frac_struct_valid": "avg_structure_validity",
    "frac_comp_valid": "avg_comp_validity",
    "frac_valid": "avg_structure_comp_validity",
    "frac_unique": "frac_unique_structures",
    "frac_novel": "frac_novel_structures",
    "frac_unique_novel": "frac_novel_unique_structures",
    "frac_unique_systems": "frac_unique_systems",
    "frac_novel_systems": "frac_novel_systems",
    "precision": "precision",
    "recall": "recall",
}


def imported_structures() -> dict[str, Structure]:
    """File name -> structure, in the order the import backend reads them."""
    known = {crystal.label: crystal.structure for crystal in known_crystals()}
    rutile, anatase = known["TiO2 rutile"], known["TiO2 anatase"]
    strained_rutile = rutile.copy()
    strained_rutile.apply_strain([0.02, -0.01, 0])
    permuted = np.random.default_rng(0).permutation(len(anatase))
    original, strained_copy = strained_alloy_pair()
    too_close = rock_salt()
    too_close.append("Na", too_close[0].coords + np.array([0.3, 0, 0]), coords_are_cartesian=True)
    fluorite_nacl2 = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(6.2), ["Na", "Cl"], [[0, 0, 0], [0.25, 0.25, 0.25]]
    )
    return {
        "00_nacl": known["NaCl rock salt"],
        "01_nacl_rotated_supercell": rotated(known["NaCl rock salt"] * (1, 2, 1)),
        "02_rutile": rutile,
        "03_rutile_strained": strained_rutile,
        "04_anatase": anatase,
        "05_anatase_permuted": Structure(
            anatase.lattice, [anatase.species[i] for i in permuted], anatase.frac_coords[permuted]
        ),
        "06_brookite": known["TiO2 brookite"],
        "07_cuni_layered": original,
        "08_cuni_other_ordering": alloy(["Cu", "Ni", "Cu", "Ni", "Ni", "Ni", "Cu", "Cu"], 3.55),
        "09_cuni_layered_strained": strained_copy,
        "10_nacl_atoms_too_close": too_close,
        "11_nacl2_not_charge_balanced": fluorite_nacl2,
        "12_mgo": known["MgO rock salt (periclase)"],
        "13_kbr": rock_salt(6.6, ("K", "Br")),
    }


def reference_structures() -> dict[str, Structure]:
    """No element's structure: MatterGen then skips its energy metrics (missing terminals)."""
    known = {crystal.label: crystal.structure for crystal in known_crystals()}
    return {
        "r0_nacl": known["NaCl rock salt"],
        "r1_nacl_expanded": rock_salt(5.9),  # a second match for every NaCl: recall counts both
        "r2_rutile": known["TiO2 rutile"],
        "r3_ti2o3": known["Ti2O3 corundum-type"],  # never matched
        "r4_cuni_layered_strained": strained_alloy_pair()[1],
        "r5_mgo": known["MgO rock salt (periclase)"],
    }


def write_cifs(folder: Path, structures: dict[str, Structure]) -> None:
    folder.mkdir()
    for name, structure in structures.items():
        structure.to(filename=str(folder / f"{name}.cif"))


def evaluated_structures(campaign: Campaign) -> dict[str, list[Structure]]:
    """Per generator and ``all``: the evaluated structures in campaign order."""
    sets: dict[str, list[Structure]] = {}
    for generator in campaign.config["generators"]:
        folder = campaign.results / "relaxed" / generator["name"]
        records = [r for path in sorted(folder.glob("*.jsonl.gz")) for r in io.read_records(path)]
        sets[generator["name"]] = [r["structure"] for r in records if r["structure"] is not None]
    sets["all"] = [s for structures in list(sets.values()) for s in structures]
    return sets


def mattergen_metrics(sets: dict[str, list[Structure]], reference: list[Structure], matcher: str, tmp: Path):
    request, answer = tmp / f"{matcher}-request.json", tmp / f"{matcher}-answer.json"
    payload = {
        "matcher": matcher,
        "reference": [s.as_dict() for s in reference],
        "sets": {name: [s.as_dict() for s in structures] for name, structures in sets.items()},
    }
    request.write_text(json.dumps(payload))
    command = [mattergen_python(), str(REPO / "tests" / "mattergen_evaluate.py"), str(request), str(answer)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(answer.read_text())


def summary_rows(campaign: Campaign) -> dict[str, dict]:
    summary = io.read_json(campaign.results / "metrics" / "summary.json")
    return {row["generator"]: row for row in summary["summary"]}


def assert_summary_is_mattergens(campaign: Campaign, matcher: str, tmp: Path) -> dict[str, dict]:
    sets = evaluated_structures(campaign)
    reference = [
        r["structure"] for r in io.read_records(campaign.results / "reference" / "reference.jsonl.gz")
    ]
    theirs = mattergen_metrics(sets, reference, matcher, tmp)
    rows = summary_rows(campaign)
    for name, structures in sets.items():
        assert rows[name]["n_evaluated"] == len(structures)
        ours = {column: rows[name][column] for column in ANCHOR}
        anchor = {column: theirs[name][metric] for column, metric in ANCHOR.items()}
        assert ours == pytest.approx(anchor, abs=1e-12), (matcher, name)
    return rows


def test_summary_equals_mattergens_evaluate_for_both_matchers(tmp_path):
    write_cifs(tmp_path / "imported", imported_structures())
    write_cifs(tmp_path / "reference", reference_structures())
    config = {
        "campaign": "oracle",
        "generators": [
            {
                "name": "rss",
                "backend": "random",
                "n_batches": 1,
                "batch_size": 4,
                "chemical_systems": ["Na-Cl"],
            },
            {"name": "known", "backend": "import", "paths": [str(tmp_path / "imported")], "batch_size": 5},
        ],
        "relax": {"backend": "none"},
        "reference": {"sources": [{"path": str(tmp_path / "reference")}]},
        "matching": {"matcher": "ordered"},
    }
    campaign = Campaign(tmp_path / "campaign", config)
    campaign.snakemake()
    ordered = assert_summary_is_mattergens(campaign, "ordered", tmp_path)["known"]
    # not a vacuous comparison: duplicates, known and novel structures, invalid ones, partial recall
    assert ordered["n_evaluated"] == 14 and ordered["n_unique"] == 11 and ordered["n_novel"] == 8
    assert ordered["n_struct_valid"] == 13 and ordered["n_comp_valid"] == 12
    assert 0 < ordered["recall"] < 1

    campaign.config["matching"] = {"matcher": "disordered"}  # reruns matching only
    campaign.write()
    campaign.snakemake()
    disordered = assert_summary_is_mattergens(campaign, "disordered", tmp_path)["known"]
    # the other CuNi ordering joins the layered one's class, and so does its strained copy, which
    # the layered structure does not fit (leader first, it would be a class of its own)
    assert disordered["n_unique"] == ordered["n_unique"] - 2
