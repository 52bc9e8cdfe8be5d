"""Chemeleon-DNG backend: tiny random-initialised checkpoints built here, driven through the real
loader, Chemeleon's own sampler, its own download code, the junk screen and the batch writer."""

from __future__ import annotations

import copy
import http.server
import io as bytes_io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from chemeleon_dng import download_util
from chemeleon_dng.schema import CrystalBatch
from pymatgen.core import Composition

from chemeleon_model import write_random_checkpoint
from conftest import Campaign, chunk_jobs
from crystal_campaign import cli, generators, io, metrics
from crystal_campaign.config import ConfigError, validate_config
from crystal_campaign.generators import chemeleon

DNG_FILE = "chemeleon_dng_alex_mp_20_v0.0.2.ckpt"
CSP_FILE = "chemeleon_csp_alex_mp_20_v0.0.2.ckpt"


def tiny_checkpoint(path: Path, task: str) -> Path:
    """5 steps and a linear noise schedule: only so that random weights give some usable cells."""
    return write_random_checkpoint(
        path, task, hidden_dim=32, num_layers=2, num_timesteps=5, beta_schedule="linear", seed=0
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("chemeleon")
    return {task: tiny_checkpoint(folder / f"tiny_{task}.ckpt", task) for task in ("dng", "csp")}


def settings(**changes) -> dict:
    """A chemeleon generator as the config schema fills it in."""
    config = {"campaign": "c", "generators": [{"name": "cham", "backend": "chemeleon", "n_batches": 1}]}
    config["generators"][0].update({"batch_size": 6, **changes})
    return validate_config(config)["generators"][0]


def sample(tmp_path: Path, generator: dict, batch: int = 0, name: str = "batch") -> tuple[list[dict], dict]:
    path = tmp_path / f"{name}.jsonl.gz"
    generators.sample(generator, "c", batch, str(path))
    return io.read_records(path), io.read_json(io.sidecar_path(path))


def test_dng_batch_keeps_every_request_and_records_the_model(tmp_path, checkpoints):
    generator = settings(model_path=str(checkpoints["dng"]), num_atoms=[3, 5])
    records, sidecar = sample(tmp_path, generator)
    assert len(records) == 6 and sidecar["n_requested"] == 6
    assert [r["target_num_atoms"] for r in records] == [3, 5, 3, 5, 3, 5]
    for record in records:
        assert (record["structure"] is None) != (record["reason"] is None)
        if record["structure"] is not None:
            assert len(record["structure"]) == record["target_num_atoms"]
    # Random weights give junk too: each junk output is a failure row with the screen's reason.
    assert 0 < sidecar["n_generated"] < 6
    stats = sidecar["stats"]
    assert stats["checkpoint_sha256"] == io.file_sha256(checkpoints["dng"])
    assert (stats["task"], stats["steps"], stats["device"]) == ("dng", 5, "cpu")
    assert stats["torch"] == torch.__version__ and stats["structures_per_s"] > 0
    assert sidecar["versions"]["chemeleon-dng"] != "not installed"
    again, _ = sample(tmp_path, generator, name="again")
    assert again == records, "the derived seed makes a batch reproducible"


def test_csp_batch_uses_formulas_in_turn_across_batches(tmp_path, checkpoints):
    generator = settings(
        task="csp", model_path=str(checkpoints["csp"]), formulas=["NaCl", "Ti2O4"], batch_size=3
    )
    records, sidecar = sample(tmp_path, generator, batch=1)
    assert [r["target_formula"] for r in records] == ["Ti2O4", "NaCl", "Ti2O4"]
    assert [r["id"] for r in records] == ["cham-b0001-0000", "cham-b0001-0001", "cham-b0001-0002"]
    structures = [r for r in records if r["structure"] is not None]
    assert structures, "the tiny linear-schedule model gives some usable cells"
    for record in structures:
        assert record["structure"].composition == Composition(record["target_formula"])
    assert sidecar["stats"]["task"] == "csp"


def test_mp20_atom_counts_come_from_the_seed():
    generator = settings(batch_size=50)
    counts = chemeleon.batch_targets(generator, 0, np.random.default_rng(7))
    assert counts == chemeleon.batch_targets(generator, 0, np.random.default_rng(7))
    assert counts != chemeleon.batch_targets(generator, 0, np.random.default_rng(8))
    assert set(counts) <= set(range(1, 21)) and len(set(counts)) > 5


def test_junk_outputs_become_failure_rows_with_reasons():
    good = [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]]
    crystals = CrystalBatch(
        atom_types=torch.tensor([11, 17, 11, 0, 11, 17, 11, 17]),
        lattices=torch.tensor([good, good, [[float("nan")] * 3] * 3, np.diag([3000.0, 5, 5]).tolist(), good]),
        frac_coords=torch.rand(8, 3),
        num_atoms=torch.tensor([2, 2, 2, 2, 0]),
        batch=torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
    )
    samples = chemeleon.to_samples(crystals, ["NaCl"] * 5, "csp")
    assert samples[0].structure.composition.reduced_formula == "NaCl" and samples[0].reason is None
    assert [s.reason.split(":")[0] for s in samples[1:]] == [
        "invalid species",
        "non-finite or malformed lattice",
        "cell too large",
        "empty structure",
    ]
    assert all(s.extras == {"target_formula": "NaCl"} for s in samples)


