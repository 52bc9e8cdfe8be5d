"""Reference sources beyond local files: earlier campaigns and the Materials Project; their config errors."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO, rock_salt
from crystal_campaign import generators, io, materials_project, prefetch
from crystal_campaign.config import ConfigError, validate_config
from crystal_campaign.dedup import dedup_table
from crystal_campaign.matching import build_matcher
from crystal_campaign.reference import build_reference, load_source

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"reference": {"sources": [{"source": "mp"}]}},
            "reference.sources[0]: missing required key 'include_gnome'",
        ),
        (
            {"reference": {"sources": [{"source": "mp", "include_gnome": "yes"}]}},
            "reference.sources[0].include_gnome: 'yes' is not allowed; allowed: type boolean, "
            "true or false: count GNoME materials as known (no default on purpose)",
        ),
        (
            {"reference": {"sources": [{"source": "mp", "include_gnome": False, "api_key": "x"}]}},
            "reference.sources[0]: unknown key 'api_key'; allowed keys: source, include_gnome, "
            "api_key_env, endpoint, cache_dir, database_version, thermo_type, fetch_missing, "
            "chemical_systems, max_retries, backoff_s, timeout_s",
        ),
        (
            {
                "reference": {
                    "sources": [{"source": "mp", "include_gnome": True, "chemical_systems": ["Li-Qq"]}]
                }
            },
            "reference.sources[0].chemical_systems: unknown element 'Qq'; "
            "allowed: element symbols such as Na, Cl, Ti",
        ),
        (
            {"reference": {"sources": [{"source": "campaign", "path": "config"}]}},
            "reference.sources[0].path: 'config' holds no dedup/classes.parquet; "
            "allowed: the results folder of a finished campaign, e.g. results/old",
        ),
        (
            {"stability": {"energy_basis": "mp"}},
            "stability.energy_basis: 'mp' is not allowed without a {source: mp} reference source; "
            "allowed: self_consistent, or add {source: mp, include_gnome: ...} to reference.sources",
        ),
        (
            {"stability": {"threshold": 0.1, "metastable_threshold": 0.05}},
            "stability.metastable_threshold: 0.05 is not allowed; allowed: >= stability.threshold (0.1)",
        ),
        (
            {"stability": {"energy_basis": "dft"}},
            "stability.energy_basis: 'dft' is not allowed; allowed: self_consistent, mp",
        ),
    ],
)
def test_reference_and_stability_config_errors_are_one_line(monkeypatch, change, expected):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError) as caught:
        validate_config({**copy.deepcopy(DEFAULT), **change})
    assert caught.value.problems == [expected]


def test_mp_source_defaults_and_campaign_systems(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    config = validate_config(
        {**DEFAULT, "reference": {"sources": ["embedded", {"source": "mp", "include_gnome": False}]}}
    )
    source = config["reference"]["sources"][1]
    assert source["api_key_env"] == "MP_API_KEY" and source["database_version"] == "latest"
    assert source["fetch_missing"] is True and source["thermo_type"] == "GGA_GGA+U"
    # Random search targets plus the imported example files (rock salt, rattled MgO, (Mg,Ti)O).
    systems = prefetch.campaign_systems(config["generators"], tmp_path / "no-results")
    assert systems == {"Cl-Na", "Mg-O", "O-Ti", "Mg-O-Ti"}
    assert materials_project.subsystems("Mg-O-Ti") == ["Mg", "O", "Ti", "Mg-O", "Mg-Ti", "O-Ti", "Mg-O-Ti"]
    mattergen = {"backend": "mattergen", "properties_to_condition_on": {"chemical_system": "Li-Fe-O"}}
    assert generators.target_systems(mattergen) == {"Fe-Li-O"}
    assert generators.target_systems({"backend": "chemeleon", "formulas": ["LiFePO4"]}) == {"Fe-Li-O-P"}


def test_an_earlier_campaigns_unique_structures_are_a_reference(tmp_path):
    old = tmp_path / "results" / "old"
    records = [
        io.structure_record("a-0", 0, rock_salt(5.64), None, generator="a"),
        io.structure_record("a-1", 1, rock_salt(5.70), None, generator="a"),  # same class as a-0
        io.structure_record("a-2", 2, rock_salt(4.21, ("Mg", "O")), None, generator="a"),
        io.structure_record("a-3", 3, None, "failed", generator="a"),
    ]
    io.write_records(old / "relaxed" / "a" / "0000.jsonl.gz", records)
    classes, _, _ = dedup_table(io.read_records(old / "relaxed" / "a" / "0000.jsonl.gz"), build_matcher())
    io.write_table(old / "dedup" / "classes.parquet", classes, {})
    source = {"source": "campaign", "path": str(old)}
    assert [label for label, _ in load_source(source)] == ["campaign:old:a-0", "campaign:old:a-2"]

    snapshot = tmp_path / "reference.jsonl.gz"
    build_reference(["embedded", source], str(snapshot))
    counts = io.read_json(io.sidecar_path(snapshot))["n_structures"]
    assert counts[f"campaign:{old}"] == 2 and counts["embedded"] >= 8
