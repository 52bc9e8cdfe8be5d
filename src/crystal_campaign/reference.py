"""Novelty references: the configured sources loaded into one snapshot (``crystal_campaign.novelty``
checks structures against it).

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
import sys
from collections.abc import Iterable
from pathlib import Path

from pymatgen.core import Structure

from crystal_campaign import io, materials_project
from crystal_campaign.io import read_structures


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
    """Write the snapshot of the local sources and a sidecar naming all sources, with its SHA-256,
    its structure count per source and the chemical systems it covers.

    The sidecar pins the Materials Project database version (and records include_gnome) that
    every novelty and stability job of the campaign then uses.
    """
    records, counts, remote, systems = [], {}, [], set()
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
            systems.add(structure.composition.chemical_system)
        counts[name] = len(records) - before
    io.write_records(path, records)
    io.write_json(
        io.sidecar_path(path),
        {
            "sources": sources,
            "n_structures": counts,
            "n_chemical_systems": len(systems),
            "chemical_systems": sorted(systems),
            "sha256": io.file_sha256(path),
            "mp": remote,
        },
    )