def test_prefilled_cache_is_used_without_any_download(tmp_path, checkpoints, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a filled cache must never download")

    monkeypatch.setattr(download_util, "download_file", no_download)
    cache = tmp_path / "cache"
    (cache / "ckpts").mkdir(parents=True)
    (cache / "ckpts" / DNG_FILE).write_bytes(checkpoints["dng"].read_bytes())
    generator = settings(cache_dir=str(cache), download=False)
    assert generators.prefetch(generator) == [f"{cache / 'ckpts' / DNG_FILE} (already cached)"]
    _, sidecar = sample(tmp_path, generator)
    assert sidecar["stats"]["checkpoint"] == str(cache / "ckpts" / DNG_FILE)
    assert sidecar["stats"]["model"] == "chemeleon_dng_alex_mp_20_v0.0.2"


def test_default_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert (
        chemeleon.released_checkpoint(settings()) == tmp_path / "crystal-campaign/chemeleon/ckpts" / DNG_FILE
    )
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/not/allowed")
    assert chemeleon.default_cache_dir() == Path.home() / ".cache/crystal-campaign/chemeleon"


@pytest.fixture
def figshare(checkpoints, monkeypatch):
    """A local HTTP server standing in for figshare, serving Chemeleon's archive layout (ckpts/*.ckpt)."""
    archive = bytes_io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(checkpoints["dng"], arcname=f"ckpts/{DNG_FILE}")
        tar.add(checkpoints["csp"], arcname=f"ckpts/{CSP_FILE}")
    payload = archive.getvalue()
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            found = self.path == "/files/54966305"
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(payload) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(
        download_util, "FIGSHARE_URL", f"http://127.0.0.1:{server.server_port}/files/54966305"
    )
    yield requests
    server.shutdown()


def test_prefetch_downloads_with_chemeleons_own_code_into_the_cache(tmp_path, figshare):
    cache = tmp_path / "cache"
    generator = settings(task="csp", formulas=["NaCl"], cache_dir=str(cache))
    assert generators.prefetch(generator) == [str(cache / "ckpts" / CSP_FILE)]
    assert sorted(p.name for p in (cache / "ckpts").iterdir()) == [CSP_FILE, DNG_FILE]
    assert [p.name for p in cache.iterdir()] == ["ckpts"], "no staging folder or archive is left behind"
    assert generators.prefetch(generator) == [f"{cache / 'ckpts' / CSP_FILE} (already cached)"]
    assert len(figshare) == 1
    records, _ = sample(tmp_path, {**generator, "download": False})
    assert {r["target_formula"] for r in records} == {"NaCl"}


def test_sampling_with_an_empty_cache_downloads_when_allowed(tmp_path, figshare):
    records, sidecar = sample(tmp_path, settings(cache_dir=str(tmp_path / "cache")))
    assert len(records) == 6 and len(figshare) == 1
    assert sidecar["stats"]["checkpoint"].startswith(str(tmp_path / "cache"))


def test_failed_download_is_one_line_naming_the_generator(tmp_path, figshare, monkeypatch):
    monkeypatch.setattr(download_util, "FIGSHARE_URL", download_util.FIGSHARE_URL + "-gone")
    with pytest.raises(generators.GeneratorUnavailable) as caught:
        generators.prefetch(settings(cache_dir=str(tmp_path / "cache")))
    message = str(caught.value)
    assert message.startswith("generator 'cham' (chemeleon dng): could not download the checkpoints")
    assert "404" in message and "crystal-campaign prefetch" in message and "\n" not in message
    assert not list((tmp_path / "cache" / "ckpts").iterdir())


def test_cli_prefetch_failure_is_one_line(tmp_path, figshare, monkeypatch, capsys):
    monkeypatch.setattr(download_util, "FIGSHARE_URL", download_util.FIGSHARE_URL + "-gone")
    config = {
        "campaign": "c",
        "generators": [
            {
                "name": "cham",
                "backend": "chemeleon",
                "n_batches": 1,
                "batch_size": 2,
                "cache_dir": str(tmp_path),
            }
        ],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as caught:
        cli.main(["prefetch", "--configfile", str(tmp_path / "c.yaml")])
    assert str(caught.value).startswith(
        "prefetch failed: generator 'cham' (chemeleon dng): could not download"
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"download": False}, "no checkpoint chemeleon_dng_alex_mp_20_v0.0.2.ckpt in"),
        ({"model_path": "csp"}, "is a csp checkpoint; set task: csp or another model"),
        ({"model_path": "garbage"}, "cannot load"),
    ],
)
def test_unusable_checkpoint_is_one_line_saying_what_to_do(tmp_path, checkpoints, changes, expected):
    (tmp_path / "garbage").write_text("not a checkpoint")
    resolved = {"csp": str(checkpoints["csp"]), "garbage": str(tmp_path / "garbage")}
    generator = {**settings(cache_dir=str(tmp_path / "empty")), "model_path": None}
    generator.update({k: resolved.get(v, v) for k, v in changes.items()})
    with pytest.raises(generators.GeneratorUnavailable) as caught:
        generators.sample(generator, "c", 0, str(tmp_path / "out.jsonl.gz"))
    message = str(caught.value)
    assert message.startswith("generator 'cham' (chemeleon dng): ") and expected in message
    assert "\n" not in message
    assert not (tmp_path / "out.jsonl.gz").exists()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"task": "csp"}, "formulas: needed for task csp"),
        ({"formulas": ["NaCl"]}, "formulas: only used by task csp"),
        ({"task": "csp", "formulas": ["Na0.5Cl0.5"]}, "'Na0.5Cl0.5' needs whole numbers of atoms"),
        ({"task": "csp", "formulas": ["NaQq"]}, "'NaQq' has unknown elements"),
        ({"task": "csp", "formulas": ["Na(("]}, "'Na((' cannot parse"),
        ({"cache_dir": "ckpts"}, "cache_dir: 'ckpts' is relative; allowed: an absolute directory"),
        ({"model_path": "/nowhere/x.ckpt"}, "model_path: '/nowhere/x.ckpt' is not a file"),
        ({"device": "gpu"}, "device: 'gpu' is not allowed; allowed: type string, auto, cpu, cuda or cuda:N"),
        ({"num_atoms": "alex-mp-20"}, "num_atoms: 'alex-mp-20' is not allowed; allowed: mp-20;"),
    ],
)
def test_config_problems_are_one_line_each(changes, expected):
    config = {"campaign": "c", "generators": [{"name": "cham", "backend": "chemeleon", "n_batches": 1}]}
    config["generators"][0].update(batch_size=2, **changes)
    with pytest.raises(ConfigError) as caught:
        validate_config(copy.deepcopy(config))
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("generators[0].") and expected in caught.value.problems[0]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, checkpoints):
    """Chemeleon DNG (local model_path) and CSP (pre-filled cache, offline) beside the baseline."""
    root = tmp_path_factory.mktemp("chemeleon_campaign")
    cache = root / "cache"
    (cache / "ckpts").mkdir(parents=True)
    (cache / "ckpts" / CSP_FILE).write_bytes(checkpoints["csp"].read_bytes())
    config = {
        "campaign": "cham",
        "generators": [
            {
                "name": "rss",
                "backend": "random",
                "n_batches": 1,
                "batch_size": 2,
                "chemical_systems": ["Na-Cl"],
                "min_atoms": 2,
                "max_atoms": 4,
            },
            {
                "name": "dng",
                "backend": "chemeleon",
                "n_batches": 1,
                "batch_size": 6,
                "num_atoms": [3, 4],
                "model_path": str(checkpoints["dng"]),
            },
            {
                "name": "csp",
                "backend": "chemeleon",
                "task": "csp",
                "n_batches": 2,
                "batch_size": 3,
                "formulas": ["NaCl", "Mg2O2"],
                "cache_dir": str(cache),
                "download": False,
                "device": "cpu",
            },
        ],
        # Random-weight cells are evaluated as given: relaxing them teaches nothing about Chemeleon.
        "relax": {"backend": "none"},
    }
    campaign = Campaign(root, config)
    campaign.snakemake()
    return campaign


