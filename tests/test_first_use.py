"""What a new user hits first, through real Snakemake runs: bad structure files, config files
Snakemake reads, where a campaign stands, and the summary at the end of a run."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import REPO, Campaign, rock_salt
from crystal_campaign import io
from crystal_campaign.cli import main

pytestmark = pytest.mark.workflow


def cif(sites: str) -> str:
    """A P1 CIF of a 4 Å cubic cell with ``sites`` (label, symbol, x, y, z, occupancy per line)."""
    cell = "".join(f"_cell_length_{axis} 4\n" for axis in "abc")
    cell += "".join(f"_cell_angle_{angle} 90\n" for angle in ("alpha", "beta", "gamma"))
    loop = "".join(
        f"_atom_site_{key}\n"
        for key in ("label", "type_symbol", "fract_x", "fract_y", "fract_z", "occupancy")
    )
    return f"data_x\n{cell}_symmetry_space_group_name_H-M 'P 1'\nloop_\n{loop}{sites}"


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """An import campaign of one good file and four bad ones, 2 files a batch, evaluated as given."""
    root = tmp_path_factory.mktemp("first")
    folder = root / "imported"
    folder.mkdir()
    rock_salt().to(filename=str(folder / "a_good.cif"))
    (folder / "b_unknown_element.cif").write_text(cif("Na1 Na 0 0 0 1\nX1 Xx 0.5 0.5 0.5 1\n"))
    (folder / "c_partly_unknown.cif").write_text(
        cif("M1 Na 0 0 0 0.5\nM2 Xx 0 0 0 0.5\nC1 Cl 0.5 0.5 0.5 1\n")
    )
    rock_salt(2000.0).to(filename=str(folder / "d_huge_cell.cif"))
    (folder / "e_truncated.cif").write_text((folder / "a_good.cif").read_text()[:425])
    config = {
        "campaign": "first",
        "generators": [{"name": "known", "backend": "import", "paths": ["imported"], "batch_size": 2}],
        "relax": {"backend": "none"},
        "jobs": {"batches_per_job": 1},
    }
    return Campaign(root, config)


def status(campaign: Campaign, monkeypatch, capsys) -> list[str]:
    monkeypatch.chdir(campaign.root)
    main(["status", "--configfile", "campaign.yaml"])
    return capsys.readouterr().out.splitlines()


def test_bad_structure_files_are_failure_rows_and_status_follows_the_campaign(first, monkeypatch, capsys):
    first.snakemake(
        str(first.results.relative_to(first.root) / "relaxed" / "known" / "chunks" / "0000-0000.json")
    )
    partly = status(first, monkeypatch, capsys)
    assert partly[1].split() == [
        "generator",
        "batches",
        "sample",
        "relax",
        "validity",
        "novelty",
        "stability",
    ]
    assert partly[2].split() == ["known", "3", "1/3", "1/3", "0/3", "0/3", "0/3"]
    assert "metrics missing" in partly[3] and "reference missing" in partly[3]

    first.snakemake()  # the metrics step used to crash on the unknown element (AttributeError: density)
    done = status(first, monkeypatch, capsys)
    assert done[2].split() == ["known", "3", "3/3", "3/3", "3/3", "3/3", "3/3"]
    assert all(f"{name} done" in done[3] for name in ("reference", "dedup", "metrics", "candidates", "plots"))

    table, _ = io.read_table(first.results / "metrics" / "structures.parquet")
    reasons = table.set_index(table["source"].str.rsplit("/", n=1).str[-1].str.split("#").str[0])["reason"]
    assert reasons["b_unknown_element.cif"] == "unknown element(s) Xx: not in the periodic table"
    assert reasons["c_partly_unknown.cif"] == "unknown element(s) Xx: not in the periodic table"
    assert reasons["d_huge_cell.cif"] == "cell too large: lattice vector of 2000 Å > 100 Å"
    assert reasons["e_truncated.cif"] == (
        "unreadable file: not a complete CIF, truncated or malformed "
        "(ZeroDivisionError: integer modulo by zero)"
    )
    assert pd.isna(reasons["a_good.cif"])
    summary = pd.read_csv(first.results / "metrics" / "summary.csv").set_index("generator")
    assert (summary.loc["known", "n_requested"], summary.loc["known", "n_generated"]) == (5, 1)


def test_the_end_of_a_run_is_a_compact_table_and_where_everything_is(first, monkeypatch, capsys):
    first.snakemake()
    monkeypatch.chdir(first.root)
    main(["summary", "--configfile", "campaign.yaml"])
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("generator"))
    assert lines[header].split("  ")[:3] == ["generator", "requested", "evaluated"]
    assert lines[header + 1].split()[:3] == ["known", "5", "1"] and lines[header + 2].startswith("all")
    assert max(len(line) for line in lines) < 120
    paths = {line.split()[0]: line for line in lines[header + 3 :] if line}
    assert set(paths) == {"summary", "structures", "candidates", "plots", "report", "status"}
    assert "results/first/metrics/summary.csv" in paths["summary"]
    assert "make report CONFIG=campaign.yaml" in paths["report"]
    assert "reference: 11 structures in 8 chemical systems" in lines[:header]


def test_snakemake_stops_on_a_duplicated_key_with_one_line(tmp_path):
    campaign = Campaign(tmp_path, {"campaign": "dup", "generators": []})
    default = (REPO / "config" / "config.yaml").read_text()
    (tmp_path / "campaign.yaml").write_text(default + "relax:\n  backend: none\n")
    result = campaign.snakemake("--dry-run", check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("config error:")]
    first_relax = default.splitlines().index("relax:") + 1
    assert errors == [
        f"config error: {tmp_path / 'campaign.yaml'} line {default.count(chr(10)) + 1}, column 1: "
        f"duplicate key 'relax' (first at line {first_relax})"
    ]
    assert "Traceback" not in result.stderr
