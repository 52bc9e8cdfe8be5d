"""The junk screen every source goes through: a structure, or a reason it is junk.

Imports only numpy and pymatgen, so runners inside a backend's own environment (MatterGen)
can use it too. Random or undertrained weights produce NaN coordinates, mask-token species
(atomic number 0, or one past the model's last element: 101 for MatterGen), enormous or
degenerate cells and empty structures; imported files bring unknown elements (``Xx``) and
absurd cells. Each becomes a reason, never an exception, so the rest of the batch completes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymatgen.core import DummySpecies, Lattice, Structure

# Real crystals from these generators have lattice vectors of a few to a few tens of Å.
MAX_LATTICE_LENGTH = 100.0
MIN_VOLUME_PER_ATOM = 0.1


def junk_reason(
    atomic_numbers: Sequence[int],
    lattice_matrix: Sequence[Sequence[float]],
    frac_coords: Sequence,
    max_atomic_number: int = 118,
) -> str | None:
    """Why this raw model output is not a usable structure, or ``None`` if it is one.

    ``max_atomic_number`` is the model's last element: any species beyond it is a token.
    """
    numbers = np.asarray(atomic_numbers).reshape(-1)
    if numbers.size == 0:
        return "empty structure: no atoms"
    if not ((numbers >= 1) & (numbers <= max_atomic_number)).all():
        bad = sorted({int(n) for n in numbers if not 1 <= n <= max_atomic_number})
        return f"invalid species: atomic numbers {bad} (mask or padding token)"
    return geometry_reason(lattice_matrix, frac_coords, numbers.size)


def geometry_reason(
    lattice_matrix: Sequence[Sequence[float]], frac_coords: Sequence, n_sites: int
) -> str | None:
    """Why this cell and these fractional coordinates are no crystal (non-finite, huge, degenerate)."""
    lattice = np.asarray(lattice_matrix, dtype=float)
    coords = np.asarray(frac_coords, dtype=float)
    if lattice.shape != (3, 3) or not np.isfinite(lattice).all():
        return "non-finite or malformed lattice"
    if coords.shape != (n_sites, 3) or not np.isfinite(coords).all():
        return "non-finite or malformed coordinates"
    lengths = np.linalg.norm(lattice, axis=1)
    if lengths.max() > MAX_LATTICE_LENGTH:
        return f"cell too large: lattice vector of {lengths.max():.0f} Å > {MAX_LATTICE_LENGTH:.0f} Å"
    volume = abs(np.linalg.det(lattice))
    if volume / n_sites < MIN_VOLUME_PER_ATOM:
        return f"degenerate cell: {volume:.3g} Å³ for {n_sites} atoms"
    return None


def structure_junk_reason(structure: Structure) -> str | None:
    """The same screen for a pymatgen structure from any source (ordered or partially occupied)."""
    if len(structure) == 0:
        return "empty structure: no atoms"
    unknown = sorted({str(sp.symbol) for sp in structure.composition if isinstance(sp, DummySpecies)})
    if unknown:
        return f"unknown element(s) {', '.join(unknown)}: not in the periodic table"
    return geometry_reason(structure.lattice.matrix, structure.frac_coords, len(structure))


def to_structure(
    atomic_numbers: Sequence[int],
    lattice_matrix: Sequence[Sequence[float]],
    frac_coords: Sequence,
    max_atomic_number: int = 118,
) -> tuple[Structure | None, str | None]:
    """(structure, None) for usable output, (None, reason) for junk."""
    reason = junk_reason(atomic_numbers, lattice_matrix, frac_coords, max_atomic_number)
    if reason is not None:
        return None, reason
    species = [int(n) for n in np.asarray(atomic_numbers).reshape(-1)]
    return Structure(Lattice(lattice_matrix), species, np.asarray(frac_coords, dtype=float) % 1.0), None
