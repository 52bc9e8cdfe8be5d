"""MACE relaxation through the real loading paths: every engine against the per-structure loop,
in-flight batching, memory splits, explosions."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from conftest import Campaign, rock_salt
from crystal_campaign import io, relax
from crystal_campaign.relax.base import RmsdQueue
from crystal_campaign.relax.batched import pack_by_atom_count

pytest.importorskip("mace")
pytest.importorskip("chgnet")  # labels the tiny model's training cells

from tiny_mace import train_tiny_mace

SETTINGS = {"backend": "mace", "dtype": "float64", "fmax": 0.05, "max_steps": 150, "device": "cpu"}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return train_tiny_mace(tmp_path_factory.mktemp("tiny_mace"))


def rattled(cation: str, anion: str, a: float, supercell: tuple[int, int, int], seed: int) -> Structure:
    structure = rock_salt(a, (cation, anion)).get_primitive_structure() * supercell
    for index, shift in enumerate(np.random.default_rng(seed).normal(0, 0.08, (len(structure), 3))):
        structure.translate_sites([index], shift, frac_coords=False)
    return structure


def sheared(structure: Structure) -> Structure:
    """The structure in a triclinic cell: unequal strains and shears that the cell filter must undo."""
    deformation = np.eye(3) + np.array([[0.04, 0.03, 0.0], [0.03, -0.02, 0.02], [0.0, 0.02, 0.05]])
    return Structure(
        Lattice(structure.lattice.matrix @ deformation), structure.species, structure.frac_coords
    )


def known_crystals() -> list[Structure]:
    """Rattled and strained rock salts of 2 to 8 atoms, one of them sheared into a triclinic cell."""
    return [
        rattled("Na", "Cl", 5.9, (2, 1, 1), 0),
        rattled("Mg", "O", 4.3, (2, 2, 1), 1),
        rattled("K", "Cl", 6.1, (2, 1, 1), 2),
        rattled("Na", "Cl", 5.5, (1, 1, 1), 3),
        rattled("Mg", "O", 4.1, (2, 2, 1), 4),
        rattled("K", "Cl", 6.5, (1, 1, 2), 5),
        sheared(rattled("Na", "Cl", 5.7, (2, 1, 1), 6)),
    ]


def mace_relaxer(model: Path, **changes):
    return relax.get_relaxer({**SETTINGS, "model_path": str(model), **changes})


class ForwardCounter:
    """Counts forward calls of a torch model and the structures in each, through a forward hook."""

    def __init__(
        self, model: torch.nn.Module, fail_above_atoms: int | None = None, fail_from_call: int = 0
    ) -> None:
        self.graphs_per_call: list[int] = []
        self.fail_above_atoms = fail_above_atoms
        self.fail_from_call = fail_from_call
        self.handle = model.register_forward_pre_hook(self.before_forward)

    def before_forward(self, module, args) -> None:
        (data,) = args[:1]
        too_big = self.fail_above_atoms is not None and len(data["positions"]) > self.fail_above_atoms
        if too_big and len(self.graphs_per_call) >= self.fail_from_call:
            raise torch.OutOfMemoryError("CUDA out of memory (forced by the test's memory limit)")
        self.graphs_per_call.append(len(data["ptr"]) - 1)


BATCHED_ENGINES = ["batched-ase", "torch-sim"]


@pytest.fixture(scope="module")
def per_structure(tiny_model):
    return mace_relaxer(tiny_model, engine="per-structure").relax(known_crystals())


@pytest.fixture(scope="module", params=BATCHED_ENGINES)
def whole(request, tiny_model):
    """(engine, results) of a batched engine's relaxation in one batch (the default budget holds all)."""
    relaxer = mace_relaxer(tiny_model, engine=request.param)
    results = relaxer.relax(known_crystals())
    assert relaxer.last_stats.sub_batches == 1 and relaxer.last_stats.splits == 0
    assert relaxer.settings()["engine"] == request.param
    return request.param, results


@pytest.fixture(scope="module")
def batched_whole(tiny_model):
    return mace_relaxer(tiny_model, engine="batched-ase").relax(known_crystals())


def assert_same_relaxations(results, expected) -> None:
    """Same statuses and steps; energies and positions equal up to float64 summation order."""
    assert len(results) == len(expected)
    for a, b in zip(results, expected, strict=True):
        assert (a.status, a.n_steps) == (b.status, b.n_steps)
        assert a.energy == pytest.approx(b.energy, abs=1e-9)
        assert np.allclose(a.structure.cart_coords, b.structure.cart_coords, atol=1e-7)


