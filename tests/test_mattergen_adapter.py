"""The MatterGen adapter without a MatterGen environment: settings checks and its one-line errors."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import Campaign
from crystal_campaign import io
from crystal_campaign.config import ConfigError, validate_config
from crystal_campaign.generators import mattergen
from crystal_campaign.io import JobError

BASE = {
    "campaign": "mg",
    "generators": [{"name": "mg", "backend": "mattergen", "n_batches": 1, "batch_size": 2}],
    "relax": {"backend": "none"},
}


def settings_with(**changes) -> dict:
    config = copy.deepcopy(BASE)
    config["generators"][0].update(changes)
    return validate_config(config)["generators"][0]


def problems_with(**changes) -> list[str]:
    config = copy.deepcopy(BASE)
    config["generators"][0].update(changes)
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    return caught.value.problems


def test_defaults_are_the_published_sampler_of_the_base_model():
    settings = settings_with()
    assert settings["model"] == "mattergen_base"
    assert (settings["steps"], settings["corrector_steps"], settings["sampling_config_overrides"]) == (
        1000,
        1,
        [],
    )
    assert settings["device"] == "auto"
    assert mattergen.sampler_description(settings) == {
        "steps": 1000,
        "corrector_steps": 1,
        "overrides": [],
        "published": True,
        "label": "mattergen 1000 steps x 2",
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"steps": 50},
        {"corrector_steps": 0},
        {"sampling_config_overrides": ["~sampler_partial.predictor_partials.cell"]},
    ],
)
def test_any_other_sampler_is_flagged(changes):
    description = mattergen.sampler_description(settings_with(**changes))
    assert not description["published"]
    assert description["label"].startswith("NON-DEFAULT mattergen")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"model": "mattergen_large"},
            "generators[0].model: 'mattergen_large' is not allowed; allowed: mattergen_base, chemical_system",
        ),
        (
            {"properties_to_condition_on": {"chemical_system": "Na-Cl"}, "diffusion_guidance_factor": 2.0},
            "generators[0].properties_to_condition_on.chemical_system: not allowed with model "
            "mattergen_base; allowed: none (an unconditional model)",
        ),
        (
            {"model": "chemical_system", "properties_to_condition_on": {"chemical_system": "Na-Cl"}},
            "generators[0].diffusion_guidance_factor: 0 is not allowed with properties_to_condition_on",
        ),
        (
            {
                "model": "chemical_system",
                "properties_to_condition_on": {"chemical_system": "Na-Xx"},
                "diffusion_guidance_factor": 2.0,
            },
            "generators[0].properties_to_condition_on.chemical_system: unknown element 'Xx'",
        ),
        (
            {"model": "space_group", "properties_to_condition_on": {"space_group": 231}},
            "generators[0].properties_to_condition_on.space_group: 231 is not allowed; allowed: type integer",
        ),
        (
            {"num_atoms_distribution": {4: 0.0}},
            "generators[0].num_atoms_distribution: {4: 0.0} is not allowed; allowed: ALEX_MP_20 or a mapping",
        ),
        ({"device": "gpu"}, "generators[0].device: 'gpu' is not allowed"),
        ({"model_path": "no/such/model"}, "generators[0].model_path: 'no/such/model' has no config.yaml"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(changes, expected):
    problems = problems_with(**changes)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_conditioned_pretrained_model_with_guidance_is_valid():
    settings = settings_with(
        model="chemical_system_energy_above_hull",
        properties_to_condition_on={"chemical_system": "Li-O", "energy_above_hull": 0.05},
        diffusion_guidance_factor=2.0,
        num_atoms_distribution={4: 1, 8: 2},
    )
    assert settings["properties_to_condition_on"] == {"chemical_system": "Li-O", "energy_above_hull": 0.05}


def test_device_decides_which_gpus_the_runner_sees(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = mattergen.job_environment(settings_with(device="cuda:1"), tmp_path, "sample")
    assert (env["CUDA_VISIBLE_DEVICES"], env["TMPDIR"], env["HF_HUB_OFFLINE"]) == ("1", str(tmp_path), "1")
    assert (
        mattergen.job_environment(settings_with(device="cpu"), tmp_path, "sample")["CUDA_VISIBLE_DEVICES"]
        == ""
    )
    # on a node where SLURM gave the job GPUs 2 and 5, cuda:1 is GPU 5
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    env = mattergen.job_environment(settings_with(device="cuda:1"), tmp_path, "sample")
    assert env["CUDA_VISIBLE_DEVICES"] == "5"
    with pytest.raises(
        mattergen.MatterGenError, match=r"^generator mg: device cuda:2, but the job sees 2 GPU"
    ):
        mattergen.job_environment(settings_with(device="cuda:2"), tmp_path, "sample")
    # prefetch downloads on a login node (no GPU, internet): neither GPU choice nor offline mode
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    env = mattergen.job_environment(settings_with(device="cuda:0"), tmp_path, "prefetch")
    assert env["CUDA_VISIBLE_DEVICES"] == "" and "HF_HUB_OFFLINE" not in env


@pytest.fixture
def no_mattergen_env(monkeypatch, tmp_path):
    monkeypatch.setattr(mattergen, "BUILT_ENV_PYTHON", tmp_path / "missing" / "python")
    monkeypatch.setattr(mattergen.importlib.util, "find_spec", lambda name: None)


def test_missing_environment_is_one_line_saying_what_to_do(no_mattergen_env, tmp_path):
    with pytest.raises(mattergen.MatterGenError) as caught:
        mattergen.BACKEND.write_batch(settings_with(), "mg", 0, str(tmp_path / "0000.jsonl.gz"), {})
    assert str(caught.value) == (
        "generator mg: no MatterGen environment: set python: /path/to/env/bin/python, run with "
        "`snakemake --sdm conda` (envs/mattergen.yaml), or build one with `bash envs/build-mattergen-env.sh`"
    )


def test_configured_interpreter_wins_and_must_exist(no_mattergen_env, tmp_path):
    with pytest.raises(
        mattergen.MatterGenError, match=r"^generator mg: python '/no/python' is not an executable"
    ):
        mattergen.interpreter(settings_with(python="/no/python"))
    assert mattergen.interpreter(settings_with(python=shutil.which("python3"))) == shutil.which("python3")


def test_failed_runner_is_one_line_pointing_at_the_log(tmp_path):
    settings = settings_with(python=shutil.which("false"))
    with pytest.raises(mattergen.MatterGenError) as caught:
        mattergen.BACKEND.write_batch(settings, "mg", 0, str(tmp_path / "0000.jsonl.gz"), {})
    assert str(caught.value).startswith("generator mg: the MatterGen runner (")
    assert "failed with exit status 1; its output is in the sample job's log" in str(caught.value)
    assert not (tmp_path / "0000.jsonl.gz").exists()


def crashing_sampler(folder: Path) -> Path:
    """An interpreter standing in for the runner when MatterGen's sampler crashes (exit status 4)."""
    python = folder / "python"
    python.write_text(
        "#!/bin/sh\n"
        'echo attempt >> "$(dirname "$0")/attempts"\n'
        'echo "MatterGen\'s sampler failed: IndexError: index 0 is out of bounds" > "$5"\n'
        "exit 4\n"
    )
    python.chmod(0o755)
    return python


