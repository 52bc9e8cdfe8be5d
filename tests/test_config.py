from __future__ import annotations

import copy
import sys

import pytest
import yaml

from conftest import REPO
from crystal_campaign.config import ConfigError, validate_config

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def problems_of(mutate) -> list[str]:
    config = copy.deepcopy(DEFAULT)
    mutate(config)
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    return caught.value.problems


def test_default_config_is_valid_and_gets_defaults(monkeypatch):
    monkeypatch.chdir(REPO)
    config = validate_config(DEFAULT)
    assert config["validity"] == {"min_distance": 0.5, "min_volume": 0.1, "oxidation_states": "smact14"}
    assert config["generators"][0]["max_attempts"] == 20
    assert config["generators"][1]["batch_size"] == 100
    assert "max_attempts" not in DEFAULT["generators"][0], "the caller's config must not be modified"


def test_example_gpu_campaign_is_valid_and_uses_every_real_backend(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("SEVENNET_PYTHON", sys.executable)  # stands in for the SevenNet environment
    config = validate_config(yaml.safe_load((REPO / "config" / "examples" / "gpu_campaign.yaml").read_text()))
    assert {g["backend"] for g in config["generators"]} == {"mattergen", "chemeleon"}
    assert sum(g["n_batches"] * g["batch_size"] for g in config["generators"]) == 6144
    assert config["relax"]["backend"] == "mace"
    assert [s["source"] for s in config["reference"]["sources"]] == ["mp"]
    assert [m["backend"] for m in config["stability"]["ensemble"]] == ["chgnet", "sevennet"]
    assert config["metrics"]["embedding"]["model"] == "chgnet"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["generators"][0].update(backend="diffusion"),
            "generators[0].backend: 'diffusion' is not allowed; "
            "allowed: random, import, chemeleon, mattergen",
        ),
        (
            lambda c: c["generators"][0].update(n_batches=-2),
            "generators[0].n_batches: -2 is not allowed; allowed: type integer, >= 0",
        ),
        (
            lambda c: c.update(reference={"sources": [{"path": "missing/mp20.csv"}]}),
            "reference.sources[0].path: 'missing/mp20.csv' does not exist; allowed: an existing extxyz file, "
            "CIF directory or CSV file",
        ),
        (
            lambda c: c["matching"].update(ltol=1.5),
            "matching.ltol: 1.5 is not allowed; allowed: type number, > 0, <= 1",
        ),
        (
            lambda c: c["matching"].update(stol="loose"),
            "matching.stol: 'loose' is not allowed; allowed: type number, > 0, <= 1",
        ),
        (
            lambda c: c["matching"].update(matcher="fuzzy"),
            "matching.matcher: 'fuzzy' is not allowed; allowed: ordered, disordered",
        ),
        (
            lambda c: c["generators"][1].update(name="rss"),
            "generators[1].name: duplicate generator name 'rss'; allowed: unique names",
        ),
        (
            lambda c: c.update(plots={"dpi": 0}),
            "plots.dpi: 0 is not allowed; allowed: type integer, >= 30, <= 1200",
        ),
        (
            lambda c: c["generators"][0].update(name="all"),
            "generators[0].name: 'all' is reserved; allowed: any other name",
        ),
        (
            lambda c: c["relax"].update(optimiser="BFGS"),
            "relax: unknown key 'optimiser'; allowed keys: backend, model, model_path, dtype, fmax, "
            "max_steps, relax_cell, device, engine, memory_budget_mb, memory_per_atom_mb, threads, "
            "max_volume_ratio, resources",
        ),
        (
            lambda c: c["relax"].update(backend="chgnet", engine="torch-sim"),
            "relax.engine: torch-sim does not drive the chgnet potential; allowed: auto, batched-ase, "
            "per-structure",
        ),
        (
            lambda c: c["relax"].update(engine="lbfgs"),
            "relax.engine: 'lbfgs' is not allowed; allowed: auto, torch-sim, batched-ase, per-structure",
        ),
        (
            lambda c: c["relax"].update(backend="vasp"),
            "relax.backend: 'vasp' is not allowed; allowed: chgnet, mace, none, sevennet",
        ),
        (
            lambda c: c["relax"].update(device="gpu"),
            "relax.device: 'gpu' is not allowed; allowed: type string, auto, cpu, cuda or cuda:N",
        ),
        (
            lambda c: c["relax"].update(backend="mace", model_path="models/missing.model"),
            "relax.model_path: 'models/missing.model' does not exist; allowed: an existing model file",
        ),
        (
            lambda c: c["generators"][0].update(chemical_systems=["Na-Xx"]),
            "generators[0].chemical_systems: unknown element 'Xx'; "
            "allowed: element symbols such as Na, Cl, Ti",
        ),
        (
            lambda c: c["generators"][1].update(paths=["nowhere/*.cif"]),
            "generators[1].paths: 'nowhere/*.cif' matches no file; allowed: existing files, dirs or globs",
        ),
        (
            lambda c: c["generators"][0].update(min_atoms=20),
            "generators[0].min_atoms: 20 is not allowed; allowed: <= max_atoms (12)",
        ),
        (lambda c: c.pop("campaign"), "config: missing required key 'campaign'"),
    ],
)
def test_each_bad_value_is_one_line_naming_key_and_allowed_values(monkeypatch, mutate, expected):
    monkeypatch.chdir(REPO)
    assert problems_of(mutate) == [expected]


