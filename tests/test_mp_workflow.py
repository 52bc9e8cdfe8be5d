"""A real Snakemake campaign whose reference is the Materials Project, served by a local mp-api server."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from ase.io import write as ase_write
from mp_server import KEY, MATERIALS, FakeMaterialsProject, cscl_type_nacl
from pymatgen.io.ase import AseAtomsAdaptor

from conftest import Campaign, rock_salt
from crystal_campaign import io

pytestmark = pytest.mark.workflow


def test_mp_campaign_prefetches_then_runs_offline_with_novelty_stability_and_candidates(
    tmp_path, monkeypatch
):
    structures = [rock_salt(5.7), cscl_type_nacl(), rock_salt(4.2, ("Mg", "O"))]
    ase_write(tmp_path / "made.extxyz", [AseAtomsAdaptor.get_atoms(s) for s in structures], format="extxyz")
    source = {
        "source": "mp",
        "include_gnome": False,
        "cache_dir": "mp-cache",
        "backoff_s": 0.01,
        "max_retries": 1,
    }
    config = {
        "campaign": "mp",
        "generators": [{"name": "made", "backend": "import", "paths": ["made.extxyz"]}],
        "relax": {"backend": "chgnet", "max_steps": 5},
        "reference": {"sources": [source]},
        "stability": {"energy_basis": "mp", "threshold": 0.1, "metastable_threshold": 5.0},
    }
    campaign = Campaign(tmp_path, config)
    monkeypatch.setenv("MP_API_KEY", KEY)
    with FakeMaterialsProject(MATERIALS, KEY) as server:
        server.faults["Mg-O"] = [500] * 10  # Mg-O never answers: its novelty stays unknown
        monkeypatch.setenv("MP_API_ENDPOINT", server.endpoint)  # mp-api's documented endpoint variable
        result = campaign.snakemake("prefetch")
        assert "FAILED mp 2025.09.25 Mg-O" in (campaign.results / "logs" / "prefetch.log").read_text()
        assert KEY not in result.stdout + result.stderr
    # Offline from here on: the server is gone and the run reads the prefetched cache only.
    campaign.config["reference"]["sources"][0]["fetch_missing"] = False
    campaign.write()
    result = campaign.snakemake()
    assert KEY not in result.stdout + result.stderr

    table, settings = io.read_table(campaign.results / "metrics" / "structures.parquet")
    rows = table.set_index("index")
    assert rows["novel"].tolist() == [False, True, False]  # rock salt is mp-22862; CsCl-type is GNoME-only
    assert rows["reference_match"].tolist()[0] == "mp:mp-22862"
    assert rows["novelty_unknown"].tolist() == [False, False, True]
    assert math.isfinite(rows.loc[0, "e_above_hull"]) and math.isfinite(rows.loc[1, "e_above_hull"])
    assert rows.loc[2, "e_above_hull_reason"].startswith("reference entries unavailable for Mg")
    assert settings["stability"]["energy_correction"] == "none"  # CHGNet's energies are MP2020-scaled

    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv").set_index("generator")
    assert summary.loc["all", "n_novelty_unknown"] == 1 and summary.loc["all", "n_novel"] == 1
    assert summary.loc["all", "mp_database_version"] == "2025.09.25"
    assert summary.loc["all", "include_gnome"] in (False, "false")
    assert summary.loc["all", "energy_basis"] == "mp"

    # The hull views read the same cached MP entries, offline, on the same (MP2020) basis.
    systems, _ = io.read_table(campaign.results / "hulls" / "systems.parquet")
    nacl = systems[systems["system"] == "Cl-Na"].set_index("formula")
    assert "mp:mp-22862" in nacl.loc["NaCl", "reference_phases"] and nacl.loc["NaCl", "n_generated"] == 2
    assert (campaign.results / "plots" / "hulls" / "Cl-Na.png").stat().st_size > 0
    magnesia = systems[systems["system"] == "Mg-O"]
    assert magnesia["hull_reason"].str.startswith("reference entries unavailable for Mg").all()
    page = (campaign.results / "plots" / "hulls.html").read_text()
    assert (
        "energy basis: mp (Materials Project GGA/GGA+U entries, database 2025.09.25, correction none)" in page
    )

    index = pd.read_csv(campaign.results / "candidates" / "index.csv")
    assert index["id"].tolist() == [rows.loc[1, "id"]]  # the only novel one; metastable within 5 eV/atom
    assert (
        (campaign.results / "candidates" / index["cif"][0])
        .read_text()
        .startswith("# generated using pymatgen")
    )
    texts = [p.read_text() for p in campaign.root.rglob("*.log")] + [
        p.read_text() for p in campaign.root.rglob("*.json")
    ]
    assert not any(KEY in text for text in texts)
