"""Novelty references: load the configured sources into one snapshot, and check structures against it.

Sources: ``embedded`` (crystal_campaign.known_crystals, built offline by this project), an extxyz
file, a directory of CIF files, a CSV with a ``cif`` column (as MP-20 / Alex-MP-20 ship), the
unique structures of an earlier campaign, and the Materials Project (``{source: mp}``).
The local sources form one batch-format snapshot whose SHA-256 identifies them in every table.
The Materials Project is too large to snapshot: novelty jobs read the structures of each
structure's chemical system from the on-disk cache of crystal_campaign.materials_project
(fetching what is missing when allowed), at the database version the snapshot's sidecar pins.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import multiprocessing
import os
import pickle
import struct
import sys
from collections import defaultdict
from collections.abc import Hashable, Iterable
from pathlib import Path

import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_campaign import io, materials_project
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
    reduced_of,
    settings_key,
)

# The last 8 bytes of a reduced reference: where its header starts.
HEADER_OFFSET = struct.Struct("<Q")


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


def _campaign(results: Path) -> Iterable[tuple[str, Structure]]:
    """Unique structures (across all generators) of an earlier campaign's results folder."""
    classes, _ = io.read_table(results / "dedup" / "classes.parquet")
    unique = set(classes.loc[classes["unique_all"], "id"])
    for path in sorted((results / "relaxed").glob("*/*.jsonl.gz")):
        for record in io.read_records(path):
            if record["id"] in unique:
                yield f"campaign:{results.name}:{record['id']}", record["structure"]


