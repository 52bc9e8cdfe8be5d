"""Novelty: is a structure matched by any reference structure? The reference snapshot (local
sources, ``crystal_campaign.reference``) reduced once per matcher and stored by formula bucket, the
Materials Project structures of each chunk's chemical systems, and the per-chunk novelty job.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
import struct
from collections import defaultdict
from collections.abc import Hashable, Iterable
from pathlib import Path

import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_campaign import io, materials_project
from crystal_campaign.matching import (
    MatchCounter,
    build_matcher,
    matcher_options,
    matcher_settings,
    read_reduced,
    reduce_structure,
    reduced_of,
    settings_key,
)
from crystal_campaign.pruning import Reduced, ReducedPool

# The last 8 bytes of a reduced reference: where its header starts.
HEADER_OFFSET = struct.Struct("<Q")


def _reduce_dicts(matching: dict, structures: list[dict]) -> list[Reduced]:
    matcher = build_matcher(matching)
    return [reduce_structure(matcher, Structure.from_dict(d)) for d in structures]


def reduced_reference(reference_path: str, matching: dict, processes: int = 1) -> dict:
    """Every reference structure reduced once for this matcher (the expensive part of matching),
    with its labels and the key (snapshot SHA-256, matcher settings) it was made for."""
    records = io.read_record_dicts(reference_path)
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
        return self.labels[hit] if hit is not None else self.first_remote_match(reduced)

    def first_remote_match(self, reduced: Reduced) -> str | None:
        hit = self.remote_pool.first_match(reduced, self.counter)
        return None if hit is None else self.remote_labels[hit]

    def matches_reduced(self, reduced: Reduced) -> tuple[str | None, list[str]]:
        """The first matching reference structure (as ``first_match_reduced``) and every matching
        structure of the snapshot (for recall: MatterGen's ``get_matches`` keeps them all)."""
        snapshot = [self.labels[i] for i in self.pool.matches(reduced, self.counter)]
        return (snapshot[0] if snapshot else self.first_remote_match(reduced)), snapshot


def run_novelty_job(
    relaxed_manifest: str,
    reference_path: str,
    output_path: str,
    matching: dict,
    reduced_path: str | None = None,
    chunk_reduced_path: str | None = None,
) -> None:
    """Per structure of a relaxed chunk: novel unless a reference structure matches it.
    ``reduced_path``: the reduced reference (``reduce_reference``); ``chunk_reduced_path``: the
    chunk reduced by ``matching.run_reduce_job``; each is reduced here when not given.

    Where a remote reference (Materials Project) could not be read for a structure's chemical
    system and no local reference matches, its novelty is unknown: ``novel`` is false,
    ``novelty_unknown`` true and ``novelty_reason`` says why. ``reference_covers_chemsys`` says
    whether any reference structure has the structure's chemical system: novelty against none is
    no evidence.
    """
    counter = MatchCounter(build_matcher(matching))
    if chunk_reduced_path is None:
        records = [
            {**r, "reduced": reduced_of(r, counter.matcher)} for r in io.read_chunk_records(relaxed_manifest)
        ]
    else:
        records = read_reduced(chunk_reduced_path, counter.matcher)
    items = [r["reduced"] for r in records if r["reduced"] is not None]
    # Only the batch's formula buckets, unless a structure may match across formulas.
    keys = None if any(item.crosses for item in items) else {item.key for item in items}
    reduced = None if reduced_path is None else load_reduced(reduced_path, keys)
    index = ReferenceIndex(reference_path, counter, reduced)
    reference = io.read_json(io.sidecar_path(reference_path))
    systems = {r["reduced"].chemsys for r in records if r["reduced"] is not None}
    remote, failed, remote_used = remote_references(reference, systems)
    index.add(remote)
    covered = {*reference["chemical_systems"], *(s.composition.chemical_system for _, s in remote)}
    rows = []
    for record in records:
        evaluated = record["reduced"] is not None
        match, snapshot_matches = index.matches_reduced(record["reduced"]) if evaluated else (None, [])
        reason = failed.get(record["reduced"].chemsys) if evaluated and match is None else None
        rows.append(
            {
                "id": record["id"],
                "novel": evaluated and match is None and reason is None,
                "reference_match": match,
                "snapshot_matches": snapshot_matches,
                "novelty_unknown": reason is not None,
                "novelty_reason": reason,
                "reference_covers_chemsys": evaluated and record["reduced"].chemsys in covered,
            }
        )
    columns = [
        "id",
        "novel",
        "reference_match",
        "snapshot_matches",
        "novelty_unknown",
        "novelty_reason",
        "reference_covers_chemsys",
    ]
    io.write_table(
        output_path,
        pd.DataFrame(rows, columns=columns),
        {
            "matcher": matcher_settings(counter.matcher),
            # the snapshot's identity and size; its list of chemical systems stays in its sidecar
            "reference": {key: value for key, value in reference.items() if key != "chemical_systems"},
            "remote": remote_used,
            "fit_calls": counter.calls,
        },
    )