@pytest.mark.workflow
def test_a_sampler_crash_is_kept_as_failure_rows_at_once(tmp_path):
    python = crashing_sampler(tmp_path)
    with pytest.raises(mattergen.MatterGenSamplerError) as caught:
        mattergen.BACKEND.write_batch(
            settings_with(python=str(python)), "mg", 0, str(tmp_path / "b.jsonl.gz"), {}
        )
    assert not isinstance(caught.value, JobError), "a crash on one batch must not stop the campaign"
    assert (
        str(caught.value) == "generator mg: MatterGen's sampler failed: IndexError: index 0 is out of bounds"
    )

    config = copy.deepcopy(BASE)
    config["generators"][0]["python"] = str(python)
    campaign = Campaign(tmp_path / "campaign", config)
    campaign.snakemake()
    # the call above, then one job: a retry would draw the same batch (same seed) and fail alike
    assert (tmp_path / "attempts").read_text().count("attempt") == 1 + 1
    records = io.read_records(campaign.results / "samples" / "mg" / "0000.jsonl.gz")
    assert len(records) == 2 and all(r["structure"] is None for r in records)
    assert all(
        r["reason"].startswith(
            "batch failed after 1 attempt: MatterGenSamplerError: generator mg: MatterGen's"
        )
        for r in records
    )
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv").set_index("generator")
    assert (summary.loc["mg", "n_requested"], summary.loc["mg", "n_generated"]) == (2, 0)


@pytest.mark.workflow
def test_campaign_without_environment_fails_with_one_line_and_no_traceback(tmp_path):
    config = copy.deepcopy(BASE)
    config["generators"][0]["python"] = str(tmp_path / "nowhere" / "bin" / "python")
    result = Campaign(tmp_path, config).snakemake(check=False)
    assert result.returncode != 0
    assert (
        "error: generator mg: python '" in result.stderr
        and "is not an executable interpreter" in result.stderr
    )
    assert "Traceback" not in result.stderr