@pytest.mark.workflow
def test_campaign_with_chemeleon_dng_csp_and_baseline(campaign):
    for generator, n_batches in (("dng", 1), ("csp", 2)):
        for batch in range(n_batches):
            sidecar = io.read_json(campaign.results / "samples" / generator / f"{batch:04d}.json")
            assert sidecar["backend"] == "chemeleon" and sidecar["stats"]["task"] == generator
            assert len(sidecar["stats"]["checkpoint_sha256"]) == 64
    table, _ = io.read_table(campaign.results / "metrics" / "structures.parquet")
    assert table.groupby("generator").size().to_dict() == {"csp": 6, "dng": 6, "rss": 2}
    chemeleon_rows = table[table["generator"] != "rss"]
    failed = chemeleon_rows[chemeleon_rows["status"] == "no_structure"]
    assert len(failed) > 0 and failed["reason"].notna().all(), "random weights give junk, kept as rows"
    csp = table[table["generator"] == "csp"].set_index("id")
    assert csp["target_formula"].tolist() == ["NaCl", "Mg2O2", "NaCl", "Mg2O2", "NaCl", "Mg2O2"]
    assert csp.loc[csp["evaluated"], "composition_match"].all()

    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv").set_index("generator")
    assert summary.loc["csp", "n_requested"] == 6 and summary.loc["dng", "n_requested"] == 6
    dng_sha = io.read_json(campaign.results / "samples" / "dng" / "0000.json")["stats"]["checkpoint_sha256"]
    assert summary.loc["dng", "model"] == f"tiny_dng {dng_sha[:12]}"
    assert summary.loc["csp", "model"].startswith("chemeleon_csp_alex_mp_20_v0.0.2 ")
    assert pd.isna(summary.loc["rss", "model"])  # the baseline has no model
    assert summary.loc["csp", "frac_composition_match"] == 1.0
    assert summary.loc["all", "frac_composition_match"] == 1.0
    for generator in ("dng", "rss"):
        assert summary.loc[generator, list(metrics.ADHERENCE_FLAGS)].isna().all()
    assert summary[["frac_in_target_chemsys", "frac_space_group_hit"]].isna().all().all()
    assert (
        "frac_composition_match" in io.read_json(campaign.results / "metrics" / "summary.json")["definitions"]
    )


