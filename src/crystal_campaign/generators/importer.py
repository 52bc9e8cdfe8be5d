"""Structures produced elsewhere (CIF, extxyz, POSCAR), split into batches of ``batch_size`` files.

A file that cannot be read, or holds no structure, becomes one failure row naming the file and
the reason; the other files of the batch are unaffected. Every structure read goes through the
same junk screen as the generative models' output (``generators.base.write_sample_batch``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from crystal_campaign.generators.base import BatchOutput, GeneratorBackend, Sample
from crystal_campaign.io import Progress, matching_files, read_structures

FORMATS = {".cif": "CIF", ".extxyz": "extxyz file", ".xyz": "extxyz file"}


def unreadable_reason(path: str, error: Exception) -> str:
    """One line saying the file is no readable structure, then what the parser said."""
    kind = FORMATS.get(Path(path).suffix.lower(), "structure file (CIF, extxyz, POSCAR)")
    said = " ".join(f"{type(error).__name__}: {error}".split())
    return f"unreadable file: not a complete {kind}, truncated or malformed ({said})"


def read_file_samples(path: str) -> list[Sample]:
    try:
        structures = read_structures(path)
    except Exception as error:  # any parser error is a per-file failure row, never a crashed batch
        return [Sample(None, unreadable_reason(path, error), path)]
    if not structures:
        return [Sample(None, "no structure in file", path)]
    return [Sample(structure, None, f"{path}#{frame}") for frame, structure in enumerate(structures)]


class ImportBackend(GeneratorBackend):
    settings_schema: ClassVar[dict] = {
        "required": ["paths"],
        "properties": {
            "batch_size": {"type": "integer", "minimum": 1, "default": 100},
            "paths": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1},
                "description": "files, directories or glob patterns of CIF, extxyz or POSCAR files",
            },
        },
    }
    versioned_packages = ("ase",)

    def config_problems(self, where: str, settings: dict) -> list[str]:
        return [
            f"{where}.paths: {pattern!r} matches no file; allowed: existing files, dirs or globs"
            for pattern in settings["paths"]
            if not matching_files([pattern])
        ]

    def target_systems(self, settings: dict) -> set[str]:
        systems = set()
        for path in matching_files(settings["paths"]):
            try:
                systems |= {s.composition.chemical_system for s in read_structures(path)}
            except Exception:  # an unreadable file becomes a failure row at sampling time
                continue
        return systems

    def n_batches(self, settings: dict) -> int:
        return -(-len(matching_files(settings["paths"])) // settings["batch_size"])

    def input_files(self, settings: dict, batch: int) -> list[str]:
        """The files of ``batch``; an arm of adaptive rounds may ask for more batches than the
        files fill, and cycles through them again (an import yields the same structures)."""
        size = settings["batch_size"]
        batch %= max(self.n_batches(settings), 1)
        return matching_files(settings["paths"])[batch * size : (batch + 1) * size]

    def sample_batch(self, settings: dict, batch: int, seed: int) -> BatchOutput:
        files = self.input_files(settings, batch)
        progress = Progress("read files", len(files))
        samples = []
        for path in files:
            samples += read_file_samples(path)
            progress.advance()
        return BatchOutput(samples, {"n_files": len(files)})


BACKEND = ImportBackend()
