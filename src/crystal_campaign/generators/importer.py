"""Structures produced elsewhere (CIF, extxyz, POSCAR), split into batches of ``batch_size`` files.

A file that cannot be read, or holds no structure, becomes one failure row naming the file and
the reason; the other files of the batch are unaffected.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystal_campaign.config import matching_files
from crystal_campaign.generators.base import BatchOutput, Sample

VERSIONED_PACKAGES = ("ase",)
EXTXYZ_SUFFIXES = {".extxyz", ".xyz"}


def n_batches(settings: dict) -> int:
    return -(-len(matching_files(settings["paths"])) // settings["batch_size"])


def batch_files(settings: dict, batch: int) -> list[str]:
    size = settings["batch_size"]
    return matching_files(settings["paths"])[batch * size : (batch + 1) * size]


def read_structures(path: str) -> list[Structure]:
    """Every structure in a file; raises on an unreadable file."""
    suffix = Path(path).suffix.lower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if suffix == ".cif":
            from pymatgen.io.cif import CifParser

            return CifParser(path).parse_structures(primitive=False, on_error="raise")
        if suffix in EXTXYZ_SUFFIXES:
            from ase.io import read

            return [AseAtomsAdaptor.get_structure(atoms) for atoms in read(path, index=":", format="extxyz")]
        return [Structure.from_file(path)]


def read_file_samples(path: str) -> list[Sample]:
    try:
        structures = read_structures(path)
    except Exception as error:  # any parser error is a per-file failure row, never a crashed batch
        return [Sample(None, f"unreadable file: {type(error).__name__}: {error}".strip(), path)]
    if not structures:
        return [Sample(None, "no structure in file", path)]
    return [Sample(structure, None, f"{path}#{frame}") for frame, structure in enumerate(structures)]


class ImportBackend:
    def sample_batch(self, settings: dict, batch: int, seed: int) -> BatchOutput:
        files = batch_files(settings, batch)
        samples = [sample for path in files for sample in read_file_samples(path)]
        return BatchOutput(samples, {"n_files": len(files)})


BACKEND = ImportBackend()
