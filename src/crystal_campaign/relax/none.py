"""``backend: none``: structures are evaluated as given (e.g. DFT-relaxed imports)."""

from __future__ import annotations

from pymatgen.core import Structure

from crystal_campaign.relax.base import RelaxerBackend, RelaxResult


class NoRelaxer:
    def settings(self) -> dict:
        return {"backend": "none"}

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        return [RelaxResult("not_relaxed", structure=s) for s in structures]

    single_points = relax


class NoRelaxBackend(RelaxerBackend):
    def relaxer(self, settings: dict) -> NoRelaxer:
        return NoRelaxer()


BACKEND = NoRelaxBackend()