# The fidelity every engine keeps against the per-structure ASE loop (same potential, float64, fmax)
FIDELITY_MATCHER = StructureMatcher(ltol=0.05, stol=0.05, angle_tol=1)


def test_every_engine_relaxes_as_the_per_structure_loop_does(per_structure, whole):
    _, results = whole
    assert sum(r.n_steps > 10 for r in per_structure) >= 3  # real relaxations, not stops at step 0
    for alone, together in zip(per_structure, results, strict=True):
        assert (together.status, together.converged) == (alone.status, alone.converged)
        assert abs(together.energy_per_atom - alone.energy_per_atom) <= 1e-3
        assert FIDELITY_MATCHER.fit(together.structure, alone.structure)
        assert together.max_force <= SETTINGS["fmax"]
        # both run ASE's FIRE and Frechet cell filter step for step: the same trajectory
        assert together.n_steps == alone.n_steps
        assert together.energy_per_atom == pytest.approx(alone.energy_per_atom, abs=1e-9)
        assert together.rmsd == pytest.approx(alone.rmsd, abs=1e-6)


def test_one_model_call_per_optimizer_step_per_sub_batch(tiny_model):
    structures = known_crystals()
    sizes = [len(s) for s in structures]
    relaxer = mace_relaxer(
        tiny_model, engine="batched-ase", memory_budget_mb=40, memory_per_atom_mb=2.0
    )  # <= 20 atoms per call
    groups = pack_by_atom_count(sizes, 20)
    assert len(groups) >= 2
    counter = ForwardCounter(relaxer.potential.model)
    results = relaxer.relax(structures)
    counter.handle.remove()
    # each sub-batch: one call for the start and one per step of its longest relaxation
    expected = [max(results[i].n_steps for i in group) + 1 for group in groups]
    assert len(counter.graphs_per_call) == sum(expected) == relaxer.last_stats.model_calls
    assert relaxer.last_stats.sub_batches == len(groups)
    # finished structures leave the call; the first call of each sub-batch holds all of it
    first = 0
    for group, n_calls in zip(groups, expected, strict=True):
        calls = counter.graphs_per_call[first : first + n_calls]
        assert calls[0] == len(group) and calls == sorted(calls, reverse=True)
        first += n_calls


def test_tiny_memory_budget_splits_into_sub_batches_with_identical_results(tiny_model, batched_whole):
    tiny = mace_relaxer(tiny_model, engine="batched-ase", memory_budget_mb=8, memory_per_atom_mb=2.0)
    tiny_results = tiny.relax(known_crystals())
    assert tiny.last_stats.sub_batches >= 3
    assert_same_relaxations(tiny_results, batched_whole)


def test_out_of_memory_batch_is_shrunk_and_retried_never_lost(tiny_model, whole):
    engine, undisturbed = whole
    relaxer = mace_relaxer(tiny_model, engine=engine)
    # out of memory in any call of more than 8 atoms once 5 calls have run: mid-relaxation first
    counter = ForwardCounter(relaxer.potential.model, fail_above_atoms=8, fail_from_call=5)
    results = relaxer.relax(known_crystals())
    counter.handle.remove()
    assert relaxer.last_stats.splits >= 2
    assert counter.graphs_per_call[:5] == [7] * 5  # the whole batch: first evaluation and 4 steps
    # torch-sim goes on from where each structure was; batched ASE starts a split sub-batch again
    assert_same_relaxations(results, undisturbed)
    # a structure too large even alone is a failed row with the reason, the others are kept
    relaxer = mace_relaxer(tiny_model, engine=engine)
    counter = ForwardCounter(relaxer.potential.model, fail_above_atoms=7)
    results = relaxer.relax(known_crystals())
    counter.handle.remove()
    too_big = [r for r, s in zip(results, known_crystals(), strict=True) if len(s) == 8]
    assert len(too_big) == 2
    assert all(
        r.status == "failed" and r.reason.startswith("out of memory: OutOfMemoryError") for r in too_big
    )
    assert sum(r.status == "converged" for r in results) == len(results) - 2


@pytest.mark.parametrize("engine", BATCHED_ENGINES)
def test_exploding_structures_are_stopped_without_stopping_the_batch(tiny_model, engine):
    on_one_site = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0, 0, 0]])
    squeezed = rock_salt(4.6).get_primitive_structure()  # expands by more than the allowed factor
    good = known_crystals()[:3]
    relaxer = mace_relaxer(tiny_model, engine=engine, max_volume_ratio=1.3)
    nan, exploded, *kept = relaxer.relax([on_one_site, squeezed, *good])
    assert (nan.status, nan.reason) == ("failed", "non-finite energy or forces")
    assert exploded.status == "failed" and exploded.reason.startswith("exploded: volume changed by a factor")
    assert exploded.n_steps > 0 and exploded.volume_ratio > 1.3
    assert_same_relaxations(kept, mace_relaxer(tiny_model, engine=engine, max_volume_ratio=1.3).relax(good))


