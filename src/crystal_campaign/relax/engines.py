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


def engine_name(requested: str, potentials: Potentials) -> str:
    """``auto``: torch-sim wherever it wraps the potential, on a GPU and on a CPU alike (measured
    faster than batched ASE on both, benchmarks/README.md), else batched ASE."""
    if requested != "auto":
        return requested
    return "torch-sim" if potentials.torch_sim_model is not None else "batched-ase"


def engine(name: str) -> RelaxEngine:
    if name not in ENGINE_MODULES:
        raise ValueError(f"unknown relax engine {name!r}; allowed: {', '.join(ENGINE_NAMES)}")
    return importlib.import_module(ENGINE_MODULES[name]).ENGINE