def test_several_problems_give_one_line_each(monkeypatch):
    monkeypatch.chdir(REPO)

    def mutate(config):
        config["matching"]["angle_tol"] = -1
        config["generators"][0]["batch_size"] = 0

    problems = problems_of(mutate)
    assert len(problems) == 2
    assert problems[0].startswith("generators[0].batch_size: 0 is not allowed")
    assert problems[1].startswith("matching.angle_tol: -1 is not allowed")


def test_cli_check_reports_problems_without_traceback(monkeypatch, tmp_path, capsys):
    from crystal_campaign.cli import main

    monkeypatch.chdir(REPO)
    main(["check", "--configfile", "config/config.yaml"])
    assert "config/config.yaml: ok (2 generators)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**DEFAULT, "relax": {"fmax": -1}}))
    with pytest.raises(SystemExit) as stopped:
        main(["check", "--configfile", str(bad)])
    assert stopped.value.code == 1
    expected = "config error: relax.fmax: -1 is not allowed; allowed: type number, > 0\n"
    assert capsys.readouterr().err == expected


def test_cli_prefetch_of_a_local_campaign_has_nothing_to_download(monkeypatch, capsys):
    from crystal_campaign.cli import main

    monkeypatch.chdir(REPO)
    main(["prefetch", "--configfile", "config/config.yaml"])
    assert capsys.readouterr().out == "nothing to download: every model and reference is local\n"


def test_mace_model_names_are_the_ones_mace_mp_knows(monkeypatch):
    pytest.importorskip("mace")
    monkeypatch.chdir(REPO)
    (problem,) = problems_of(lambda c: c["relax"].update(backend="mace", model="huge"))
    assert problem.startswith("relax.model: 'huge' is not a MACE foundation model; allowed: small, medium,")
    assert "medium-mpa-0" in problem
    config = copy.deepcopy(DEFAULT)
    config["relax"] = {"backend": "mace", "model": "medium-mpa-0", "device": "cuda:1"}
    assert validate_config(config)["relax"]["dtype"] == "float64"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "config error: {path}: no such config file\n"),
        (
            "campaign: a\ngenerators: [\n  - name: x\n",
            "config error: {path} line 3, column 3: expected the node content, but found '-'\n",
        ),
        (
            "campaign: a\nrelax: {fmax: 0.1}\ngenerators: []\nrelax: {fmax: 0.2}\n",
            "config error: {path} line 4, column 1: duplicate key 'relax' (first at line 2)\n",
        ),
        (
            "- just\n- a list\n",
            "config error: {path}: a config is a mapping of keys (campaign, generators, ...)",
        ),
    ],
    ids=["missing", "syntax", "duplicate", "not-a-mapping"],
)
def test_unreadable_config_files_are_one_line_naming_file_and_place(tmp_path, capsys, text, expected):
    from crystal_campaign.cli import main

    path = tmp_path / "campaign.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SystemExit) as stopped:
        main(["check", "--configfile", str(path)])
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith(expected.format(path=path)) and error.count("\n") == 1


def test_a_malformed_chemical_system_says_what_one_looks_like(monkeypatch):
    monkeypatch.chdir(REPO)
    (problem,) = problems_of(lambda c: c["generators"][0].update(chemical_systems=["NaCl"]))
    assert problem == (
        "generators[0].chemical_systems[0]: 'NaCl' is not allowed; "
        "allowed: type string, element symbols joined by '-', e.g. Na-Cl"
    )


def test_a_stability_preset_sets_another_benchmarks_thresholds(monkeypatch):
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(DEFAULT)
    config["stability"] = {"preset": "lemat_genbench"}
    stability = validate_config(config)["stability"]
    assert (stability["threshold"], stability["metastable_threshold"]) == (0.0, 0.1)
    assert problems_of(lambda c: c["stability"].update(preset="chemeleon2", metastable_threshold=0.2)) == [
        "stability.threshold: set by stability.preset chemeleon2 (0.0); "
        "allowed: the preset or the thresholds, not both",
        "stability.metastable_threshold: set by stability.preset chemeleon2 (0.1); "
        "allowed: the preset or the thresholds, not both",
    ]
    assert problems_of(lambda c: c["stability"].update(preset="mattergen")) == [
        "stability.preset: 'mattergen' is not allowed; allowed: lemat_genbench, chemeleon2"
    ]
