"""The real mp-api client (MPRester) against a local server speaking the Materials Project API."""

from __future__ import annotations

import gzip
import logging
import math
from pathlib import Path

import pytest
from mp_server import KEY, MATERIALS, FakeMaterialsProject, cscl_type_nacl

from conftest import rock_salt, write_chunk
from crystal_campaign import io, materials_project
from crystal_campaign.config import validate_config
from crystal_campaign.novelty import run_novelty_job
from crystal_campaign.reference import build_reference, prefetch
from crystal_campaign.stability import run_stability_job


def mp_settings(tmp_path: Path, endpoint: str, **overrides) -> dict:
    source = {"source": "mp", "include_gnome": False, "endpoint": endpoint, "cache_dir": str(tmp_path / "mp")}
    source |= {"backoff_s": 0.01, "timeout_s": 1, "max_retries": 3} | overrides
    config = {
        "campaign": "t",
        "generators": [
            {"name": "g", "backend": "random", "n_batches": 1, "batch_size": 1, "chemical_systems": ["Na"]}
        ],
        "reference": {"sources": [source]},
    }
    return validate_config(config)["reference"]


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("MP_API_KEY", KEY)
    with FakeMaterialsProject(MATERIALS, KEY) as fake:
        yield fake


def test_prefetch_caches_every_subsystem_per_version_and_gnome_choice_and_resumes(tmp_path, server):
    settings = mp_settings(tmp_path, server.endpoint)
    lines = prefetch(settings, {"Na-Cl"})
    assert lines == [
        "mp 2025.09.25 (without GNoME) Cl: 1 structures, 1 entries",
        "mp 2025.09.25 (without GNoME) Cl-Na: 1 structures, 1 entries",
        "mp 2025.09.25 (without GNoME) Na: 1 structures, 1 entries",
    ]
    summary = server.data_requests("/materials/summary/")
    assert {r["chemsys"] for r in summary} == {"Na", "Cl", "Cl-Na"}
    assert all(r["batch_id_not_eq"] == "gnome_r2scan_statics" for r in summary)
    assert {r["thermo_types"] for r in server.data_requests("/materials/thermo/")} == {"GGA_GGA+U"}
    cached = tmp_path / "mp" / "2025.09.25" / "no-gnome" / "Cl-Na.json.gz"
    assert cached.exists()

    server.requests.clear()
    assert prefetch(settings, {"Na-Cl"}) == lines  # a rerun reads the cache
    assert server.data_requests("/materials/summary/") == []

    with_gnome = mp_settings(tmp_path, server.endpoint, include_gnome=True)
    assert "Cl-Na: 2 structures, 2 entries" in "\n".join(prefetch(with_gnome, {"Na-Cl"}))
    assert (tmp_path / "mp" / "2025.09.25" / "gnome" / "Cl-Na.json.gz").exists()


def test_rate_limits_server_errors_and_slow_answers_are_retried(tmp_path, server):
    server.slow_s = 2.0  # beyond the 1 s timeout
    server.faults["Cl-Na"] = [500, 429, "slow", 503]
    settings = mp_settings(tmp_path, server.endpoint)
    data, failed = materials_project.ensure_systems(settings["sources"][0], "2025.09.25", ["Cl-Na"])
    assert failed == {} and [d["material_id"] for d in data["Cl-Na"]["structures"]] == ["mp-22862"]
    assert server.faults["Cl-Na"] == []  # every scripted failure was met and retried past
    assert len(server.data_requests("/materials/summary/")) >= 4


def test_the_database_version_is_asked_with_retries_and_remembered_for_offline_runs(tmp_path, server):
    server.heartbeat_faults = [503, 500]
    settings = mp_settings(tmp_path, server.endpoint)["sources"][0]
    assert materials_project.resolve_database_version(settings) == ("2025.09.25", None)
    assert server.heartbeat_faults == []
    offline = {**settings, "fetch_missing": False, "endpoint": "http://127.0.0.1:9/"}
    assert materials_project.resolve_database_version(offline) == ("2025.09.25", None)
    pinned = {**offline, "database_version": "2024.12.18"}
    assert materials_project.resolve_database_version(pinned) == ("2024.12.18", None)


def test_a_system_that_keeps_failing_is_reported_not_cached_and_a_rerun_resumes(tmp_path, server):
    server.faults["Na"] = [500] * 20
    settings = mp_settings(tmp_path, server.endpoint, max_retries=2)
    lines = prefetch(settings, {"Na-Cl"})
    assert [line.split(":")[0] for line in lines if line.startswith("FAILED")] == ["FAILED mp 2025.09.25 Na"]
    assert "status code 500" in lines[-1]
    assert not (tmp_path / "mp" / "2025.09.25" / "no-gnome" / "Na.json.gz").exists()

    server.faults.clear()
    server.requests.clear()
    assert not any(line.startswith("FAILED") for line in prefetch(settings, {"Na-Cl"}))
    assert {r["chemsys"] for r in server.data_requests("/materials/summary/")} == {"Na"}


