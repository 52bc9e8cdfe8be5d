"""Real Snakemake runs of tiny campaigns: outputs, reruns, and which rules a settings change reruns."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from pymatgen.io.vasp import Poscar

from conftest import FROM_METRICS, Campaign, chunk_jobs, run_with_imported_examples
from crystal_campaign import io
from crystal_campaign.dedup import dedup_table
from crystal_campaign.matching import build_matcher, read_reduced

pytestmark = pytest.mark.workflow

TINY = {
    "campaign": "tiny",
    "generators": [
        {
            "name": "rss",
            "backend": "random",
            "n_batches": 2,
            "batch_size": 3,
            "chemical_systems": ["Na-Cl"],
            "min_atoms": 4,
            "max_atoms": 6,
        },
        {"name": "known", "backend": "import", "paths": ["imported"], "batch_size": 2},
    ],
    "relax": {"backend": "chgnet", "fmax": 0.1, "max_steps": 25, "memory_budget_mb": 3000},
}
SUMMARY_COLUMNS = [
    "generator",
    "n_requested",
    "n_generated",
    "n_relaxed",
    "n_converged",
    "n_relax_failed",
    "n_evaluated",
    "n_struct_valid",
    "n_comp_valid",
    "n_valid",
    "n_unique",
    "n_unique_shared",
    "n_novel",
    "n_unique_novel",
    "frac_struct_valid",
    "frac_comp_valid",
    "frac_valid",
    "frac_unique",
    "frac_novel",
    "frac_unique_novel",
    "frac_unique_systems",
    "frac_novel_systems",
    "precision",
    "recall",
    "js_space_group",
    "js_elements",
    "js_atoms_per_cell",
    "mean_rmsd",
]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return run_with_imported_examples(tmp_path_factory.mktemp("campaign"), TINY)


def test_campaign_writes_summary_and_per_structure_table(campaign):
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    assert list(summary.columns[: len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS
    assert summary["generator"].tolist() == ["rss", "known", "all"]
    rows = summary.set_index("generator")
    assert rows.loc["rss", "n_requested"] == 6
    # 3 example files + 1 unreadable file, which is a failure row, never dropped.
    assert rows.loc["known", "n_requested"] == 4 and rows.loc["known", "n_generated"] == 3
    assert rows.loc["known", "n_evaluated"] == 3  # the disordered one is evaluated as given
    assert rows.loc["all", "n_requested"] == 10
    assert rows["relaxer"].str.startswith("chgnet 0.3.0").all()

    table, settings = io.read_table(campaign.results / "metrics" / "structures.parquet")
    assert len(table) == 10
    by_source = table.set_index("id")
    nacl = table[table["source"].str.endswith("NaCl_rocksalt.cif#0", na=False)].iloc[0]
    assert nacl["novel"] == False and nacl["reference_match"] == "embedded:NaCl rock salt"  # noqa: E712
    assert nacl["space_group"] == "Fm-3m"
    disordered = table[table["status"] == "skipped"].iloc[0]
    assert disordered["reason"] == "disordered" and disordered["novel"]
    broken = table[table["source"].str.endswith("broken.cif", na=False)].iloc[0]
    assert broken["status"] == "no_structure" and broken["reason"].startswith("unreadable file")
    assert by_source.loc["rss-b0001-0002", "formula"] == "NaCl"
    assert {
        "class_generator",
        "class_all",
        "chemsys",
        "n_sites",
        "density",
        "struct_valid",
        "comp_valid",
        "valid",
    } <= set(table.columns)
    assert settings["matcher"]["ltol"] == 0.2 and settings["seeds"]["rss/1"] > 0
    assert settings["relax"][0]["checkpoint_sha256"]
    assert settings["relax"][0]["memory_budget_mb"] == 3000  # execution keys reach the job, not params
    summary = io.read_json(campaign.results / "metrics" / "summary.json")
    numbers = {
        key
        for key, value in summary["summary"][0].items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    assert numbers - set(summary["definitions"]) == set()  # every number the summary has is defined
    assert {"frac_unique_systems", "precision", "recall", "js_space_group", "js_elements"} <= numbers


def test_campaign_yields_stability_columns_and_candidates_offline(campaign):
    """Self-consistent hull: the embedded reference relaxed with the same CHGNet model."""
    table, settings = io.read_table(campaign.results / "metrics" / "structures.parquet")
    assert {
        "e_above_hull",
        "e_above_hull_reason",
        "decomposition",
        "stable",
        "metastable",
        "sun",
        "msun",
    } <= set(table.columns)
    by_source = table.set_index(table["source"].fillna("").str.rsplit("/", n=1).str[-1])
    # Rock-salt NaCl is itself a hull vertex of the reference relaxed with the same potential.
    assert abs(by_source.loc["NaCl_rocksalt.cif#0", "e_above_hull"]) < 0.01
    assert "NaCl" in by_source.loc["NaCl_rocksalt.cif#0", "decomposition"]
    disordered = by_source.loc["Mg0.5Ti0.5O_disordered.cif#0"]
    assert disordered["e_above_hull_reason"] == "no energy: relaxation skipped (disordered)"
    broken = by_source.loc["broken.cif"]
    assert broken["e_above_hull_reason"].startswith("not evaluated") and not broken["sun"]
    evaluated = table[table["evaluated"] & (table["status"] != "skipped")]
    assert evaluated["e_above_hull"].notna().all()
    assert (table["sun"] == (table["stable"] & table["novel"] & table["unique_all"])).all()
    assert settings["stability"]["energy_basis"] == "self_consistent"

    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv").set_index("generator")
    stable = table[table["evaluated"]]["stable"].sum()
    assert summary.loc["all", "n_stable"] == stable
    assert summary.loc["all", "frac_sun"] == summary.loc["all", "n_sun"] / summary.loc["all", "n_requested"]
    assert (
        summary.loc["all", "stability_threshold"] == 0.1 and summary.loc["all", "metastable_threshold"] == 0.2
    )
    assert summary.loc["all", "n_novelty_unknown"] == 0

    index = pd.read_csv(campaign.results / "candidates" / "index.csv")
    assert (
        index["id"].tolist() == table[table["msun"]].sort_values("e_above_hull", kind="stable")["id"].tolist()
    )
    assert len(index) > 0
    for row in index.itertuples():
        assert (campaign.results / "candidates" / row.cif).exists()


def test_summary_says_how_small_the_reference_is_and_which_systems_it_does_not_cover(campaign):
    table, _ = io.read_table(campaign.results / "metrics" / "structures.parquet")
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv").set_index("generator")
    reference = io.read_json(campaign.results / "reference" / "reference.json")
    n_structures, n_systems = reference["n_structures"]["embedded"], len(reference["chemical_systems"])
    assert (
        summary.loc["all", "reference_size"] == f"{n_structures} structures in {n_systems} chemical systems"
    )
    evaluated = table[table["evaluated"]]
    covered = evaluated["chemsys"].isin(reference["chemical_systems"])
    assert (evaluated["reference_covers_chemsys"] == covered).all()
    disordered = evaluated[evaluated["status"] == "skipped"].iloc[0]  # (Mg,Ti)O: no Mg-O-Ti crystal is known
    assert disordered["chemsys"] == "Mg-O-Ti" and not disordered["reference_covers_chemsys"]
    assert summary.loc["all", "n_uncovered_chemsys"] == (~covered).sum() >= 1
    assert "n_uncovered_chemsys" in io.read_json(campaign.results / "metrics" / "summary.json")["definitions"]


def test_job_logs_show_progress_and_tables_their_units(campaign):
    relax_log = (campaign.results / "logs" / "relax" / "rss" / "0000-0001.log").read_text()
    assert relax_log.count("relaxed structures: 3/3 done after") == 2  # each batch of the chunk
    sample_log = (campaign.results / "logs" / "sample" / "rss" / "0000-0001.log").read_text()
    assert sample_log.count("sampled structures: 3/3 done after") == 2
    units = io.read_json(campaign.results / "metrics" / "summary.json")["units"]
    assert (units["e_above_hull"], units["max_force"], units["density"], units["rmsd"]) == (
        "eV/atom",
        "eV/Å",
        "g/cm³",
        "Å",
    )
    assert io.read_table(campaign.results / "metrics" / "structures.parquet")[1]["units"] == units


def test_report_table_of_candidates_says_how_each_relaxation_ended(campaign):
    index = pd.read_csv(campaign.results / "candidates" / "index.csv")
    assert {"status", "converged", "n_steps", "max_force"} <= set(index.columns)
    page = (campaign.results / "plots" / "candidates.html").read_text()
    assert "<th>E_hull (eV/atom)</th><th>generator</th><th>relaxation</th>" in page
    for row in index.itertuples():
        assert f"<tr><td>{row.rank}</td><td>{row.id}</td><td>{row.formula}</td>" in page
        assert f"<td>{row.e_above_hull:.3f}</td><td>{row.generator}</td><td>{row.status}</td>" in page


def test_candidates_say_which_potential_and_energy_basis_and_go_to_dft(campaign):
    index = pd.read_csv(campaign.results / "candidates" / "index.csv")
    assert len(index) and (index["relaxer"] == "chgnet 0.3.0").all()
    assert (index["e_above_hull_basis"] == "self_consistent").all()
    handed = pd.read_csv(campaign.results / "dft" / "index.csv")
    assert handed["id"].tolist() == index["id"].tolist()
    assert handed["converged"].tolist() == index["converged"].tolist()
    matcher = StructureMatcher()
    for cif, folder in zip(index["cif"], handed["folder"], strict=True):
        written = campaign.results / "dft" / folder
        assert {"INCAR", "KPOINTS", "POSCAR", "POTCAR.spec"} <= {p.name for p in written.iterdir()}
        candidate = Structure.from_file(campaign.results / "candidates" / cif)
        assert matcher.fit(Poscar.from_file(written / "POSCAR").structure, candidate)
    assert (campaign.results / "dft" / "flow.json").stat().st_size > 0


def test_rerunning_a_finished_campaign_does_nothing(campaign):
    assert campaign.planned_jobs() == {}


@pytest.mark.parametrize(
    ("section", "change", "expected"),
    [
        (
            "matching",
            {"ltol": 0.25},
            {"reduce": 2, "dedup_shard": 4, "dedup": 1, "reference_reduced": 1, "novelty": 2, **FROM_METRICS},
        ),
        (
            "matching",
            {"shards": 2},
            {"dedup_shard": 2, "dedup": 1, **FROM_METRICS},
        ),
        (
            "validity",
            {"min_distance": 0.6},
            {"validity": 2, **FROM_METRICS},
        ),
        (
            "metrics",
            {"symprec": 0.01},
            {"describe": 2, "describe_reference": 1, **FROM_METRICS},
        ),
        (
            "stability",
            {"threshold": 0.05},
            {"stability": 2, **FROM_METRICS},
        ),
        ("plots", {"dpi": 100}, {"plots": 1, "hulls": 1, "all": 1}),
        ("dft", {"input_set": "MPScanRelaxSet"}, {"dft_inputs": 1, "all": 1}),
        (
            "reference",
            {"sources": ["embedded", {"path": "imported/NaCl_rocksalt.cif"}]},
            {
                "reference": 1,
                "describe_reference": 1,
                "reference_energies": 1,
                "reference_reduced": 1,
                "novelty": 2,
                "stability": 2,
                **FROM_METRICS,
            },
        ),
        # Scheduling settings rerun nothing.
        ("relax", {**TINY["relax"], "resources": {"gpus": 1, "mem_mb": 9000, "runtime": 5}}, {}),
        ("relax", {**TINY["relax"], "threads": 2, "memory_budget_mb": 900, "memory_per_atom_mb": 1.0}, {}),
        ("jobs", {"retries": 3}, {}),
        # Other chunks: every chunk job runs again (sampling and relaxation reuse their batches).
        ("jobs", {"batches_per_job": 1}, chunk_jobs(4)),
    ],
)
def test_changing_settings_reruns_only_the_rules_that_read_them(campaign, section, change, expected):
    assert campaign.planned_jobs_for({**TINY, section: change}) == expected


@pytest.mark.parametrize(
    ("relax_settings", "expected"),
    [
        # off a GPU the batched calls' memory budget comes out of the job's memory
        ({"device": "cpu"}, {"threads": "1", "gpu": "0", "mem_mb": "5500"}),
        (
            {"device": "auto", "memory_budget_mb": 10000, "threads": 2},
            {"threads": "2", "gpu": "0", "mem_mb": "11500"},
        ),
        ({"device": "cpu", "engine": "per-structure"}, {"threads": "1", "gpu": "0", "mem_mb": "3000"}),
        # beside a GPU, a few threads: the spare ones measure RMSDs while the GPU relaxes
        ({"device": "cuda", "memory_budget_mb": 60000}, {"threads": "4", "gpu": "1", "mem_mb": "3000"}),
        (
            {"device": "auto", "threads": 2, "resources": {"gpus": 1, "mem_mb": 8000}},
            {"threads": "2", "gpu": "1", "mem_mb": "8000"},
        ),
        # a GPU asked for through resources: the budget is the GPU's memory, not the job's
        ({"device": "auto", "resources": {"gpus": 1}}, {"threads": "4", "gpu": "1", "mem_mb": "3000"}),
        ({"backend": "none"}, {"threads": "1", "gpu": "0", "mem_mb": "3000"}),
    ],
)
def test_relax_jobs_ask_for_their_threads_gpu_and_memory(tmp_path, relax_settings, expected):
    config = {
        "campaign": "res",
        "generators": [TINY["generators"][0]],
        "relax": {"backend": "chgnet", **relax_settings},
    }
    # more cores than a GPU job's threads, so the plan shows what a cluster would get
    plan = Campaign(tmp_path, config).snakemake("--dry-run", "--cores", "8").stdout
    job = re.search(r"^rule relax:\n((?:    .*\n)+)", plan, re.M).group(1)  # the job's indented lines
    threads = re.search(r"threads: (\d+)", job)
    resources = dict(item.split("=", 1) for item in re.search(r"resources: (.*)", job).group(1).split(", "))
    found = {
        "threads": threads.group(1) if threads else "1",
        "gpu": resources["gpu"],
        "mem_mb": resources["mem_mb"],
    }
    assert found == expected


def test_adding_batches_runs_only_the_new_batches(campaign):
    """rss's chunk 0000-0001 becomes 0000-0002: its jobs run; they sample and relax batch 2 alone
    (test_growing_a_campaign_runs_only_new_batches_and_keeps_class_ids)."""
    grown = {**TINY, "generators": [{**TINY["generators"][0], "n_batches": 3}, TINY["generators"][1]]}
    assert campaign.planned_jobs_for(grown) == chunk_jobs(1)


def test_changing_one_generators_settings_reruns_only_its_batches(campaign):
    changed = {**TINY, "generators": [{**TINY["generators"][0], "max_atoms": 5}, TINY["generators"][1]]}
    assert campaign.planned_jobs_for(changed) == chunk_jobs(1)
    with_resources = {**TINY["generators"][0], "resources": {"gpus": 1, "runtime": 5}}
    assert campaign.planned_jobs_for({**TINY, "generators": [with_resources, TINY["generators"][1]]}) == {}


def batch_outputs(results, stages=("samples", "relaxed", "validity", "novelty")) -> dict[str, int]:
    return {
        str(p.relative_to(results)): p.stat().st_mtime_ns for s in stages for p in (results / s).rglob("*.*")
    }


def test_other_chunks_reuse_every_sampled_and_relaxed_batch(campaign, tmp_path):
    """``jobs.batches_per_job`` decides how batches are shared out to jobs, never what they hold:
    with one batch a job, every chunk job runs, no batch is sampled or relaxed again, and the
    tables are the same."""
    rechunked = Campaign.copy_of(campaign, tmp_path / "rechunked")
    before, _ = io.read_table(rechunked.results / "metrics" / "structures.parquet")
    batches = {
        path: mtime
        for path, mtime in batch_outputs(rechunked.results, ("samples", "relaxed")).items()
        if "chunks" not in path
    }
    rechunked.config = {**TINY, "jobs": {"batches_per_job": 1}}
    rechunked.write()
    rechunked.snakemake()
    after, _ = io.read_table(rechunked.results / "metrics" / "structures.parquet")
    assert {
        p: m for p, m in batch_outputs(rechunked.results, ("samples", "relaxed")).items() if p in batches
    } == batches
    manifests = {p.name for p in (rechunked.results / "relaxed" / "rss" / "chunks").iterdir()}
    assert manifests == {"0000-0001.json", "0000-0000.json", "0001-0001.json"}
    pd.testing.assert_frame_equal(after, before)


def test_growing_a_campaign_runs_only_new_batches_and_keeps_class_ids(campaign, tmp_path):
    """Contract with the matching work: every existing structure keeps class_generator and class_all."""
    grown = Campaign.copy_of(campaign, tmp_path / "grown")
    before, _ = io.read_table(grown.results / "metrics" / "structures.parquet")
    finished = batch_outputs(grown.results)
    newcomer = {**TINY["generators"][0], "name": "rss2", "n_batches": 1, "chemical_systems": ["Mg-O"]}
    grown.config = {
        **TINY,
        "generators": [{**TINY["generators"][0], "n_batches": 3}, TINY["generators"][1], newcomer],
    }
    grown.write()
    assert grown.planned_jobs() == chunk_jobs(2)
    classes_before, _ = io.read_table(grown.results / "dedup" / "classes.parquet")
    walked_before = (grown.results / "dedup" / "walk_order.txt").read_text().split()
    grown.snakemake()

    # the dedup shards walked only the new structures, to the classes of walking them all again
    shards = [io.read_table(p)[1] for p in (grown.results / "dedup" / "shards").glob("*.parquet")]
    classes_after, _ = io.read_table(grown.results / "dedup" / "classes.parquet")
    assert sum(s["kept"] for s in shards) == len(classes_before)
    assert sum(s["walked"] for s in shards) == len(classes_after) - len(classes_before) > 0
    reduced = [
        grown.results / "reduced" / name / f"{chunk}.pkl"
        for name, chunk in (("rss", "0000-0002"), ("known", "0000-0001"), ("rss2", "0000-0000"))
    ]
    records = [r for path in reduced for r in read_reduced(path, build_matcher())]
    walked_all, _, _ = dedup_table(records, build_matcher(), walked_before)
    pd.testing.assert_frame_equal(classes_after, walked_all)

    assert {p: m for p, m in batch_outputs(grown.results).items() if p in finished} == finished
    after, _ = io.read_table(grown.results / "metrics" / "structures.parquet")
    assert set(after["id"]) > set(before["id"])
    kept = after.set_index("id").loc[before["id"], ["class_generator", "class_all"]]
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), before[["class_generator", "class_all"]])


def test_bad_config_stops_before_anything_runs_with_one_line(tmp_path):
    bad = {**TINY, "generators": [{**TINY["generators"][0], "backend": "gan", "n_batches": -1}]}
    result = Campaign(tmp_path, bad).snakemake("--dry-run", check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("config error:")]
    assert errors == [
        "config error: generators[0].backend: 'gan' is not allowed; "
        "allowed: random, import, chemeleon, mattergen"
    ]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_relax_none_evaluates_structures_as_given(tmp_path):
    config = {"campaign": "asis", "generators": [TINY["generators"][1]], "relax": {"backend": "none"}}
    campaign = run_with_imported_examples(tmp_path, config)
    rows = pd.read_csv(campaign.results / "metrics" / "summary.csv").set_index("generator")
    assert rows.loc["known", "n_evaluated"] == 3 and rows.loc["known", "n_relaxed"] == 0
    assert rows.loc["known", "n_novel"] == 1  # only the disordered (Mg,Ti)O is not in the reference
    assert rows.loc["all", "relaxer"] == "none"


def test_prefetch_is_a_local_target_outside_the_campaign(campaign):
    """`snakemake prefetch` writes a manifest and runs nothing else; the campaign never needs it."""
    assert "prefetch" not in campaign.planned_jobs()
    result = campaign.snakemake("prefetch")
    manifest = json.loads((campaign.results / "prefetch.json").read_text())
    assert manifest == {"fetched": []}
    assert "localrule prefetch" in result.stderr
    assert campaign.planned_jobs() == {}
