"""MatterGen backend end to end in its own environment (``make test-mattergen`` builds it).

Tiny random-initialised MatterGen checkpoints are built here (tests/mattergen_model.py) and go
through the real code paths: MatterGen's checkpoint loading (local and from Hugging Face via a
local server speaking its protocol), its sampler, our screening and batch writing, and a real
Snakemake campaign. Random weights make the lattice explode under MatterGen's cell updates, so
these tests, and only these, sample with few steps and without the cell predictor/corrector.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from pymatgen.core import Composition

from chemeleon_model import write_random_checkpoint
from conftest import REPO, Campaign, mattergen_python
from crystal_campaign import generators, io
from crystal_campaign.config import validate_config
from crystal_campaign.generators import mattergen

pytestmark = pytest.mark.mattergen

STEPS = 4
# Only for random weights: without cell updates the lattice stays the (finite) prior sample.
NO_CELL_UPDATES = ["~sampler_partial.predictor_partials.cell", "~sampler_partial.corrector_partials.cell"]
SMALL_CELLS = {2: 1, 4: 1}


def build_model(out_dir: Path, *flags: str) -> Path:
    command = [
        mattergen_python(),
        str(REPO / "tests" / "mattergen_model.py"),
        str(out_dir),
        "--steps",
        str(STEPS),
    ]
    subprocess.run([*command, *flags], check=True, capture_output=True, timeout=300)
    return out_dir


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mattergen-models")
    return {
        "unconditional": build_model(root / "unconditional"),
        "chemical_system": build_model(root / "chemical_system", "--chemical-system"),
    }


def generator(name: str, **settings) -> dict:
    return {
        "name": name,
        "backend": "mattergen",
        "n_batches": 1,
        "batch_size": 3,
        "steps": STEPS,
        "sampling_config_overrides": NO_CELL_UPDATES,
        "num_atoms_distribution": SMALL_CELLS,
        "device": "cpu",
        "python": mattergen_python(),
        **settings,
    }


def validated(settings: dict) -> dict:
    config = validate_config({"campaign": "t", "generators": [settings], "relax": {"backend": "none"}})
    return config["generators"][0]


def sample_batch(settings: dict, path: Path) -> tuple[list[dict], dict]:
    generators.sample(validated(settings), "t", 0, str(path))
    return io.read_records(path), io.read_json(io.sidecar_path(path))


@pytest.fixture(scope="module")
def unconditional_batch(models, tmp_path_factory) -> tuple[dict, list[dict], dict]:
    settings = generator("mg", model_path=str(models["unconditional"]))
    records, sidecar = sample_batch(settings, tmp_path_factory.mktemp("batch") / "0000.jsonl.gz")
    return settings, records, sidecar


def test_runner_writes_the_standard_batch_format(unconditional_batch, models, tmp_path):
    _, records, sidecar = unconditional_batch
    baseline = {
        "name": "rss",
        "backend": "random",
        "n_batches": 1,
        "batch_size": 2,
        "chemical_systems": ["Na-Cl"],
    }
    base_records, base_sidecar = sample_batch(baseline, tmp_path / "rss" / "0000.jsonl.gz")

    assert [r["id"] for r in records] == ["mg-b0000-0000", "mg-b0000-0001", "mg-b0000-0002"]
    assert all(set(r) == set(base_records[0]) for r in records)
    assert all((r["structure"] is None) != (r["reason"] is None) for r in records)
    kept = [r["structure"] for r in records if r["structure"] is not None]
    assert kept and all(1 <= site.specie.Z <= 100 for structure in kept for site in structure)
    # these random weights keep MatterGen's mask class (Z = 101) in some samples: junk, with the reason
    assert any(r["reason"] and "atomic numbers [101] (mask or padding token)" in r["reason"] for r in records)
    assert set(base_sidecar) <= set(sidecar)
    assert (sidecar["n_requested"], sidecar["n_generated"] + sidecar["n_failed"]) == (3, 3)
    checkpoint = models["unconditional"] / "checkpoints" / "last.ckpt"
    assert sidecar["stats"]["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert sidecar["sampler"]["published"] is False and sidecar["sampler"]["steps"] == STEPS
    assert sidecar["device"] == "cpu" and sidecar["versions"]["mattergen"] == "1.0.3"
    assert sidecar["seed"] == generators.derive_seed("t", "mg", 0)
    assert sidecar["stats"]["structures_per_s"] > 0


def test_same_seed_same_batch(unconditional_batch, tmp_path):
    settings, records, _ = unconditional_batch
    again, _ = sample_batch(settings, tmp_path / "0000.jsonl.gz")
    assert [r["structure"] for r in again] == [r["structure"] for r in records]


def test_a_crash_of_mattergens_sampler_is_a_failed_batch_not_a_set_up_error(models, tmp_path):
    # With cell updates, random weights blow the lattice up and GemNet fails on an empty neighbour
    # graph: a BatchError, which jobs.run_or_record_failure records as failure rows at once.
    settings = generator("mgc", model_path=str(models["unconditional"]), sampling_config_overrides=[])
    with pytest.raises(
        mattergen.MatterGenSamplerError, match=r"^generator mgc: MatterGen's sampler failed: IndexError"
    ):
        sample_batch(settings, tmp_path / "0000.jsonl.gz")
    assert not (tmp_path / "0000.jsonl.gz").exists()


def test_conditioning_a_model_not_trained_for_it_is_one_line(models, tmp_path):
    settings = generator(
        "mg",
        model_path=str(models["unconditional"]),
        properties_to_condition_on={"chemical_system": "Na-Cl"},
        diffusion_guidance_factor=2.0,
    )
    with pytest.raises(mattergen.MatterGenError) as caught:
        sample_batch(settings, tmp_path / "0000.jsonl.gz")
    assert str(caught.value) == (
        "generator mg: the model was not trained to condition on chemical_system; "
        "it conditions on: nothing (unconditional model)"
    )


class HubHandler(BaseHTTPRequestHandler):
    """The two requests hf_hub_download makes per file: HEAD for metadata, GET for the bytes."""

    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []
    commit = "0123456789abcdef0123456789abcdef01234567"

    def _file(self) -> bytes | None:
        prefix = "/microsoft/mattergen/resolve/main/"
        return self.files.get(self.path.removeprefix(prefix)) if self.path.startswith(prefix) else None

    def _headers(self, content: bytes | None) -> None:
        if content is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", self.commit)
        self.send_header("X-Linked-Etag", f'"{hashlib.sha256(content).hexdigest()}"')
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()

    def do_HEAD(self) -> None:
        self.requests.append(f"HEAD {self.path}")
        self._headers(self._file())

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        content = self._file()
        self._headers(content)
        if content is not None:
            self.wfile.write(content)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hub(models, monkeypatch, tmp_path):
    """A local Hugging Face endpoint serving the tiny chemical_system model as microsoft/mattergen."""
    model = models["chemical_system"]
    HubHandler.files = {
        f"checkpoints/chemical_system/{name}": (model / name).read_bytes()
        for name in ("config.yaml", "checkpoints/last.ckpt")
    }
    HubHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield HubHandler
    server.shutdown()


def test_prefetch_downloads_from_hugging_face_then_sampling_runs_offline(hub, models, tmp_path):
    settings = generator(
        "cs",
        model="chemical_system",
        properties_to_condition_on={"chemical_system": "Na-Cl"},
        diffusion_guidance_factor=2.0,
    )
    with pytest.raises(
        mattergen.MatterGenError, match=r"is not in the Hugging Face cache .* run `crystal-campaign"
    ):
        sample_batch(settings, tmp_path / "before" / "0000.jsonl.gz")

    (line,) = generators.prefetch(validated(settings))
    assert line.startswith("microsoft/mattergen/chemical_system: ")
    assert (
        "GET /microsoft/mattergen/resolve/main/checkpoints/chemical_system/checkpoints/last.ckpt"
        in hub.requests
    )

    hub.requests.clear()
    records, sidecar = sample_batch(settings, tmp_path / "after" / "0000.jsonl.gz")
    assert hub.requests == [], "sampling jobs must read the prefetched cache, not the network"
    checkpoint = models["chemical_system"] / "checkpoints" / "last.ckpt"
    assert sidecar["stats"]["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert sidecar["conditioning"] == {"chemical_system": "Na-Cl"} and len(records) == 3


def test_campaign_with_every_generative_mode_and_the_baseline(models, tmp_path):
    # Chemeleon only so that random weights give some usable cells: 5 steps, a linear schedule.
    chemeleon_models = {
        task: write_random_checkpoint(
            tmp_path / f"{task}.ckpt",
            task,
            hidden_dim=32,
            num_layers=2,
            num_timesteps=5,
            beta_schedule="linear",
            seed=0,
        )
        for task in ("dng", "csp")
    }
    generators_list = [
        {"name": "rss", "backend": "random", "n_batches": 1, "batch_size": 3, "chemical_systems": ["Na-Cl"]},
        {
            "name": "cham",
            "backend": "chemeleon",
            "n_batches": 1,
            "batch_size": 3,
            "model_path": str(chemeleon_models["dng"]),
        },
        {
            "name": "cham_csp",
            "backend": "chemeleon",
            "task": "csp",
            "formulas": ["NaCl"],
            "n_batches": 1,
            "batch_size": 2,
            "model_path": str(chemeleon_models["csp"]),
        },
        generator("mg", model_path=str(models["unconditional"])),
        generator(
            "mg_nacl",
            model_path=str(models["chemical_system"]),
            properties_to_condition_on={"chemical_system": "Na-Cl"},
            diffusion_guidance_factor=2.0,
            # fewer steps than the model's atom-type schedule: the runner makes the schedule match
            steps=STEPS - 1,
        ),
    ]
    config = {
        "campaign": "mgtest",
        "generators": copy.deepcopy(generators_list),
        "relax": {"backend": "none"},
    }
    campaign = Campaign(tmp_path, config)
    campaign.snakemake()

    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv").set_index("generator")
    assert list(summary.index) == ["rss", "cham", "cham_csp", "mg", "mg_nacl", "all"]
    assert summary.loc[["rss", "cham", "cham_csp", "mg", "mg_nacl"], "n_requested"].tolist() == [
        3,
        3,
        2,
        3,
        3,
    ]
    assert summary["nondefault_sampler"].to_dict() == {
        "rss": False,
        "cham": False,
        "cham_csp": False,
        "mg": True,
        "mg_nacl": True,
        "all": True,
    }
    assert summary.loc["mg", "sampler"].startswith("NON-DEFAULT mattergen 4 steps x 2")
    unconditional_sha = hashlib.sha256((models["unconditional"] / "checkpoints" / "last.ckpt").read_bytes())
    assert (
        summary.loc["mg", "model"]
        == f"model_path {models['unconditional']} {unconditional_sha.hexdigest()[:12]}"
    )
    table, _ = io.read_table(campaign.results / "metrics" / "structures.parquet")
    assert table.groupby("generator")["nondefault_sampler"].all().to_dict() == {
        "cham": False,
        "cham_csp": False,
        "mg": True,
        "mg_nacl": True,
        "rss": False,
    }
    # adherence of the guided generator: each evaluated structure's elements against Na-Cl
    guided_rows = table[(table["generator"] == "mg_nacl") & table["evaluated"]]
    in_system = [
        set(Composition(f).chemical_system.split("-")) == {"Na", "Cl"} for f in guided_rows["formula"]
    ]
    assert guided_rows["in_target_chemsys"].astype(bool).tolist() == in_system
    expected = sum(in_system) / len(in_system) if in_system else float("nan")
    assert summary.loc["mg_nacl", "frac_in_target_chemsys"] == pytest.approx(expected, nan_ok=True)
    csp_rows = table[(table["generator"] == "cham_csp") & table["evaluated"]]
    assert csp_rows["composition_match"].astype(bool).all()
    expected = 1.0 if len(csp_rows) else float("nan")
    assert summary.loc["cham_csp", "frac_composition_match"] == pytest.approx(expected, nan_ok=True)
    guided = io.read_json(campaign.results / "samples" / "mg_nacl" / "0000.json")
    assert (guided["conditioning"], guided["diffusion_guidance_factor"]) == (
        {"chemical_system": "Na-Cl"},
        2.0,
    )
    assert json.loads(json.dumps(guided["settings"]))["sampling_config_overrides"] == NO_CELL_UPDATES
    assert guided["sampler"]["steps"] == STEPS - 1 and guided["n_requested"] == 3
    assert campaign.planned_jobs() == {}
