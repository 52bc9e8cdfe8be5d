"""Novelty references: load the configured sources into one snapshot, and check structures against it.

Sources: ``embedded`` (crystal_campaign.known_crystals, built offline by this project), an extxyz
file, a directory of CIF files, or a CSV with a ``cif`` column (as MP-20 / Alex-MP-20 ship).
The snapshot is one batch-format file; its SHA-256 identifies the reference in every table.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from pymatgen.core import Structure

from crystal_campaign import io
from crystal_campaign.generators.importer import read_structures
from crystal_campaign.matching import (
    MatchCounter,
    Reduced,
    build_matcher,
    matcher_settings,
    matches_any,
    reduce_structure,
)


def _embedded() -> Iterable[tuple[str, Structure]]:
    from crystal_campaign.known_crystals import known_crystals

    return ((f"embedded:{c.label}", c.structure) for c in known_crystals())


def _csv(path: Path) -> Iterable[tuple[str, Structure]]:
    csv.field_size_limit(sys.maxsize)  # CIF strings exceed the default field size
    with path.open(newline="") as handle:
        for row_number, row in enumerate(csv.DictReader(handle)):
            label = row.get("material_id") or str(row_number)
            yield f"{path.name}:{label}", Structure.from_str(row["cif"], fmt="cif")


def _files(paths: Iterable[Path]) -> Iterable[tuple[str, Structure]]:
    for path in paths:
        for frame, structure in enumerate(read_structures(str(path))):
            yield f"{path.name}#{frame}", structure


def source_format(source: dict) -> str:
    if source.get("format", "auto") != "auto":
        return source["format"]
    path = Path(source["path"])
    if path.is_dir():
        return "cif_dir"
    return "csv" if path.suffix.lower() == ".csv" else "extxyz"


def load_source(source: str | dict) -> Iterable[tuple[str, Structure]]:
    """(label, structure) pairs of one configured source."""
    if source == "embedded":
        return _embedded()
    path = Path(source["path"])
    fmt = source_format(source)
    if fmt == "csv":
        return _csv(path)
    if fmt == "cif_dir":
        return _files(sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif"))
    return _files([path])


def prefetch(settings: dict) -> list[str]:
    """Fill the on-disk cache of every remote source; local files and embedded crystals need none."""
    return []


def build_reference(sources: list, path: str) -> None:
    """Write the snapshot of all sources and a sidecar naming them, with the snapshot's SHA-256."""
    records, counts = [], {}
    for source in sources:
        name = source if isinstance(source, str) else source["path"]
        before = len(records)
        for label, structure in load_source(source):
            records.append(io.structure_record(label, len(records), structure, None, source=name))
        counts[name] = len(records) - before
    io.write_records(path, records)
    io.write_json(
        io.sidecar_path(path),
        {
            "sources": sources,
            "n_structures": counts,
            "sha256": io.file_sha256(path),
        },
    )


class ReferenceIndex:
    """Reference structures bucketed by matcher key, reduced lazily for the buckets asked about."""

    def __init__(self, path: str, counter: MatchCounter) -> None:
        self.counter = counter
        self._raw: dict[str, list[tuple[str, Structure]]] = defaultdict(list)
        for record in io.read_records(path):
            self._raw[record["structure"].composition.reduced_formula].append(
                (record["id"], record["structure"])
            )
        self._reduced: dict[str, list[tuple[str, Reduced]]] = {}

    def _bucket(self, formula: str) -> list[tuple[str, Reduced]]:
        if formula not in self._reduced:
            self._reduced[formula] = [
                (label, reduce_structure(self.counter.matcher, s)) for label, s in self._raw.get(formula, [])
            ]
        return self._reduced[formula]

    def first_match(self, structure: Structure) -> str | None:
        """Label of the first reference structure matching ``structure``, or None if it is novel."""
        bucket = self._bucket(structure.composition.reduced_formula)
        candidate = reduce_structure(self.counter.matcher, structure)
        hit = matches_any(candidate, [reduced for _, reduced in bucket], self.counter)
        return None if hit is None else bucket[hit][0]


def run_novelty_job(relaxed_path: str, reference_path: str, output_path: str, matching: dict) -> None:
    """Per structure: novel unless a same-formula reference structure matches it."""
    counter = MatchCounter(build_matcher(matching))
    index = ReferenceIndex(reference_path, counter)
    rows = []
    for record in io.read_records(relaxed_path):
        structure = record["structure"]
        match = None if structure is None else index.first_match(structure)
        rows.append(
            {"id": record["id"], "novel": structure is not None and match is None, "reference_match": match}
        )
    table = pd.DataFrame(rows, columns=["id", "novel", "reference_match"])
    io.write_table(
        output_path,
        table,
        {
            "matcher": matcher_settings(counter.matcher),
            "reference": io.read_json(io.sidecar_path(reference_path)),
            "fit_calls": counter.calls,
        },
    )