def source_name(source: str | dict) -> str:
    if isinstance(source, str):
        return source
    return source.get("source", "file") + (f":{source['path']}" if "path" in source else "")


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
    if source.get("source") == "mp":
        return []  # looked up per chemical system at novelty time, see module docstring
    path = Path(source["path"])
    if source.get("source") == "campaign":
        return _campaign(path)
    fmt = source_format(source)
    if fmt == "csv":
        return _csv(path)
    if fmt == "cif_dir":
        return _files(sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif"))
    return _files([path])


def mp_sources(sources: list) -> list[dict]:
    return [s for s in sources if isinstance(s, dict) and s.get("source") == "mp"]


def prefetch(settings: dict, chemical_systems: Iterable[str] = ()) -> list[str]:
    """Fill the Materials Project cache with ``chemical_systems`` (and the sources' own) and all subsystems.

    Local files, earlier campaigns and embedded crystals need nothing. A system that cannot be
    fetched is reported as a line starting with ``FAILED``; the others stay cached.
    """
    lines = []
    for source in mp_sources(settings["sources"]):
        version, reason = materials_project.resolve_database_version(source)
        if version is None:
            lines.append(f"FAILED mp: {reason}")
            continue
        wanted = {*chemical_systems, *source["chemical_systems"]}
        systems = {sub for chemsys in wanted for sub in materials_project.subsystems(chemsys)}
        data, failed = materials_project.ensure_systems(source, version, systems)
        gnome = "with" if source["include_gnome"] else "without"
        lines += [
            f"mp {version} ({gnome} GNoME) {chemsys}: {len(d['structures'])} structures, "
            f"{len(d['entries'])} entries"
            for chemsys, d in sorted(data.items())
        ]
        lines += [f"FAILED mp {version} {chemsys}: {why}" for chemsys, why in sorted(failed.items())]
    return lines


def build_reference(sources: list, path: str) -> None:
    """Write the snapshot of the local sources and a sidecar naming all sources, with its SHA-256.

    The sidecar pins the Materials Project database version (and records include_gnome) that
    every novelty and stability job of the campaign then uses.
    """
    records, counts, remote = [], {}, []
    for source in sources:
        name = source_name(source)
        if isinstance(source, dict) and source.get("source") == "mp":
            version, reason = materials_project.resolve_database_version(source)
            remote.append(
                {**materials_project.record(source, version), "settings": source, "problem": reason}
            )
            continue
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
            "mp": remote,
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
    write_reduced(reduced_reference(reference_path, matching, processes), output_path)


def write_reduced(payload: dict, output_path: str) -> None:
    """Write a ``reduced_reference`` bucket by bucket (one pickle per formula bucket, then a header
    of offsets, then the header's offset), so that a novelty job reads only its batch's buckets."""
    buckets: dict[Hashable, list[tuple[int, str, Reduced]]] = defaultdict(list)
    for position, (label, member) in enumerate(zip(payload["labels"], payload["reduced"], strict=True)):
        buckets[_bucket(member)].append((position, label, member))
    with io.atomic_path(output_path) as tmp, open(tmp, "wb") as handle:
        offsets = {}
        for bucket, entries in buckets.items():
            offsets[bucket] = handle.tell()
            pickle.dump(entries, handle, protocol=pickle.HIGHEST_PROTOCOL)
        header_offset = handle.tell()
        pickle.dump({"key": payload["key"], "offsets": offsets}, handle, protocol=pickle.HIGHEST_PROTOCOL)
        handle.write(HEADER_OFFSET.pack(header_offset))


def _bucket(member: Reduced) -> Hashable | None:
    """The formula bucket ``member`` is stored in; None for structures that may match across
    formulas (``crosses``), which every reader loads."""
    return None if member.crosses else member.key


def load_reduced(path: str | Path, keys: Iterable[Hashable] | None = None) -> dict:
    """A reduced reference written by ``reduce_reference``: all of it, or only the buckets of
    ``keys`` (``Reduced.key`` of the structures to check) and the structures that cross buckets,
    in snapshot order, which is all ``ReferenceIndex`` compares those structures with."""
    with open(path, "rb") as handle:
        handle.seek(-HEADER_OFFSET.size, os.SEEK_END)
        (header_offset,) = HEADER_OFFSET.unpack(handle.read(HEADER_OFFSET.size))
        handle.seek(header_offset)
        header = pickle.load(handle)
        offsets = header["offsets"]
        wanted = offsets if keys is None else {*keys, None} & offsets.keys()
        entries = []
        for bucket in wanted:
            handle.seek(offsets[bucket])
            entries += pickle.load(handle)
    entries.sort(key=lambda entry: entry[0])
    return {
        "key": header["key"],
        "labels": [label for _, label, _ in entries],
        "reduced": [member for _, _, member in entries],
    }


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


def remote_references(
    reference_sidecar: dict, chemical_systems: Iterable[str]
) -> tuple[list[tuple[str, Structure]], dict[str, str], list[dict]]:
    """MP structures of ``chemical_systems``, systems that failed (-> reason), and what was used."""
    found, failed, used = materials_project.lookup(reference_sidecar, chemical_systems)
    return [s for data in found for s in materials_project.reference_structures(data)], failed, used


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
        self.remote_labels: list[str] = []
        self.remote_pool = ReducedPool([], counter.matcher.ltol)

    def add(self, references: Iterable[tuple[str, Structure]]) -> None:
        """More (label, structure) references, e.g. Materials Project structures looked up per batch;
        searched after the snapshot."""
        references = list(references)
        reduced = [reduce_structure(self.counter.matcher, structure) for _, structure in references]
        self.remote_labels += [label for label, _ in references]
        self.remote_pool = ReducedPool([*self.remote_pool.members, *reduced], self.counter.matcher.ltol)

    def first_match(self, structure: Structure) -> str | None:
        """Label of the first reference structure matching ``structure``, or None if it is novel."""
        return self.first_match_reduced(reduce_structure(self.counter.matcher, structure))

    def first_match_reduced(self, reduced: Reduced) -> str | None:
        hit = self.pool.first_match(reduced, self.counter)
        if hit is not None:
            return self.labels[hit]
        hit = self.remote_pool.first_match(reduced, self.counter)
        return None if hit is None else self.remote_labels[hit]


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
    ``matching.run_reduce_job``; each is reduced here when not given.

    Where a remote reference (Materials Project) could not be read for a structure's chemical
    system and no local reference matches, its novelty is unknown: ``novel`` is false,
    ``novelty_unknown`` true and ``novelty_reason`` says why.
    """
    counter = MatchCounter(build_matcher(matching))
    if batch_reduced_path is None:
        records = [{**r, "reduced": reduced_of(r, counter.matcher)} for r in io.read_records(relaxed_path)]
    else:
        records = read_reduced_batch(batch_reduced_path, counter.matcher)
    items = [r["reduced"] for r in records if r["reduced"] is not None]
    # Only the batch's formula buckets, unless a structure may match across formulas.
    keys = None if any(item.crosses for item in items) else {item.key for item in items}
    reduced = None if reduced_path is None else load_reduced(reduced_path, keys)
    index = ReferenceIndex(reference_path, counter, reduced)
    reference = io.read_json(io.sidecar_path(reference_path))
    systems = {r["reduced"].chemsys for r in records if r["reduced"] is not None}
    remote, failed, remote_used = remote_references(reference, systems)
    index.add(remote)
    rows = []
    for record in records:
        evaluated = record["reduced"] is not None
        match = index.first_match_reduced(record["reduced"]) if evaluated else None
        reason = failed.get(record["reduced"].chemsys) if evaluated and match is None else None
        rows.append(
            {
                "id": record["id"],
                "novel": evaluated and match is None and reason is None,
                "reference_match": match,
                "novelty_unknown": reason is not None,
                "novelty_reason": reason,
            }
        )
    columns = ["id", "novel", "reference_match", "novelty_unknown", "novelty_reason"]
    io.write_table(
        output_path,
        pd.DataFrame(rows, columns=columns),
        {
            "matcher": matcher_settings(counter.matcher),
            "reference": reference,
            "remote": remote_used,
            "fit_calls": counter.calls,
        },
    )