@pytest.mark.workflow
def test_adding_chemeleon_batches_runs_only_the_new_ones(campaign):
    grown = copy.deepcopy(campaign.config)
    grown["generators"][2]["n_batches"] = 3
    assert campaign.planned_jobs_for(grown) == chunk_jobs(1)


@pytest.mark.workflow
def test_missing_checkpoint_stops_the_job_with_one_line(tmp_path):
    config = {
        "campaign": "nockpt",
        "generators": [
            {
                "name": "dng",
                "backend": "chemeleon",
                "n_batches": 1,
                "batch_size": 2,
                "cache_dir": str(tmp_path / "empty-cache"),
                "download": False,
            }
        ],
        "relax": {"backend": "none"},
    }
    result = Campaign(tmp_path, config).snakemake(check=False)
    assert result.returncode != 0
    assert (
        f"error: generator 'dng' (chemeleon dng): no checkpoint {DNG_FILE} in "
        f"{tmp_path / 'empty-cache' / 'ckpts'} "
        "(download: false); run `crystal-campaign prefetch --configfile <your config>` on a machine with "
        "internet, or set model_path to a Chemeleon checkpoint"
    ) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.workflow
def test_snakemake_prefetch_finds_the_cached_checkpoint_offline(campaign):
    campaign.snakemake("prefetch")
    cache = Path(campaign.config["generators"][2]["cache_dir"])
    assert io.read_json(campaign.results / "prefetch.json") == {
        "fetched": [f"generator csp: {cache / 'ckpts' / CSP_FILE} (already cached)"]
    }
    # one job per generator (each in its sampling jobs' environment under --sdm conda)
    manifests = {
        path.stem: io.read_json(path)["fetched"] for path in (campaign.results / "prefetch").iterdir()
    }
    assert manifests == {
        "rss": [],
        "dng": [],
        "csp": [f"generator csp: {cache / 'ckpts' / CSP_FILE} (already cached)"],
    }