def test_in_flight_batching_starts_a_waiting_structure_before_the_slowest_finishes(tiny_model):
    near = rattled("Na", "Cl", 5.62, (2, 1, 1), 0)  # near equilibrium: a few steps
    far = sheared(rattled("Na", "Cl", 6.3, (2, 1, 1), 1))  # strained and sheared: many more
    waiting = rattled("K", "Cl", 6.2, (2, 1, 1), 2)
    relaxer = mace_relaxer(tiny_model, engine="torch-sim", memory_budget_mb=16, memory_per_atom_mb=2.0)
    counter = ForwardCounter(relaxer.potential.model)
    results = relaxer.relax([near, far, waiting])  # 8 atoms in flight: two of the three
    counter.handle.remove()
    stats = relaxer.last_stats
    assert [r.status for r in results] == ["converged"] * 3
    assert results[0].n_steps < results[1].n_steps
    # the near one leaves, the waiting one takes its place while the far one still relaxes
    assert stats.entered == {0: 0, 1: 0, 2: stats.left[0]}
    assert stats.left[0] < stats.left[1] and stats.entered[2] < stats.left[1]
    # every structure's own step count: steps since it entered
    for index, result in enumerate(results):
        assert result.n_steps == stats.left[index] - stats.entered[index]
    assert max(counter.graphs_per_call[1:]) == 2  # never more than two in a model call


def test_batched_frechet_cell_forces_equal_ase_directional_derivatives():
    from scipy.linalg import expm_frechet

    from crystal_campaign.relax.torch_sim_engine import frechet_cell_forces

    rng = np.random.default_rng(0)
    log_deformation = rng.normal(0, 0.1, (5, 3, 3))
    gradient = rng.normal(0, 1.0, (5, 3, 3))
    batched = frechet_cell_forces(torch.tensor(log_deformation), torch.tensor(gradient)).numpy()
    for x, g, forces in zip(log_deformation, gradient, batched, strict=True):
        # ASE's FrechetCellFilter: one directional derivative per cell component
        expected = np.zeros((3, 3))
        for m in range(3):
            for n in range(3):
                direction = np.zeros((3, 3))
                direction[m, n] = 1.0
                expected[m, n] = np.sum(expm_frechet(x, direction, compute_expm=False) * g)
        assert np.allclose(forces, expected, atol=1e-12)


def random_search_structures(tmp_path: Path) -> list[Structure]:
    from crystal_campaign import generators

    settings = {
        "backend": "random",
        "name": "rs",
        "batch_size": 6,
        "chemical_systems": ["Na-Cl"],
        "min_atoms": 4,
        "max_atoms": 8,
        "charge_balanced": True,
        "max_attempts": 20,
        "volume_factor": 1.1,
    }
    path = tmp_path / "sample.jsonl.gz"
    generators.sample(settings, "fidelity", 0, str(path))
    return [r["structure"] for r in io.read_records(str(path)) if r["structure"] is not None]


def test_random_search_relaxations_and_rmsd_off_the_critical_path(tiny_model, tmp_path):
    """Far from equilibrium, where FIRE trajectories may part: the share of matching structures
    and the |dE| distribution; and RMSDs measured in worker processes equal those measured inline."""
    structures = random_search_structures(tmp_path)
    assert len(structures) >= 4
    settings = {"max_steps": 40, "fmax": 0.1}
    alone = mace_relaxer(tiny_model, engine="per-structure", **settings).relax(structures)
    in_flight = mace_relaxer(tiny_model, engine="torch-sim", **settings).relax(structures)
    pairs = [(a, b) for a, b in zip(alone, in_flight, strict=True) if a.evaluated and b.evaluated]
    differences = np.array([abs(a.energy_per_atom - b.energy_per_atom) for a, b in pairs])
    matching = np.mean([FIDELITY_MATCHER.fit(a.structure, b.structure) for a, b in pairs])
    print(
        f"random search: |dE| median {np.median(differences):.2e}, max {differences.max():.2e}; "
        f"matching {matching:.0%}"
    )
    assert matching >= 0.75 and np.median(differences) <= 1e-3
    relaxed = [r.structure for r in in_flight if r.evaluated]
    queue = RmsdQueue(structures, workers=2)
    for index, result in enumerate(in_flight):
        queue.submit(index, result)
    assert len(queue.pending) == len(relaxed)
    copies = [dataclasses.replace(r, rmsd=math.nan) for r in in_flight]
    queue.fill(copies)
    for initial, result, copy in zip(structures, in_flight, copies, strict=True):
        if result.evaluated:
            measured = relax.rmsd_angstrom(initial, result.structure)
            assert copy.rmsd == pytest.approx(measured, abs=1e-12) and result.rmsd == measured


