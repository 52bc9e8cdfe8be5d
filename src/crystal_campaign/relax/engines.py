"""The relaxation engine registry: how a relaxer drives its potential, picked by ``relax.engine``.

Every engine relaxes the same structures with the same potential and settings into the same
per-structure result rows. Adding an engine: one module with an ``ENGINE`` (a ``RelaxEngine``),
one line here, its docs and its tests.
"""

from __future__ import annotations

import importlib

from crystal_campaign.relax.base import Potentials, RelaxEngine

ENGINE_MODULES = {
    "torch-sim": "crystal_campaign.relax.torch_sim_engine",
    "batched-ase": "crystal_campaign.relax.batched",
    "per-structure": "crystal_campaign.relax.per_structure",
}
ENGINE_NAMES = ["auto", *ENGINE_MODULES]


def engine_name(requested: str, potentials: Potentials, device: str) -> str:
    """``auto``, as measured (benchmarks/README.md): on a GPU, torch-sim wherever it wraps the
    potential; on a CPU, one structure at a time for such a potential (a foundation-size MACE is
    slower per atom in large batches on a CPU); batched ASE for the others (CHGNet)."""
    if requested != "auto":
        return requested
    if potentials.torch_sim_model is None:
        return "batched-ase"
    return "torch-sim" if device.startswith("cuda") else "per-structure"


def engine(name: str) -> RelaxEngine:
    if name not in ENGINE_MODULES:
        raise ValueError(f"unknown relax engine {name!r}; allowed: {', '.join(ENGINE_NAMES)}")
    return importlib.import_module(ENGINE_MODULES[name]).ENGINE
