from __future__ import annotations

import os
import stat

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from crystal_campaign import io


def test_batch_records_keep_partial_occupancies_and_failures(tmp_path):
    disordered = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.2), [{"Mg": 0.5, "Ti": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    path = tmp_path / "0000.jsonl.gz"
    io.write_records(
        path,
        [
            io.structure_record("g-b0000-0000", 0, disordered, None, generator="g"),
            io.structure_record("g-b0000-0001", 1, None, "unreadable file: ValueError", generator="g"),
        ],
    )
    first, second = io.read_records(path)
    assert first["structure"] == disordered
    assert not first["structure"].is_ordered
    assert second["structure"] is None
    assert second["reason"] == "unreadable file: ValueError"
    assert io.sidecar_path(path) == tmp_path / "0000.json"


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    path = tmp_path / "out.json"
    with pytest.raises(RuntimeError), io.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_tables_record_their_settings(tmp_path):
    path = tmp_path / "t.parquet"
    io.write_table(path, pd.DataFrame({"id": ["a"], "novel": [True]}), {"matcher": {"ltol": 0.2}})
    table, settings = io.read_table(path)
    assert table.to_dict("records") == [{"id": "a", "novel": True}]
    assert settings == {"matcher": {"ltol": 0.2}}


def test_same_records_give_identical_bytes(tmp_path):
    records = [io.structure_record("a", 0, None, "failed")]
    io.write_records(tmp_path / "one.jsonl.gz", records)
    io.write_records(tmp_path / "two.jsonl.gz", records)
    assert io.file_sha256(tmp_path / "one.jsonl.gz") == io.file_sha256(tmp_path / "two.jsonl.gz")


def test_written_files_follow_the_umask_not_mkstemps_private_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        io.write_json(tmp_path / "shared.json", {"a": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o644


def test_batch_contract_one_shape_from_sampling_through_relaxation(tmp_path, nacl):
    """Sample and relax sidecars have every key of their typed shape; extras survive relaxation."""
    from crystal_campaign import batch_files
    from crystal_campaign.generators.base import BatchOutput, Sample, write_sample_batch
    from crystal_campaign.relax import NoRelaxer, run_relax_job

    settings = {"name": "csp", "backend": "chemeleon", "batch_size": 2}
    samples = [
        Sample(nacl, extras={"target_formula": "NaCl"}),
        Sample(None, "junk", extras={"target_formula": "KCl"}),
    ]
    sample_path = tmp_path / "samples" / "0003.jsonl.gz"
    write_sample_batch(str(sample_path), "c", settings, 3, BatchOutput(samples, {"model": "m"}), 1.0, {})
    sidecar = io.read_sidecar(sample_path)
    assert set(sidecar) == set(batch_files.SampleSidecar.__annotations__)
    assert (sidecar["generator"], sidecar["batch"], sidecar["n_generated"], sidecar["failed"]) == (
        "csp",
        3,
        1,
        None,
    )

    relaxed_path = tmp_path / "relaxed" / "0003.jsonl.gz"
    run_relax_job(NoRelaxer(), str(sample_path), str(relaxed_path), {"backend": "none"})
    relaxed = io.read_sidecar(relaxed_path)
    assert set(relaxed) == set(batch_files.RelaxSidecar.__annotations__)
    assert (relaxed["generator"], relaxed["batch"], relaxed["status_counts"]) == (
        "csp",
        3,
        {"no_structure": 1, "not_relaxed": 1},
    )
    # what it was made from: the relax settings and the sample batch as it was
    assert relaxed["settings"] == {"backend": "none"}
    assert relaxed["inputs"] == {
        str(sample_path): [sample_path.stat().st_size, sample_path.stat().st_mtime_ns]
    }
    records = io.read_records(relaxed_path)
    assert [r["target_formula"] for r in records] == ["NaCl", "KCl"]
    assert all(set(batch_files.RelaxedRecord.__annotations__) <= set(r) for r in records)
    assert records[0]["structure"] == nacl and records[1]["reason"] == "junk"