def cache_name(url: str) -> str:
    """The file name mace_mp gives a downloaded model in its cache: the URL's name, alphanumerics and _."""
    return "".join(c for c in url.rsplit("/", 1)[-1] if c.isalnum() or c == "_")


def test_foundation_model_by_name_loads_from_mace_cache_offline(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = {**SETTINGS, "model": "small"}
    with pytest.raises(RuntimeError, match=r"MACE model 'small' is not in the cache .*relax.model_path"):
        relax.prefetch(settings)
    cached = prefill_cache(tmp_path, tiny_model, "small")
    assert relax.prefetch(settings) == [str(cached)]
    relaxer = relax.get_relaxer(settings)
    recorded = relaxer.settings()
    assert recorded["model"] == "small" and recorded["checkpoint"] == cached.name
    assert recorded["checkpoint_sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest()
    (result,) = relaxer.relax(known_crystals()[:1])
    assert result.status == "converged" and math.isfinite(result.energy)
    assert relax.prefetch({**settings, "model_path": str(tiny_model)}) == []


def prefill_cache(cache_home: Path, model: Path, name: str) -> Path:
    """Put ``model`` where mace_mp looks for the named foundation model under $XDG_CACHE_HOME."""
    from mace.calculators.foundations_models import mace_mp_urls

    cached = cache_home / "mace" / cache_name(mace_mp_urls[name])
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, cached)
    return cached


@pytest.mark.workflow
def test_campaign_relaxes_with_mace_by_name_and_by_file(tiny_model, tmp_path, monkeypatch):
    crystals = tmp_path / "campaign" / "crystals"
    crystals.mkdir(parents=True)
    for index, structure in enumerate(known_crystals()[:4]):
        structure.to(filename=str(crystals / f"crystal_{index}.cif"))
    cached = prefill_cache(tmp_path / "cache", tiny_model, "small")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # snakemake and its jobs inherit it
    config = {
        "campaign": "mace",
        "generators": [{"name": "known", "backend": "import", "paths": ["crystals"], "batch_size": 4}],
        "relax": {**SETTINGS, "model": "small", "memory_budget_mb": 24, "memory_per_atom_mb": 2.0},
    }
    campaign = Campaign(tmp_path / "campaign", config)
    campaign.snakemake("prefetch")
    assert io.read_json(campaign.results / "prefetch.json")["fetched"] == [f"relax: {cached}"]
    campaign.snakemake()

    relaxed = campaign.results / "relaxed" / "known" / "0000.jsonl.gz"
    recorded = io.read_json(io.sidecar_path(relaxed))["relaxer"]
    sha256 = hashlib.sha256(cached.read_bytes()).hexdigest()
    assert (recorded["backend"], recorded["model"], recorded["checkpoint_sha256"], recorded["engine"]) == (
        "mace",
        "small",
        sha256,
        "per-structure",  # auto on a CPU, for a potential torch-sim drives (on a GPU: torch-sim)
    )
    by_name = io.read_records(str(relaxed))
    assert [r["status"] for r in by_name] == ["converged"] * 4
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    assert (summary["relaxer"] == f"mace small {sha256[:12]}").all()
    table, used = io.read_table(campaign.results / "metrics" / "structures.parquet")
    assert used["relax"][0]["checkpoint_sha256"] == sha256 and (table["status"] == "converged").all()

    # the same file as a local model, through the other engines: the same answers
    for engine in ("torch-sim", "batched-ase"):
        by_file = Campaign(
            tmp_path / engine,
            {**config, "relax": {**config["relax"], "model_path": str(tiny_model), "engine": engine}},
        )
        shutil.copytree(crystals, by_file.root / "crystals")
        by_file.snakemake(str(relaxed.parent.relative_to(campaign.root) / "chunks" / "0000-0000.json"))
        file_records = io.read_records(str(by_file.root / relaxed.relative_to(campaign.root)))
        for a, b in zip(by_name, file_records, strict=True):
            assert b["status"] == "converged" and b["n_steps"] == a["n_steps"]
            assert b["energy_per_atom"] == pytest.approx(a["energy_per_atom"], abs=1e-9)
        recorded = io.read_json(io.sidecar_path(by_file.root / relaxed.relative_to(campaign.root)))["relaxer"]
        assert (recorded["model"], recorded["checkpoint_sha256"], recorded["engine"]) == (
            str(tiny_model),
            sha256,
            engine,
        )