def test_the_api_key_never_appears_in_messages_logs_or_files(tmp_path, server, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    server.faults["Cl-Na"] = ["echo_key"] * 10
    settings = mp_settings(tmp_path, server.endpoint, max_retries=1)
    lines = prefetch(settings, {"Na-Cl"})
    failure = next(line for line in lines if line.startswith("FAILED"))
    assert "<MP API key>" in failure  # the server quoted the key back; it was scrubbed
    reference = tmp_path / "reference.jsonl.gz"
    build_reference(settings["sources"], str(reference))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    texts = [
        gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text() for p in written
    ]
    captured = capsys.readouterr()
    for text in [*lines, caplog.text, captured.out, captured.err, *texts]:
        assert KEY not in text

    server.api_key = "another-key-0123456789abcdefghij"  # the server now refuses ours: 403, not retried
    server.requests.clear()
    _, failed = materials_project.ensure_systems(settings["sources"][0], "2025.09.25", ["Mg"])
    assert "status code 403" in failed["Mg"] and KEY not in failed["Mg"]
    assert len(server.data_requests("/materials/summary/")) == 1


def test_missing_key_or_offline_without_cache_is_a_reason(tmp_path, server, monkeypatch):
    settings = mp_settings(tmp_path, server.endpoint)
    monkeypatch.delenv("MP_API_KEY")
    _, failed = materials_project.ensure_systems(settings["sources"][0], "2025.09.25", ["Na"])
    assert failed == {"Na": "environment variable MP_API_KEY is not set"}
    offline = mp_settings(tmp_path, server.endpoint, fetch_missing=False)
    assert materials_project.resolve_database_version(offline["sources"][0]) == (
        None,
        "no Materials Project database version: fetch_missing is false and nothing is cached",
    )


def test_novelty_and_mp_stability_after_prefetch_work_offline(tmp_path, server):
    settings = mp_settings(tmp_path, server.endpoint)
    prefetch(settings, {"Na-Cl"})
    # Offline from here on: no fetching; the version prefetch saw is pinned from the cache.
    offline = {
        "sources": [{**settings["sources"][0], "fetch_missing": False, "endpoint": "http://127.0.0.1:9/"}]
    }
    reference = tmp_path / "reference.jsonl.gz"
    build_reference(offline["sources"], str(reference))
    sidecar = io.read_json(io.sidecar_path(reference))
    assert sidecar["mp"][0]["database_version"] == "2025.09.25" and sidecar["mp"][0]["include_gnome"] is False

    nacl = rock_salt(5.7)
    records = [
        io.structure_record("known", 0, nacl, None, status="converged", energy=-2.5 * 8),
        io.structure_record("gnome", 1, cscl_type_nacl(), None, status="converged", energy=-2.45 * 2),
        io.structure_record("other", 2, rock_salt(4.2, ("Mg", "O")), None, status="converged", energy=-40.0),
    ]
    chunk = write_chunk(tmp_path / "relaxed", "g", {0: records}, relaxer={"backend": "chgnet"})
    novelty_path = tmp_path / "novelty.parquet"
    run_novelty_job(chunk, str(reference), str(novelty_path), {})
    novelty, used = io.read_table(novelty_path)
    assert novelty["novel"].tolist() == [False, True, False]
    assert novelty["reference_match"].tolist()[0] == "mp:mp-22862"
    assert novelty["novelty_unknown"].tolist() == [False, False, True]
    assert "fetch_missing is false" in novelty["novelty_reason"].tolist()[2]
    assert used["reference"]["mp"][0]["database_version"] == "2025.09.25"

    stability_path = tmp_path / "stability.parquet"
    stability_settings = {
        "energy_basis": "mp",
        "energy_correction": "auto",
        "threshold": 0.1,
        "metastable_threshold": 0.2,
    }
    run_stability_job(chunk, str(reference), None, str(stability_path), stability_settings)
    table, recorded = io.read_table(stability_path)
    assert table["e_above_hull"].tolist()[:2] == pytest.approx([0.0, 0.05])
    assert table["stable"].tolist() == [True, True, False]
    assert math.isnan(table["e_above_hull"].tolist()[2])
    assert table["e_above_hull_reason"].tolist()[2].startswith("reference entries unavailable for Mg:")
    assert table["decomposition"].tolist()[1] == "NaCl (mp:mp-22862) 1.000"
    assert recorded["energy_basis"] == "mp" and recorded["energy_correction"] == "none"
    assert recorded["mp"][0]["include_gnome"] is False


def test_cli_prefetch_lists_what_it_fetched_and_fails_when_a_system_failed(
    tmp_path, server, monkeypatch, capsys
):
    import yaml

    from crystal_campaign.cli import main

    monkeypatch.chdir(tmp_path)
    source = mp_settings(tmp_path, server.endpoint, max_retries=0)["sources"][0]
    config = {
        "campaign": "c",
        "generators": [
            {"name": "g", "backend": "random", "n_batches": 1, "batch_size": 1, "compositions": ["NaCl"]}
        ],
        "reference": {"sources": [source]},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    server.faults["Na"] = [503]
    with pytest.raises(SystemExit) as stopped:
        main(["prefetch", "--configfile", "c.yaml"])
    assert "1 item(s) could not be fetched" in str(stopped.value.code)
    out = capsys.readouterr().out
    assert "reference: FAILED mp 2025.09.25 Na:" in out and "Cl-Na: 1 structures, 1 entries" in out
    main(["prefetch", "--configfile", "c.yaml"])  # the retry fetches only what failed, and succeeds
    assert "reference: mp 2025.09.25 (without GNoME) Na: 1 structures" in capsys.readouterr().out
