"""Novelty references: load the configured sources into one snapshot, and check structures against it.

Sources: ``embedded`` (crystal_campaign.known_crystals, built offline by this project), an extxyz
file, a directory of CIF files, or a CSV with a ``cif`` column (as MP-20 / Alex-MP-20 ship).
The snapshot is one batch-format file; its SHA-256 identifies the reference in every table.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import multiprocessing
import pickle
import sys
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_campaign import io
from crystal_campaign.generators.importer import read_structures
from crystal_campaign.matching import (
    MatchCounter,
    Reduced,
    ReducedPool,
    build_matcher,
    matcher_options,
    matcher_settings,
    read_reduced_batch,
    reduce_structure,
    settings_key,
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


def _reduce_dicts(matching: dict, structures: list[dict]) -> list[Reduced]:
    matcher = build_matcher(matching)
    return [reduce_structure(matcher, Structure.from_dict(d)) for d in structures]


def reduced_reference(reference_path: str, matching: dict, processes: int = 1) -> dict:
    """Every reference structure reduced once for this matcher (the expensive part of matching),
    with its labels and the key (snapshot SHA-256, matcher settings) it was made for."""
    with gzip.open(reference_path, "rt") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    structures = [r["structure"] for r in records]
    chunks = [structures[i : i + 500] for i in range(0, len(structures), 500)]
    work = functools.partial(_reduce_dicts, matching)
    if processes > 1:
        # fork: a spawned worker would re-run the unguarded Snakemake script that called us
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            reduced = [r for chunk in pool.imap(work, chunks) for r in chunk]
    else:
        reduced = [r for chunk in map(work, chunks) for r in chunk]
    matcher = build_matcher(matching)
    return {
        "key": reduced_key(io.file_sha256(reference_path), matcher),
        "labels": [r["id"] for r in records],
        "reduced": reduced,
    }


def reduce_reference(reference_path: str, output_path: str, matching: dict, processes: int = 1) -> None:
    """Write ``reduced_reference`` as a pickle; readers refuse one made for another snapshot or matcher."""
    payload = reduced_reference(reference_path, matching, processes)
    with io.atomic_path(output_path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)


def load_reduced(path: str | Path) -> dict:
    with open(path, "rb") as handle:
        return pickle.load(handle)


def reduced_key(reference_sha256: str, matcher: StructureMatcher) -> dict:
    return {"reference_sha256": reference_sha256, "matcher": matcher_settings(matcher)}


def cached_reduced_reference(reference_path: str, matching: dict, cache_dir: str, processes: int = 1) -> Path:
    """Path of the reduced reference in ``cache_dir``, named by snapshot SHA-256 and matcher settings;
    built only when missing."""
    sha = io.file_sha256(reference_path)
    path = Path(cache_dir) / f"reduced-{sha[:16]}-{settings_key(build_matcher(matching))}.pkl"
    if not path.exists():
        reduce_reference(reference_path, str(path), matching, processes)
    return path


class ReferenceIndex:
    """Reduced reference structures bucketed once; finds the first one a structure matches."""

    def __init__(self, reference_path: str, counter: MatchCounter, reduced: dict | None = None) -> None:
        """``reduced``: the snapshot's ``reduced_reference`` (or ``load_reduced``) for this matcher;
        computed here when not given."""
        self.counter = counter
        payload = reduced or reduced_reference(reference_path, matcher_options(counter.matcher))
        if payload["key"] != reduced_key(io.file_sha256(reference_path), counter.matcher):
            raise ValueError("the reduced reference was made for another reference snapshot or matcher")
        self.labels: list[str] = payload["labels"]
        self.pool = ReducedPool(payload["reduced"], counter.matcher.ltol)

    def first_match(self, structure: Structure) -> str | None:
        """Label of the first reference structure matching ``structure``, or None if it is novel."""
        return self.first_match_reduced(reduce_structure(self.counter.matcher, structure))

    def first_match_reduced(self, reduced: Reduced) -> str | None:
        hit = self.pool.first_match(reduced, self.counter)
        return None if hit is None else self.labels[hit]


def run_novelty_job(
    relaxed_path: str,
    reference_path: str,
    output_path: str,
    matching: dict,
    reduced_path: str | None = None,
    batch_reduced_path: str | None = None,
) -> None:
    """Per structure: novel unless a reference structure matches it. ``reduced_path``: the reduced
    reference (``reduce_reference``); ``batch_reduced_path``: the batch reduced by
    ``matching.run_reduce_job``; each is reduced here when not given."""
    counter = MatchCounter(build_matcher(matching))
    reduced = None if reduced_path is None else load_reduced(reduced_path)
    index = ReferenceIndex(reference_path, counter, reduced)
    if batch_reduced_path is None:
        records = [
            {
                **r,
                "reduced": None
                if r["structure"] is None
                else reduce_structure(counter.matcher, r["structure"]),
            }
            for r in io.read_records(relaxed_path)
        ]
    else:
        records = read_reduced_batch(batch_reduced_path, counter.matcher)
    rows = []
    for record in records:
        evaluated = record["reduced"] is not None
        match = index.first_match_reduced(record["reduced"]) if evaluated else None
        rows.append({"id": record["id"], "novel": evaluated and match is None, "reference_match": match})
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
